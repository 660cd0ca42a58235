#!/usr/bin/env bash
# Table 1 "+ tag" rows on HL-30 (d, f, h, j, l) and the control row (i), end to end:
# synthesise the corpus, extract HL-30 log-mels + 50 MTT tags, then run the six CVs at once
# (on one GPU they share the card; on a CPU machine run them one after another instead).
#
#   bash scripts/table1_tag_rows.sh HIGHLIGHTER.pt WORKDIR [SONGS] [WORKERS] [EPOCHS] [FOLDS] [DEADLINE_S]
#
# The corpus is `hitrank synth --seed 2018 --sr 22050`, so SONGS=2000 is the README's c2000.
# Every CV is stopped at DEADLINE_S seconds after the start (default: no deadline); its finished
# folds stay in WORKDIR/runs/ROW (re-running resumes them). WORKDIR/results.tgz holds the run
# folders without checkpoints, the logs, the store's manifest and tags, and a few log-mel rows
# for checking that the corpus matches one made elsewhere.
set -u
H=${1:?highlighter checkpoint}; W=${2:?work folder}
SONGS=${3:-2000}; WORKERS=${4:-16}; EPOCHS=${5:-15}; FOLDS=${6:-10}; DEADLINE=${7:-0}
HR="python3 -m hitrank"
T0=$(date +%s)
mkdir -p "$W/runs" "$W/logs"
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$W/logs/steps.txt"; }

stamp "synth $SONGS songs"
$HR synth "$W/corpus" --songs "$SONGS" --seed 2018 --sr 22050 --workers "$WORKERS" -q || exit 1
md5sum "$W/corpus/labels.csv" > "$W/logs/md5.txt"
stamp "extract HL-30 + tags"
$HR extract "$W/corpus/labels.csv" --out "$W/store" --segment hl30 --highlighter "$H" --tags \
    --workers "$WORKERS" -q > "$W/logs/extract.log" 2>&1 || { tail -5 "$W/logs/extract.log"; exit 1; }
python3 - "$W" <<'EOF'
import sys, numpy as np
from pathlib import Path
w = Path(sys.argv[1])
mel = np.load(w / "store/mel_hl30.npy", mmap_mode="r")
np.save(w / "logs/mel_first16.npy", np.asarray(mel[:16]))
EOF
cp "$W/store/tags.npy" "$W/store/params.json" "$W/logs/"
cp "$W/store/manifest.csv" "$W/logs/" 2>/dev/null || true

stamp "cv rows"
rows="d_simple_cnn_hl30_tag f_siamese_naive_hl30_tag h_siamese_artist_hl30_tag j_siamese_ab_hl30_tag l_siamese_ab_artist_hl30_tag i_siamese_ab_hl30"
pids=""
for r in $rows; do
    limit=0  # timeout 0: no limit
    if [ "$DEADLINE" -gt 0 ]; then limit=$(( DEADLINE - ($(date +%s) - T0) )); [ "$limit" -lt 1 ] && limit=1; fi
    OMP_NUM_THREADS=2 timeout "$limit" \
        $HR cv --config "configs/table1/$r.yaml" --store "$W/store" --out "$W/runs/$r" --folds "$FOLDS" \
        --set train.epochs="$EPOCHS" --set "pairs.w=[0.5]" --set "tags.mu=[0.5]" \
        --set features.highlighter="$H" -q > "$W/logs/$r.log" 2>&1 &
    pids="$pids $!"
done
for p in $pids; do wait "$p"; done
stamp "cv done"
tar czf "$W/results.tgz" --exclude='*.pt' --exclude='resume' -C "$W" runs logs
stamp "packed $W/results.tgz"
