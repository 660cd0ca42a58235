"""Command line: ``hitrank COMMAND ...`` (argument parsing and printing only; no logic).

Exit codes: 0 everything worked; 1 the command ran but some inputs failed (listed at the end);
2 bad usage, config or input that stopped the command before any work, or an OS error (full
disk, out of memory) that stopped it midway; 3 an unexpected error (a bug in hitrank: its traceback is printed);
130 interrupted (Ctrl-C; re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import sys
import traceback
from pathlib import Path

from . import __version__, commands, segments, tags
from .commands import (
    FAILURES_FILE,
    compare,
    cross_validate,
    extract_features,
    learning_curve,
    predict,
    rank,
    similar,
    train,
)
from .constants import TAGS
from .corpus import ALLOW_OUTSIDE_ENV, audio_results
from .demo import DemoResult, run_demo
from .descriptors.audio import describe_folder
from .descriptors.config import is_descriptor_config
from .descriptors.extractors import DEFAULT_EXTRACTOR, EXTRACTORS
from .descriptors.fit import fit_sources
from .embeddings import DEFAULT_EMBEDDING, DEFAULT_SCOPE, EMBEDDINGS, SCOPES
from .errors import HitrankError
from .fileio import atomic_write_text, strict_json
from .neighbours import DEFAULT_K, MIN_CATALOGUE, MODEL_EMBEDDING, split_cell
from .pretrained import import_release
from .rank import padded_flags
from .ranking_table import ranking_with_failures
from .reference import percentile_text
from .runtime import environment, import_plugins
from .synth import synthesize
from .table1 import ROWS, run_table1
from .thumbnail.files import highlight_files
from .thumbnail.training import load_highlighter_config, train_highlighter
from .transfer.protocol import is_transfer_config
from .transfer.report import format_transfer_summary, format_within_report
from .yamlconfig import override_text

log = logging.getLogger("hitrank")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BUG = 0, 1, 2, 130, 3
# commands whose work is saved as it goes, so that running them again resumes
RESUMES = frozenset({"extract", "train", "cv", "rank", "table1", "descriptors", "demo"})


def _seed(text: str) -> int:
    """``--seed``: an integer >= 0 (numpy's and torch's generators refuse negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: a seed must be an integer >= 0")
    return value


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _outside() -> argparse.ArgumentParser:
    """``--allow-outside`` for commands that read labels CSVs through the cache (it sets
    :data:`hitrank.corpus.ALLOW_OUTSIDE_ENV` while the command runs)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--allow-outside", action="store_true",
                   help="let a labels CSV point at files outside its folder")
    return p


def _sub(subs, name, help_, examples, parents):
    # argparse formats a command's help (its line in the command list) with %, not its description
    return subs.add_parser(
        name, help=help_.replace("%", "%%"), description=help_, parents=parents,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (plug-ins of ``$HITRANK_PLUGINS`` are imported
    first, so their segment methods and taggers are among the choices)."""
    import_plugins()
    common = _common()
    outside = _outside()
    parser = argparse.ArgumentParser(
        prog="hitrank",
        description="Rank songs by how likely they are to be hits, from their audio.",
        epilog=__doc__.split("\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hitrank {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _sub(subs, "synth", "write a synthetic pop corpus (audio, labels.csv, truth.csv)",
             ["hitrank synth corpus/ --songs 500", "hitrank synth c/ --songs 20 --format mp3 --stereo"],
             [common])
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--songs", type=int, default=100, help="number of songs (default 100)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--format", default="wav", choices=["wav", "flac", "mp3", "ogg"])
    p.add_argument("--sr", type=int, default=44100, help="sample rate in Hz (default 44100)")
    p.add_argument("--stereo", action="store_true", help="write stereo files")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    p = _sub(subs, "extract", "extract Mid-30 or HL-30 log-mel features of a folder or labels CSV into a store",
             ["hitrank extract corpus/ --out store/", "hitrank extract corpus/labels.csv --out store/ --workers 2",
              "hitrank extract corpus/labels.csv --out store_tags/ --tags",
              "hitrank extract catalogue.csv --out store/ --engine ray --address auto"],
             [common])
    p.add_argument("source", type=Path, help="folder of audio files (recursive) or labels CSV")
    p.add_argument("--out", type=Path, required=True, help="feature store folder")
    p.add_argument("--segment", default="mid30", choices=segments.names(),
                   help="which 30 s: " + "; ".join(f"{n}: {segments.get(n).help}" for n in segments.names()))
    p.add_argument("--highlighter", type=Path,
                   help="hl30: attention highlighter checkpoint (default: the training-free fallback)")
    p.add_argument("--window", default="hamming", choices=["hamming", "hann"],
                   help="STFT window (paper: hamming; the authors' code: hann)")
    p.add_argument("--log", default="db", choices=["db", "log1p", "none"], help="log scaling (default db)")
    p.add_argument("--tags", nargs="?", const="segment", default="", choices=["segment", "song"],
                   help="also store the 50 MTT tag probabilities of the 30 s segment (default when "
                        "given) or of the whole song")
    p.add_argument("--tagger", default=tags.DEFAULT_TAGGER, choices=list(tags.TAGGERS),
                   help="with --tags: " + "; ".join(f"{n}: {t.about}" for n, t in tags.TAGGERS.items())
                        + f" (default {tags.DEFAULT_TAGGER}; jynet needs `hitrank pretrained import`)")
    p.add_argument("--embedding", default="", choices=list(EMBEDDINGS),
                   help="also store a pretrained network's song embedding (penultimate layer): "
                        + "; ".join(f"{n}: {e.layer}, {e.dim}-d" for n, e in EMBEDDINGS.items()))
    p.add_argument("--embedding-scope", default=None, choices=list(SCOPES),
                   help=f"with --embedding: average over the whole song or the 30 s segment (default {DEFAULT_SCOPE})")
    _engine_args(p, "worker processes (default 1; with --engine ray: CPUs of the local Ray "
                    "instance, default all)")
    p.add_argument("--allow-outside", action="store_true",
                   help="let a labels CSV point at files outside its folder")
    for name, help_, ex in (
        ("train", "train one model from a config (validation split for early stopping)",
         ["hitrank train --config configs/table1/a_simple_cnn_mid30.yaml --store store/ --out runs/a",
          "hitrank train --config configs/table1/i_siamese_ab_hl30.yaml --labels corpus/labels.csv "
          "--out runs/i --set features.segment=mid30 --set train.epochs=5"]),
        ("cv", "k-fold cross-validation from a config; nDCG / Kendall / Spearman @10%",
         ["hitrank cv --config configs/table1/a_simple_cnn_mid30.yaml --store store/ --out runs/a",
          "hitrank cv --config configs/table1/i_siamese_ab_hl30.yaml --labels corpus/labels.csv --out runs/i --folds 5",
          "hitrank cv --config configs/descriptors/topify_smote.yaml --data ../shared/data/spotify_hit_predictor --out runs/topify"]),
    ):
        p = _sub(subs, name, help_, ex, [common, outside])
        p.add_argument("--config", type=Path, help="experiment YAML (see configs/)")
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--store", type=Path, help="feature store made by `hitrank extract`")
        src.add_argument("--labels", type=Path,
                         help="labels CSV (song_id, path, artist, hit_score); features are extracted "
                              "into a cache store first")
        src.add_argument("--data", type=Path, nargs="+",
                         help="descriptor table(s): Spotify-style CSVs or folders of them, or the "
                              "descriptors.csv of `hitrank descriptors` (configs/descriptors/)")
        p.add_argument("--out", type=Path, required=True, help="run folder")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.epochs=2 (repeatable)")
        p.add_argument("--folds", type=int, help="number of folds (overrides cv.folds)")
        p.add_argument("--device", help="auto | cpu | cuda (overrides train.device)")
        p.add_argument("--seed", type=_seed, help="random seed (overrides train.seed)")
        p.add_argument("--init", help="start from released weights: an imported pretrained model "
                       "(yu2018-kkbox) or a run folder / checkpoint (overrides train.init)")
        p.add_argument("--allow-highlighter-overlap", action="store_true",
                       help="evaluate on songs that trained the attention highlighter of an HL-30 "
                            "store (their labels chose the windows; the run records it)")
        p.add_argument("--workers", type=int, default=1, help="extraction workers for --labels")
        p.add_argument("--group-by", metavar="artist|group|COLUMN",
                       help="folds that never split a group of songs: artist or a labels column "
                            "(cv.group_by; other than artist, spectrogram configs need --labels)")
        p.add_argument("--weight", metavar="COLUMN",
                       help="a labels column of sample weights, e.g. n_raters (train.weight; "
                            "transfer configs, configs/real/)")
        p.add_argument("--within", metavar="COLUMN",
                       help="a labels column (genre, market, label): metrics inside each stratum "
                            "too, with the stratum-mean baseline (transfer configs, configs/real/)")
        if name == "cv":
            p.add_argument("--raters", type=Path,
                           help="one row per listener and song (song_id + judgement): report the "
                                "split-half reliability of the labels and the ceiling it implies")
            p.add_argument("--raters-score", default="", metavar="COLUMN|A-B",
                           help="the judgement, needed with --raters: one numeric column, or the "
                                "difference of two (e.g. liked-disliked)")
            p.add_argument("--distribute", default="auto", choices=["auto", "data", "folds"],
                           help="under torchrun: data (DistributedDataParallel, one model at a time) "
                                "or folds (folds as independent jobs, one per process); auto: folds "
                                "when there are at least as many folds as processes (default)")

    p = _sub(subs, "table1", "the paper's Table 1 on a labels CSV: extract the stores the rows need, "
             "cross-validate every row, compare them next to the paper's rows",
             ["hitrank table1 --labels corpus/labels.csv --out runs/table1",
              "hitrank table1 --labels corpus/labels.csv --out runs/t1 --rows a,c,i --set train.epochs=15",
              "hitrank table1 --labels corpus/labels.csv --out runs/t1 --highlighter other/highlighter.pt"],
             [common, outside])
    p.add_argument("--labels", type=Path, required=True, help="labels CSV (song_id, path, artist, hit_score)")
    p.add_argument("--out", type=Path, required=True, help="folder: stores/, one run folder per row, "
                   "comparison.csv / .html")
    p.add_argument("--rows", default=ROWS, help="rows to run, e.g. a,c,i (default all twelve)")
    p.add_argument("--highlighter", type=Path, help="attention highlighter for the HL-30 rows, trained on "
                   "OTHER songs (default: the training-free fallback)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every row's config, e.g. --set train.epochs=15 (repeatable)")
    p.add_argument("--workers", type=int, default=1, help="extraction worker processes (default 1)")

    p = _sub(subs, "compare", "compare CV runs: Table-1 style table next to the paper's rows, paired "
             "Wilcoxon tests over folds with the same test songs and a paired bootstrap over shared songs", ["hitrank compare runs/a runs/c runs/i",
                                           "hitrank compare runs/* --html comparison.html"], [common])
    p.add_argument("runs", nargs="+", type=Path, help="run folders written by `hitrank cv`")
    p.add_argument("--html", type=Path, help="also write an HTML page with plots here")

    p = _sub(subs, "rank", "rank a folder of songs with a trained run (fold ensemble) or checkpoint",
             ["hitrank rank new_songs/ --model runs/ab", "hitrank rank new_songs/ --model runs/ab/fold_00.pt "
              "--out ranking.csv --json", "hitrank rank new_songs/ --model runs/ab --html report.html"],
             [common, outside])
    p.add_argument("folder", type=Path, help="folder of audio files (recursive), a labels CSV or one audio file")
    p.add_argument("--model", type=Path, required=True,
                   help="run folder of `hitrank train` or `cv` (spectrogram, transfer or descriptor), a "
                        "checkpoint .pt, or an imported pretrained model's name (yu2018-kkbox, "
                        "yu2018-kkbox-hl30: `hitrank pretrained import`)")
    p.add_argument("--out", type=Path, help="write the ranking CSV here")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON on stdout")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report here (players start "
                   "at the analysed segment; sortable, filterable)")
    p.add_argument("--embed-audio", action="store_true",
                   help="with --html: put the audio inside the report (at most 50 MB) instead of linking it")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20; 0 = all)")
    p.add_argument("--cache", type=Path, help="feature store to reuse (default: a folder under "
                   "$HITRANK_CACHE or ~/.cache/hitrank)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    _engine_args(p, "extraction worker processes (default 1; with --engine ray: CPUs of the local "
                    "Ray instance, default all)")
    p.add_argument("--highlighter", type=Path,
                   help="attention highlighter of an HL-30 model (default: the one in its config)")
    p.add_argument("--curve", action="store_true",
                   help="score every 30 s window of each whole song (hop about 1 s): best window "
                        "(best_start, best_end, best_score), shift_spread and the unstable flag; "
                        "the report draws the curve (docs/ranking.md)")
    p.add_argument("--segment", default="configured", choices=["configured", "best"],
                   help="rank by the model's segment (configured, default) or by each song's best "
                        "window (best; needs --curve)")
    p.add_argument("--reference", type=Path,
                   help="percentiles and nearest songs against these songs (a labels CSV or a folder, "
                        "scored by the same model and cached; default: the run's own training songs)")
    _nearest_args(p, "rank")
    p.add_argument("--since", type=Path, metavar="PREVIOUS.csv",
                   help="a ranking CSV of an earlier `rank --out` with the same model: rank only the "
                        "songs of the folder it does not hold and merge (docs/ranking.md)")

    p = _sub(subs, "similar", "the reference songs closest to one song (cosine similarity of a song "
             "embedding) and how well it fits the reference catalogue",
             ["hitrank similar demo.mp3 --reference last_year/", "hitrank similar demo.mp3 --model runs/ab",
              "hitrank similar demo.mp3 --reference chart.csv --embedding ret30 --json"], [common, outside])
    p.add_argument("song", type=Path, help="an audio file")
    p.add_argument("--reference", type=Path, help="a labels CSV or folder of songs (with --model, default: "
                   "the run's training songs)")
    p.add_argument("--model", type=Path, help="a spectrogram run folder, checkpoint or imported model: "
                   "measures similarity in its own penultimate layer (--embedding model, the default with it)")
    _nearest_args(p, "similar")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--cache", type=Path, help="feature store of the song (default: under $HITRANK_CACHE)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--workers", type=int, default=1, help="extraction worker processes (default 1)")

    p = _sub(subs, "tags", "music tags of audio files (pretrained MagnaTagATune tagger, musicnn port)",
             ["hitrank tags song.wav", "hitrank tags *.mp3 --json", "hitrank tags songs/ --json",
              "hitrank tags song.wav --model MTT_vgg --top 10"],
             [common])
    p.add_argument("files", nargs="+", type=Path, help="audio files, or folders of them (searched recursively)")
    p.add_argument("--model", default=tags.DEFAULT_TAGGER, choices=tags.tag_models(),
                   help=f"tagger (default {tags.DEFAULT_TAGGER}; MTT_musicnn is musicnn, MTT_vgg its VGG "
                        "variant; jynet needs `hitrank pretrained import`)")
    p.add_argument("--top", type=int, default=5, help="tags to print per file (default 5)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line (JSON Lines), one line per file: the full 50-tag "
                        "vector by name")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")

    p = _sub(subs, "predict", "score every row of a descriptor table with a trained descriptor run",
             ["hitrank predict --model runs/topify --data new_songs.csv --out predictions.csv"], [common])
    p.add_argument("--model", type=Path, required=True, help="descriptor run folder or checkpoint .pt")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="descriptor table(s)")
    p.add_argument("--out", type=Path, required=True, help="predictions CSV (one row per input row)")

    p = _sub(subs, "descriptors", "compute Spotify-style descriptors from audio (descriptors.csv)",
             ["hitrank descriptors corpus/audio --out desc/", "hitrank descriptors corpus/labels.csv --out desc/ --workers 2"],
             [common])
    p.add_argument("source", type=Path, help="folder of audio files (recursive) or labels CSV")
    p.add_argument("--out", type=Path, required=True, help="output folder (descriptors.csv, failures.csv)")
    p.add_argument("--tags", action="store_true", help="add the 50 MTT tag probabilities (tag_* columns)")
    p.add_argument("--extractor", default=DEFAULT_EXTRACTOR, choices=list(EXTRACTORS),
                   help="hybrid: Essentia rhythm / key / EBU R128 loudness + MTT tags + librosa, "
                        "chosen by agreement with reference descriptors (default; needs "
                        "pip install 'hitrank[descriptors]'); librosa: the earlier hand-written proxies")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--allow-outside", action="store_true",
                   help="let a labels CSV point at files outside its folder")

    p = _sub(subs, "fit", "rank candidate songs by how well they fit a reference set (playlist fit)",
             ["hitrank fit --reference liked_songs/ --candidates new_songs/",
              "hitrank fit --reference liked.csv --candidates catalogue.csv --out fit.csv --json",
              "hitrank fit --reference liked_songs/ --candidates new_songs/ --tags"], [common])
    p.add_argument("--reference", type=Path, required=True, help="folder of audio or descriptor CSV")
    p.add_argument("--candidates", type=Path, required=True, help="folder of audio or descriptor CSV")
    p.add_argument("--out", type=Path, help="write the ranking CSV here")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON on stdout")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20; 0 = all)")
    p.add_argument("--workers", type=int, default=1, help="worker processes for audio folders")
    p.add_argument("--tags", action="store_true",
                   help="audio folders: also compare the 50 MTT tag probabilities (musicnn port)")
    p.add_argument("--negatives", type=Path, help="songs that do NOT fit (folder of audio or "
                   "descriptor CSV): rank by a classifier (DNN, logistic regression or GBDT, "
                   "chosen on validation) instead of the Gaussian fit rule")

    p = _sub(subs, "highlight", "find the 30 s highlight of audio files (HL-30)",
             ["hitrank highlight song.wav", "hitrank highlight *.mp3 --method attention --model runs/hl/highlighter.pt --json",
              "hitrank highlight songs/ --plot plots/"], [common])
    p.add_argument("files", nargs="+", type=Path, help="audio files, or folders of them (searched recursively)")
    p.add_argument("--method", choices=["attention", "fallback"],
                   help="attention (needs --model) or fallback (default: attention when --model is given)")
    p.add_argument("--model", type=Path, help="attention highlighter: its checkpoint, or the --out folder of "
                   "`hitrank highlighter train`")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line (JSON Lines) on stdout, one line per file")
    p.add_argument("--plot", type=Path, help="save a PNG of the curve over the spectrogram per file here")

    p = _sub(subs, "highlighter", "train the attention highlighter",
             ["hitrank highlighter train --config configs/highlighter/hit_score.yaml --labels corpus/labels.csv --out runs/hl"],
             [common])
    hsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(hsub, "train", "train an attention highlighter on a labels CSV",
             ["hitrank highlighter train --config configs/highlighter/hit_score.yaml --labels corpus/labels.csv --out runs/hl"],
             [common])
    p.add_argument("--config", type=Path, help="highlighter YAML (configs/highlighter/)")
    p.add_argument("--labels", type=Path, required=True, help="labels CSV with hit scores")
    p.add_argument("--out", type=Path, required=True, help="run folder (writes highlighter.pt)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workers", type=int, default=1, help="decoding worker processes")

    p = _sub(subs, "pretrained", "the authors' released models (KKBOX-trained ret30 CNN + tag DNN, JYnet)",
             ["hitrank pretrained import ../shared/reference/hsp_cnn", "hitrank pretrained import HSP_CNN/ --force"],
             [common])
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(psub, "import", "convert the released ret30 and JYnet weights into hitrank models under "
             "$HITRANK_CACHE/models (yu2018-kkbox, yu2018-kkbox-hl30, jynet)",
             ["hitrank pretrained import ../shared/reference/hsp_cnn",
              "hitrank pretrained import HSP_CNN/ --fusion released_script --force"], [common])
    p.add_argument("path", type=Path, help="a checkout of github.com/OckhamsRazor/HSP_CNN, or a folder "
                   "with its ret30.mdl/ and data/")
    p.add_argument("--force", action="store_true", help="replace models imported before")
    p.add_argument("--fusion", default="trained", choices=["trained", "released_script"],
                   help="trained: the trained graph's 0.3 cnn + 0.7 tag (default); released_script: "
                        "the released inference script's cnn + 0.5 tag")
    p.add_argument("--jynet-standardisation", default="clip", choices=["clip", "shipped"],
                   help="JYnet input standardisation of the KKBOX models: clip (refitted on each "
                        "clip, as the released pipeline ran; default) or shipped (the MTT standardisers)")

    p = _sub(subs, "learning-curve", "metrics against the number of labelled training songs "
             "(transfer configs): how many labels a catalogue needs",
             ["hitrank learning-curve --config real/auto --labels labels.csv --sizes 50,100,150,200 "
              "--within genre --out runs/curve"], [common, outside])
    p.add_argument("--config", type=Path, required=True, help="a transfer config (configs/real/)")
    p.add_argument("--labels", type=Path, required=True, help="labels CSV (song_id, path, hit_score, ...)")
    p.add_argument("--sizes", required=True, help="training songs per fold, e.g. 50,100,150,200")
    p.add_argument("--out", type=Path, required=True, help="folder for learning_curve.csv / .png")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--folds", type=int, help="number of folds (overrides cv.folds)")
    p.add_argument("--group-by", metavar="artist|group|COLUMN", help="folds that never split a group")
    p.add_argument("--within", metavar="COLUMN", help="within-stratum Spearman too")
    p.add_argument("--workers", type=int, default=1, help="extraction workers")

    p = _sub(subs, "demo", "the main job on a synthetic corpus: synth, HL-30 extraction, cross-validation "
             "of the simple CNN with pooled metrics and intervals next to random and the oracle, and "
             "a ranking of held-out songs checked against their true scores",
             ["hitrank demo", "hitrank demo --out /tmp/demo"], [common])
    p.add_argument("--out", type=Path, help="work folder (default: $HITRANK_CACHE/demo)")
    p.add_argument("--songs", type=int, default=600, help="labelled corpus size (default 600)")
    p.add_argument("--heldout", type=int, default=150, help="held-out songs to rank (default 150)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per model at most (default 8)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    return parser


def _setup_logging(args) -> None:
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def cmd_synth(args) -> int:
    truth = synthesize(args.out, args.songs, seed=args.seed, fmt=args.format, sr=args.sr,
                       stereo=args.stereo, workers=args.workers, progress=_progress(args))
    print(f"wrote {len(truth)} songs to {args.out}/audio, labels in {args.out / 'labels.csv'}, "
          f"generative facts in {args.out / 'truth.csv'}")
    return EXIT_OK


def _print_failures(failures, what="songs", listed=None) -> None:
    """The failed files on stderr, one line each (``listed``: the file that also lists them)."""
    if failures:
        also = f" (also listed in {str(listed)!r})" if listed is not None else ""
        print(f"{len(failures)} {what.removesuffix('s') if len(failures) == 1 else what} failed{also}:",
              file=sys.stderr)
        for _sid, path, reason in failures:
            print(f"  {path!r}: {reason}", file=sys.stderr)


def _engine_args(p, workers_help: str) -> None:
    p.add_argument("--workers", type=int, default=None, help=workers_help)
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (this machine, default) or ray (Ray tasks; optional extra: "
                        "pip install -e '.[ray]')")
    p.add_argument("--address", help="with --engine ray: the cluster to join (auto | HOST:PORT); "
                   "default: start a local Ray instance")


def _engine(args) -> dict:
    """extract()'s engine, address and workers from --engine, --address and --workers."""
    if args.address and args.engine != "ray":
        raise HitrankError(f"--address {args.address} needs --engine ray")
    workers = args.workers if args.workers is not None else (0 if args.engine == "ray" else 1)
    return {"engine": args.engine, "address": args.address, "workers": workers}


def cmd_extract(args) -> int:
    if args.embedding_scope and not args.embedding:
        log.warning("--embedding-scope %s is not used: it applies with --embedding NAME", args.embedding_scope)
    rep, _ = extract_features(args.source, args.out, segment=args.segment, highlighter=args.highlighter,
                              window=args.window, log_scale=args.log, tags=args.tags,
                              tagger=args.tagger, progress=_progress(args),
                              allow_outside=args.allow_outside, embedding=args.embedding,
                              embedding_scope=args.embedding_scope or DEFAULT_SCOPE, **_engine(args))
    _print_failures(rep.failures)
    if rep.silent:
        print(f"{len(rep.silent)} song(s) have a silent segment (kept, flagged silent=True: ranked "
              "last, left out of training):", file=sys.stderr)
        for _sid, path in rep.silent:
            print(f"  {path!r}", file=sys.stderr)
    print(f"{rep.new} extracted, {rep.skipped} already done, {rep.failed} failed "
          f"-> {rep.store} ({', '.join(rep.files)})")
    return EXIT_PARTIAL if rep.failed else EXIT_OK


def cmd_learning_curve(args) -> int:
    folds = [f"cv.folds={args.folds}"] if args.folds is not None else []
    res = learning_curve(args.config, _structure_overrides(args, list(args.overrides) + folds),
                                 labels=args.labels, sizes=args.sizes, out=args.out, workers=args.workers,
                                 progress=_progress(args))
    table = res["table"]
    print(table.to_string(index=False, na_rep="n/a", formatters={
        c: (lambda v: f"{v:+.3f}" if math.isfinite(v) else "n/a") for c in table.columns
        if c not in ("size", "train_songs", "learners", "within_thin")}))
    print(f"{res['songs']} songs; table: {res['csv']}" + (f", plot: {res['png']}" if res["png"] else f" ({res['note']})"))
    _print_failures(res["failures"])
    failed = {sid for sid, _, _ in res["failures"]}
    left = [(sid, why) for sid, why in res["left_out"] if sid not in failed]  # failed files: listed above
    if left:
        print(f"{len(left)} song(s) left out (no features or no usable score): "
              + "; ".join(f"{sid!r}: {why}" for sid, why in left[:3]) + (" ..." if len(left) > 3 else ""),
              file=sys.stderr)
    return EXIT_PARTIAL if res["failures"] or res["left_out"] else EXIT_OK


def _structure_overrides(args, overrides: list[str]) -> list[str]:
    """``--group-by`` / ``--within`` / ``--weight`` as config keys: cv.group_by (spectrogram
    configs: also cv.artist_aware=false, its old name), cv.within and train.weight of transfer
    configs."""
    transfer = is_transfer_config(args.config)
    group = getattr(args, "group_by", None)
    if group:
        overrides.append(f"cv.group_by={override_text(group)}")
        if not transfer:
            overrides.append("cv.artist_aware=false")  # the flag names the grouping alone
    weight = getattr(args, "weight", None)
    if weight and not transfer:
        raise HitrankError(f"--weight {weight!r}: sample weights apply to transfer configs (configs/real/)")
    if weight:
        overrides.append(f"train.weight={override_text(weight)}")
    within = getattr(args, "within", None)
    if within and transfer:
        overrides.append(f"cv.within={override_text(within)}")
    elif within and args.command != "cv":
        raise HitrankError(f"--within {within!r}: `{args.command}` takes it with transfer configs "
                           "(configs/real/); spectrogram runs report strata in `hitrank cv`")
    return overrides


def _overrides(args) -> list[str]:
    """``--set`` items plus the ``--folds``, ``--device``, ``--seed``, ``--group-by`` and
    ``--within`` shortcuts."""
    if is_transfer_config(args.config):
        extra = [f"cv.folds={args.folds}"] if args.folds is not None else []
        extra += [f"train.seed={args.seed}"] if args.seed is not None else []
        for flag, name in ((args.device, "--device"), (args.init, "--init")):
            if flag is not None:
                raise HitrankError(f"{name} does not apply to transfer configs (small models on embeddings, CPU)")
        return _structure_overrides(args, list(args.overrides) + extra)
    overrides = _structure_overrides(args, list(args.overrides))
    for flag, key in ((args.folds, "cv.folds"), (args.device, "train.device"), (args.seed, "train.seed"),
                      (args.init, "train.init")):
        if flag is not None:
            overrides.append(f"{key}={override_text(flag) if key in ('train.device', 'train.init') else flag}")
    if args.allow_highlighter_overlap:
        overrides.append("cv.allow_highlighter_overlap=true")
    return overrides


def _sources(args) -> dict:
    return {"store": args.store, "labels": args.labels, "data": args.data}


def _print_summary(summary: dict) -> None:
    procs = summary.get("processes", 1)
    print(f"{summary['name']}: {summary['n_songs']} songs, {summary['folds']} folds, "
          f"{summary['seconds']:.0f} s on {summary['device']}" + (f" x {procs} processes" if procs > 1 else ""))
    pooled, ci = summary.get("pooled"), summary.get("pooled_ci", {})
    print(f"  {'':<14} {'per fold: mean +- std (se)':>28}   pooled out-of-fold [95% CI]")
    for k in ("ndcg", "kendall", "spearman", "recall"):
        fold = f"{summary[k + '_mean']:+.4f} +- {summary[k + '_std']:.4f} ({summary.get(k + '_se', 0):.4f})"
        pool = f"{pooled[k]:+.4f} [{ci[k][0]:+.3f}, {ci[k][1]:+.3f}]" if pooled else ""
        print(f"  {k + '@10%':<14} {fold:>28}   {pool}")
    for w in summary.get("warnings", []):
        print(f"  warning: {w}")
    if summary.get("highlighter_overlap"):
        print(f"  note: {summary['highlighter_overlap']} evaluated songs supervised the highlighter "
              "(--allow-highlighter-overlap): HL-30 windows were chosen with their labels")


def _print_descriptor_summary(s: dict) -> None:
    how = f"{s['folds']} folds" if s["split"] == "kfold" else "holdout"
    extra = f", hit rate {s['prevalence']:.3f}" if s.get("prevalence") is not None else ""
    print(f"{s['name']}: {s['n_rows']} rows ({s['n_left_out']} left out){extra}, {how}, {s['seconds']:.0f} s")
    models = list(s["results"])
    metrics = list(s["results"][models[0]])
    print(f"  {'':<18}" + "".join(f"{m[:16]:>18}" for m in models))
    for k in metrics:
        cells = "".join(f"{s['results'][m][k]['mean']:>10.4f} +-{s['results'][m][k]['std']:.3f}" for m in models)
        print(f"  {k:<18}{cells}")
    for row in s.get("importance", [])[:5]:
        print(f"  importance  {row['input']:<24} {row['importance_mean']:+.4f}")


def cmd_cv(args) -> int:
    res = cross_validate(args.config, _overrides(args), out=args.out, workers=args.workers,
                         distribute=args.distribute, progress=_progress(args), raters=args.raters,
                         raters_score=args.raters_score,
                         within="" if is_transfer_config(args.config) else args.within or "", **_sources(args))
    if res["kind"] == "transfer":
        print(format_transfer_summary(res["summary"]))
        print(f"run folder: {args.out} (summary.json, predictions.csv, fold_XX.pt)")
        _print_failures(res["failures"], listed=args.out / FAILURES_FILE)  # at the end, after the results
        return EXIT_PARTIAL if res["failures"] or res["summary"]["left_out"] else EXIT_OK
    if res["kind"] == "descriptor":
        s = res["summary"]
        _print_descriptor_summary(s)
        print(f"run folder: {args.out} (summary.json, folds.csv, predictions.csv, importance.csv/png, fold_XX.pt)")
        return EXIT_PARTIAL if s["n_left_out"] else EXIT_OK
    if res["main"]:
        _print_summary(res["summary"])
        if "within" in res["summary"]:
            print(format_within_report(res["summary"]["within"]))
        print(f"run folder: {args.out} (summary.json, folds.csv, predictions.csv, fold_XX.pt, report.html)")
    _print_failures(res["failures"], listed=args.out / FAILURES_FILE)  # at the end, after the results
    if res["main"] and _diverged(res["summary"].get("non_finite", 0), res["summary"]["n_songs"], "test",
                                    res["cfg"].train.lr):
        return EXIT_PARTIAL
    return EXIT_PARTIAL if res["problems"] or res["failures"] else EXIT_OK


def cmd_train(args) -> int:
    res = train(args.config, _overrides(args), out=args.out, workers=args.workers,
                progress=_progress(args), **_sources(args))
    if res["kind"] == "transfer":
        s = res["summary"]
        inner = ", ".join(f"{k} {v:+.3f}" for k, v in s["inner"].items())
        print(f"trained {s['name']}: {s['learner']} on the {s['embedding']} embedding of {s['songs']} songs"
              + (f" (inner CV, {s['select_by']}, rule {s.get('select_rule', 'best')}: {inner}; {s['why']})"
                 if inner else "")
              + f"; fitted in {s['seconds']:.0f} s, {s['total_seconds']:.0f} s with the embeddings -> "
                f"{args.out / 'model.pt'}")
        _print_failures(res["failures"], listed=args.out / FAILURES_FILE)
        return EXIT_PARTIAL if res["failures"] or s["left_out"] else EXIT_OK
    if res["kind"] == "descriptor":
        info = res["info"]
        print(f"trained {info['name']} on {info['n_train']} rows (validation {info['n_val']}, "
              f"{info['n_left_out']} left out) -> {args.out / 'model.pt'}")
        return EXIT_PARTIAL if info["n_left_out"] else EXIT_OK
    info = res["info"]
    if res["main"]:
        print(f"trained {res['cfg'].name} on {info['n_train']} songs (validation {info['n_val']}): "
              f"val nDCG {info['val_ndcg']:.4f}, Spearman {info['val_spearman']:.4f} -> {args.out / 'model.pt'}")
    _print_failures(res["failures"], listed=args.out / FAILURES_FILE)
    if res["main"] and _diverged(info.get("non_finite", 0), info["n_val"], "validation", res["cfg"].train.lr):
        return EXIT_PARTIAL
    return EXIT_PARTIAL if res["problems"] or res["failures"] else EXIT_OK


def _diverged(bad: int, total: int, which: str, lr: float, what: str = "") -> bool:
    """Say on stderr, and return True, when ``bad`` of the ``total`` predictions of a spectrogram
    run (``what``: which one, e.g. a table1 row) are NaN or inf: the model diverged (ranked
    last, its metrics mean little); ``lr`` its ``train.lr``."""
    if not bad:
        return False
    print(f"error: {what}{bad} of {total} {which} predictions are NaN or inf: the model diverged (the metrics "
          f"above rank them last and mean little); lower train.lr (now {lr:g}), e.g. "
          f"--set train.lr={lr / 10:g}, and run again with another --out", file=sys.stderr)
    return True


def _nearest_args(p, command: str) -> None:
    """--nearest K and --embedding NAME of `rank` and `similar`."""
    p.add_argument("--nearest", "-k", type=int, default=None, metavar="K",
                   help=f"reference songs listed as closest (default {DEFAULT_K}"
                        + ("; 0 = none)" if command == "rank" else ")"))
    names = [MODEL_EMBEDDING, *EMBEDDINGS]
    p.add_argument("--embedding", choices=names, default=None,
                   help=f"what closeness is measured in: {MODEL_EMBEDDING} (the ranking model's own "
                        f"penultimate layer{', the default' if command == 'rank' else '; needs --model'}) or a "
                        f"pretrained network over the whole song ({', '.join(EMBEDDINGS)}"
                        + (f"; default without --model: {DEFAULT_EMBEDDING})" if command != "rank" else
                           "); a transfer run always compares in its own embedding)"))


def cmd_similar(args) -> int:
    found = similar(args.song, args.reference, model=args.model, embedding=args.embedding,
                    k=DEFAULT_K if args.nearest is None else args.nearest, cache=args.cache,
                    workers=args.workers, device=args.device, progress=_progress(args))
    a = found.attrs
    if args.json:
        rows = found.astype(object).where(found.notna(), None).to_dict("records")
        head = {k: (None if isinstance(v, float) and v != v else v) for k, v in a.items()}  # NaN -> null
        print(_json_dump({**head, "similar": rows}))
        return EXIT_OK
    print(f"{_one_line(str(a['song']))}: closest of {_one_line(str(a['catalogue']))} ({a['embedding']} "
          "embedding, cosine similarity)")
    for r in found.itertuples():
        hit = f"  hit score {r.hit_score:.4g}" if r.hit_score == r.hit_score else ""
        title = f"  {_one_line(str(r.title))}" if r.title else ""
        print(f"{r.rank:>3}  {r.similarity:.3f}  {_one_line(str(r.song_id))}{title}{hit}")
    if a["fit"] == a["fit"]:
        print(f"fit to the reference: {a['fit']:.0f} (mean similarity to its {len(found)} closest, "
              f"{a['fit_similarity']:.3f}, as a percentile of the reference songs' own)")
    else:
        print(f"no fit stated: the reference has fewer than {MIN_CATALOGUE} usable songs")
    return EXIT_OK


def cmd_rank(args) -> int:
    _check_top(args)
    ranking, failures = rank(args.folder, args.model, cache=args.cache, device=args.device,
                             progress=_progress(args), highlighter=args.highlighter, out=args.out,
                             html=args.html, embed_audio=args.embed_audio, since=args.since,
                             **_engine(args), **_rank_options(args))
    return _print_ranking(args, ranking, failures)


def _rank_options(args) -> dict:
    """rank_folder's curve, segment and reference, only where given (descriptor runs take none)."""
    given = {"curve": args.curve, "segment": args.segment if args.segment != "configured" else None,
             "reference": args.reference, "nearest": args.nearest, "embedding": args.embedding}
    return {k: v for k, v in given.items() if v is not None and v is not False}


def _check_top(args) -> None:
    """Refuse a negative ``--top`` (rows to print) before any work."""
    if args.top < 0:
        raise HitrankError(f"--top {args.top}: expected 0 (print every row) or a positive number of rows")


def _shown(ranking, top: int):
    """The rows of a ranking printed with ``--top`` (0: all)."""
    return ranking if top == 0 else ranking.head(top)


def _print_cut(n: int, top: int, what: str) -> None:
    """Say that ``--top`` left rows out of the terminal table (the CSV and JSON hold them all)."""
    if 0 < top < n:
        print(f"(the first {top} of {n} {what}; --top 0 prints all)")


def _one_line(cell: str) -> str:
    """A table cell on one terminal line: control characters (a newline or tab in a file
    name) shown as escapes."""
    if cell.isprintable():
        return cell
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in cell)


def _table(columns) -> list[str]:
    """A terminal table: a header line naming the columns, then one line per row.

    Parameters
    ----------
    columns : list of (header, cells, align)
        ``cells`` one str per row; ``align`` ``>`` (right) or ``<`` (left). A column whose
        cells are all empty is left out (the ranking has no such values).
    """
    columns = [(h, [_one_line(v) for v in c], a) for h, c, a in columns if any(c)]
    widths = [max(len(h), *map(len, c)) for h, c, _ in columns]
    lines = zip(*[[h, *c] for h, c, _ in columns], strict=True)
    return ["  ".join(f"{v:{a}{w}}" for v, (_, _, a), w in zip(line, columns, widths, strict=True)).rstrip()
            for line in lines]


def _missing(value) -> bool:
    return value is None or value != value  # NaN: no value


def _percentile_cell(r) -> str:
    pct = getattr(r, "percentile", float("nan"))
    return "" if _missing(pct) else percentile_text(pct, r.percentile_lo, r.percentile_hi)


def _best_cell(r) -> str:
    best = getattr(r, "best_score", float("nan"))
    return "" if _missing(best) else f"{r.best_start:.0f}-{r.best_end:.0f} s {best:+.3f}"


def _nearest_cell(r) -> str:
    """The closest song, by its title where it has one (else its id), and the similarity."""
    ids, sims = split_cell(getattr(r, "nearest", None)), split_cell(getattr(r, "nearest_similarity", None))
    titles = split_cell(getattr(r, "nearest_title", None))
    name = titles[0] if titles and titles[0] else (ids[0] if ids else "")
    return f"~ {name} ({sims[0] if sims else '?'})" if ids else ""


def _rank_columns(spread: bool, interval: bool = True) -> list:
    """The columns of `rank`'s terminal table (header, cell of a row, alignment); ``spread``:
    the score's spread over the fold models beside it; ``interval``: some percentile has one."""
    score = (("score +- std", lambda r: f"{r.score:+.3f} +- {r.score_std:.3f}") if spread
             else ("score", lambda r: f"{r.score:+.3f}"))
    return [("rank", lambda r: str(r.rank), ">"), (*score, ">"),
            ("percentile [interval]" if interval else "percentile", _percentile_cell, ">"),
            ("best window, score", _best_cell, "<"),
            ("song", lambda r: r.song_id + (f"  [{r.flags}]" if getattr(r, "flags", "") else ""), "<"),
            ("~ nearest (similarity)", _nearest_cell, "<")]


def _has_spread(ranking) -> bool:
    """Whether some song's score has a spread (several models disagree, or --curve's window
    shifts move it): then its percentile has an interval."""
    return any(c in ranking and bool((ranking[c].astype(float).fillna(0) > 0).any())
               for c in ("score_std", "shift_spread"))


def _print_ranking(args, ranking, failures) -> int:
    if args.json:
        rows = ranking.astype(object).where(ranking.notna(), None).to_dict("records")  # NaN -> null
        doc = {"ranking": rows, "failures": [{"song_id": s, "path": p, "error": r} for s, p, r in failures]}
        if ranking.attrs.get("since"):  # counts and the new songs' ids, best first
            doc["since"] = ranking.attrs["since"]
        print(_json_dump(doc))
    else:
        rows = list(_shown(ranking, args.top).itertuples())
        spread = any(getattr(r, "n_models", 1) > 1 for r in rows)
        interval = any("[" in _percentile_cell(r) for r in rows)
        for line in _table([(name, [cell(r) for r in rows], align)
                            for name, cell, align in _rank_columns(spread, interval)]):
            print(line)
        _print_cut(len(ranking), args.top, "songs")
        _print_failures(failures, "files")
        if ranking.attrs.get("reference") and len(ranking):
            print(_percentile_line(ranking))
        if ranking.attrs.get("since"):
            c = ranking.attrs["since"]
            print(f"--since {args.since}: {c['kept']} songs kept from it, {c['new']} new, "
                  f"{c['dropped']} no longer in the folder")
            _print_new_songs(ranking, c.get("new_songs", []))
        if ranking.attrs.get("neighbours") and len(ranking):
            print(f"nearest songs (~): of {ranking.attrs['neighbours']}" if "nearest" in ranking
                  else f"no nearest songs: {ranking.attrs['neighbours']}")
        where = (f", CSV in {args.out}" if args.out else "") + (f", report in {args.html}" if args.html else "")
        print(f"ranked {len(ranking)} song{'' if len(ranking) == 1 else 's'} with {args.model}{where}")
    return EXIT_PARTIAL if failures else EXIT_OK


def _percentile_line(ranking) -> str:
    """What the percentiles of a ranking (of one song or more) are, or why it has none."""
    if "percentile" in ranking and ranking["percentile"].notna().any():
        return (f"percentiles: share of {ranking.attrs['reference']} scoring lower"
                + (" [interval]" if _has_spread(ranking) else " (one model: its score has no spread, "
                   "the percentile no interval)"))
    if "silent" in ranking and ranking["silent"].fillna(False).astype(bool).all():
        return "no percentile: every ranked song is silent"
    return f"no percentile: {ranking.attrs['reference']}"


def _print_new_songs(ranking, new_songs, shown: int = 10) -> None:
    """Where ``rank --since``'s new songs landed: their ranks, best first (the first ``shown``)."""
    if not new_songs:
        return
    where = dict(zip(ranking.song_id.astype(str), ranking["rank"], strict=True))
    cells = [f"#{where[s]} {_one_line(s)}" for s in new_songs[:shown]]
    more = f", and {len(new_songs) - shown} more" if len(new_songs) > shown else ""
    print("new songs: " + ", ".join(cells) + more)


def cmd_table1(args) -> int:
    res = run_table1(commands, args.labels, args.out, args.rows, args.overrides, highlighter=args.highlighter,
                     workers=args.workers, progress=_progress(args))
    _print_failures(res["failures"])
    print(res["table"].to_string(index=False))
    if res["pairs"] is not None:
        print()
        print(res["pairs"].to_string(index=False))
    print(f"\n{len(res['rows'])} rows in {res['seconds']:.0f} s; run folders in {args.out}, "
          f"comparison in {res['html']}")
    for d in res["diverged"]:
        _diverged(d["non_finite"], d["songs"], "test", d["lr"], f"row ({d['row']}) {d['name']}: ")
    return EXIT_PARTIAL if res["failures"] or res["diverged"] else EXIT_OK


def cmd_compare(args) -> int:
    table, pairs = compare(args.runs, html=args.html)
    print(table.to_string(index=False))
    if pairs is not None:
        print()
        print(pairs.to_string(index=False))
    if args.html:
        print(f"report in {args.html}")
    return EXIT_OK


def cmd_tags(args) -> int:
    if not 1 <= args.top <= len(TAGS):
        raise HitrankError(f"--top {args.top}: expected 1 to {len(TAGS)} tags per file")
    failures = []
    n_files, results = audio_results(args.files, lambda files: tags.tag_files(files, args.model, args.device))
    for path, t in results:
        if isinstance(t, HitrankError):
            _file_failed(path, t, failures, args.json)
        elif args.json:
            print(_json_dump({"path": t["path"], "duration": round(t["duration"], 3), "model": t["model"],
                              "padded": t["padded"], "top": t["top"][: args.top],
                              "tags": {k: round(v, 6) for k, v in t["tags"].items()}}))
        else:
            top = ", ".join(f"{name} {t['tags'][name]:.2f}" for name in t["top"][: args.top])
            note = f"  (padded: the song lasts {t['duration']:.1f} s, shorter than the tagger's 3 s input)" \
                if t["padded"] else ""
            print(f"{path}: {top}{note}")
    _print_file_failures(failures, n_files)
    return EXIT_PARTIAL if failures else EXIT_OK


def cmd_predict(args) -> int:
    pred, n_models, failures = predict(args.model, args.data, out=args.out)
    print(f"scored {len(pred)} rows with {n_models} model(s) of {args.model} -> {args.out}")
    _print_failures([("", path, reason) for path, reason in failures], "tables")
    return EXIT_PARTIAL if failures else EXIT_OK


def cmd_descriptors(args) -> int:
    rep = describe_folder(args.source, args.out, workers=args.workers, progress=_progress(args),
                          allow_outside=args.allow_outside, tags=args.tags, extractor=args.extractor)
    _print_failures(rep.failures)
    print(f"{rep.new} described, {rep.skipped} already done, {rep.failed} failed "
          f"-> {args.out / 'descriptors.csv'} (failures.csv)")
    return EXIT_PARTIAL if rep.failed else EXIT_OK


def cmd_fit(args) -> int:
    _check_top(args)
    commands.check_outputs({args.reference: "--reference", args.candidates: "--candidates",
                            args.negatives: "--negatives"}, args.out, None)
    ranking, n_ref, failures = fit_sources(args.reference, args.candidates, workers=args.workers,
                                           progress=_progress(args), tags=args.tags,
                                           negatives=args.negatives)
    if args.out:  # the failed files too, as `rank --out` lists them
        atomic_write_text(args.out, ranking_with_failures(ranking, failures, "id").to_csv(index=False))
    if args.json:
        print(_json_dump({"columns": ranking.attrs["columns"], "ranking": ranking.to_dict("records"),
                          "failures": [{"song_id": s, "path": p, "error": r} for s, p, r in failures]}))
    else:
        shown = _shown(ranking, args.top)
        for line in _table([("rank", [str(v) for v in shown["rank"]], ">"),
                            ("fit", [f"{v:+.3f}" for v in shown["fit"]], ">"), ("song", list(shown["id"]), "<")]):
            print(line)
        _print_cut(len(ranking), args.top, "candidates")
        _print_failures(failures, "files")
        print(f"ranked {len(ranking)} candidates against {n_ref} reference songs on "
              f"{len(ranking.attrs['columns'])} descriptors" + (f", CSV in {args.out}" if args.out else ""))
    return EXIT_PARTIAL if failures else EXIT_OK


def cmd_highlight(args) -> int:
    if args.method == "fallback" and args.model:
        log.warning("--model %r is not used: --method fallback finds the highlight without a model "
                    "(drop --method to use the attention highlighter)", str(args.model))
    failures = []
    n_files, results = audio_results(args.files,
                                      lambda files: highlight_files(files, args.method, args.model, plot=args.plot))
    header_shown = False
    for path, h in results:
        if isinstance(h, HitrankError):
            _file_failed(path, h, failures, args.json)
            continue
        # a song shorter than the window: the window runs past its end (zero-padded when extracted)
        h["padded"] = bool(padded_flags([h["duration"]], h["end"] - h["start"])[0])
        if args.json:
            print(_json_dump({k: (round(v, 3) if isinstance(v, float) else v) for k, v in h.items()
                              if k in ("path", "start", "end", "method", "duration", "padded", "plot")}))
        else:
            note = f"  (padded: the song lasts {h['duration']:.1f} s)" if h["padded"] else ""
            if not header_shown:
                print(f"{'start s':>7} {'end s':>7}  {'method':<9}  file")
                header_shown = True
            print(f"{h['start']:7.1f} {h['end']:7.1f}  {h['method']:<9}  {path}{note}")
    _print_file_failures(failures, n_files)
    return EXIT_PARTIAL if failures else EXIT_OK


def _file_failed(path, exc: HitrankError, failures: list[str], json_lines: bool) -> None:
    """A file of a batch failed: its message on stderr and in ``failures``; with ``--json`` also
    its line on stdout, ``{"path": ..., "error": ...}`` (one line per file, failed or not)."""
    print(f"error: {exc}", file=sys.stderr)
    failures.append(str(exc))
    if json_lines:
        print(_json_dump({"path": str(path), "error": str(exc).removeprefix(f"{str(path)!r}: ")}))


def _print_file_failures(failures: list[str], n_files: int) -> None:
    """The end of a batch over files: how many failed, then each failure's message again (each
    names its file)."""
    if failures:
        print(f"{len(failures)} of {n_files} files failed:", *(f"  {m}" for m in failures),
              sep="\n", file=sys.stderr)


def cmd_highlighter(args) -> int:
    cfg = load_highlighter_config(args.config, args.overrides)
    s = train_highlighter(args.labels, args.out, cfg, workers=args.workers, progress=_progress(args))
    print(f"trained highlighter on {s['n_train']} songs (validation {s['n_val']}, best epoch "
          f"{s['best_epoch']}, val MSE {s['val_loss']:.4f}) -> {args.out / 'highlighter.pt'}")
    if s["left_out"]:
        print(f"{len(s['left_out'])} labels row(s) left out (named in the warnings above; summary.json "
              "left_out)", file=sys.stderr)
    _print_failures(s["failures"], listed=args.out / "summary.json")
    return EXIT_PARTIAL if s["failures"] or s["left_out"] else EXIT_OK


def cmd_pretrained(args) -> int:
    for folder in import_release(args.path, force=args.force, fusion=args.fusion,
                                 standardisation=args.jynet_standardisation):
        print(f"imported {folder}")
    print("rank a folder with: hitrank rank FOLDER --model yu2018-kkbox [--html report.html]")
    return EXIT_OK


def cmd_demo(args) -> int:
    res = run_demo(commands, args.out, n_songs=args.songs, epochs=args.epochs, workers=args.workers,
                   progress=_progress(args), heldout=args.heldout, folds=args.folds, on_step=_print_demo_step)
    _print_demo(res)
    return EXIT_OK


def _print_demo_step(step: str, facts: dict) -> None:
    """The demo's progress lines, as each step starts (see :data:`hitrank.demo.STEPS`)."""
    if step == "synth":
        print(f"[1/4] synthesising {facts['n_songs']} labelled songs and {facts['heldout']} held-out "
              f"songs into {facts['out']}")
    elif step == "extract":
        print("[2/4] extracting HL-30 log-mels (the 30 s highlight, training-free highlighter)")
    elif step == "cv":
        print(f"[3/4] {facts['folds']}-fold CV of the simple CNN on HL-30 (Table 1 row (c); at most "
              f"{facts['epochs']} epochs)")
    elif step == "cv_done":
        print(f"\nCross-validated on {facts['n_songs']} songs: pooled out-of-fold metrics (every song "
              "scored by the fold model that never saw it), 95% intervals:")
        print(facts["table"].to_string())
    elif step == "rank":
        print(f"[4/4] ranking the {facts['heldout']} held-out songs with the {facts['folds']} fold models")


def _print_demo(res: DemoResult) -> None:
    print(f"\nHeld-out check: the ranking of {res.n_ranked} songs no model trained on, against their "
          "true hit scores, 95% intervals:")
    print(res.heldout_table.to_string())
    print(f"\nThe top {res.show} of the predicted ranking next to the true ranks (1 = biggest hit; a "
          f"random ranking puts on average {res.show * res.top_k / res.n_ranked:.1f} of the true top "
          f"{res.top_k} here):")
    print(res.side.head(res.show).to_string(index=False, formatters={"hit score": "{:.2e}".format}))
    print(f"{res.hits} of the top {res.show} predicted are true top-10% songs; Spearman over all held-out "
          f"songs {res.spearman:+.3f}.")
    print(f"\ndone in {res.seconds:.0f} s. Corpus: {res.corpus}; features: {res.store}; run: "
          f"{res.run_dir}; held-out ranking: {res.ranking_csv}; reports: {res.reports[0]}, {res.reports[1]}")


COMMANDS = {"synth": cmd_synth, "extract": cmd_extract, "train": cmd_train, "cv": cmd_cv,
            "rank": cmd_rank, "demo": cmd_demo, "highlight": cmd_highlight,
            "highlighter": cmd_highlighter, "predict": cmd_predict, "tags": cmd_tags,
            "compare": cmd_compare, "pretrained": cmd_pretrained, "table1": cmd_table1,
            "descriptors": cmd_descriptors, "fit": cmd_fit, "learning-curve": cmd_learning_curve,
            "similar": cmd_similar}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        parser = get_parser()
    except HitrankError as exc:  # e.g. a plug-in of $HITRANK_PLUGINS that does not import
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(args)
    try:
        # --allow-outside: labels CSVs may point outside their folder while the command runs
        with environment({ALLOW_OUTSIDE_ENV: "1"} if getattr(args, "allow_outside", False) else {}):
            return COMMANDS[args.command](args)
    except HitrankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; work done so far is saved; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # e.g. a full disk while writing a store: stop cleanly, nothing is lost
        print(f"error: {_os_error(exc, _resumes(args))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a bug, not the user's input: say so, with its traceback
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # incl. torch's CUDA one
            print(f"error: out of memory in `hitrank {args.command}`; use fewer --workers or a smaller batch "
                  "(--set train.batch_size=...), or a machine with more memory", file=sys.stderr)
            return EXIT_USAGE
        traceback.print_exc()
        print(f"error: an unexpected error in `hitrank {args.command}` (a bug in hitrank, traceback above); "
              "please report it with the command you ran", file=sys.stderr)
        return EXIT_BUG


#: what an OS error on a path means, in words
_OS_ERRORS = {
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file is there where a folder must be made",
    errno.EISDIR: "it is a folder, not a file",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.ENOENT: "no such file or folder",
    errno.EACCES: "permission denied",
}


def _os_error(exc: OSError, resumes: bool) -> str:
    """One line for an OS error that stopped a command: the path (the target of a failed
    rename, not its temporary file) and what went wrong in words, then what to do: a disk that
    filled up is freed and the command run again (it resumes where it can); a path that cannot
    be used is changed."""
    again = "; work done so far is saved, run the same command again to resume" if resumes else ""
    path = exc.filename2 or exc.filename
    if exc.errno not in _OS_ERRORS or not path:
        return f"{exc}{again}"
    if exc.errno == errno.ENOSPC:
        return (f"{str(path)!r}: {_OS_ERRORS[exc.errno]}; free some space, then run the same command again"
                + (" to resume (work done so far is saved)" if resumes else ""))
    return f"{str(path)!r}: {_OS_ERRORS[exc.errno]}; check the path (an output: choose another)" + (
        " (work done so far is saved)" if resumes else "")


def _resumes(args) -> bool:
    """Whether running this command again resumes its work: transfer configs' cv and train
    run again whole from their cached embeddings (into the same --out), descriptor configs'
    train starts again (their cv resumes by fold)."""
    if args.command in ("cv", "train") and getattr(args, "config", None):
        try:
            if is_transfer_config(args.config):
                return False
            return args.command == "cv" or not is_descriptor_config(args.config)
        except HitrankError:
            return False
    return args.command in RESUMES


def _json_dump(obj) -> str:
    return strict_json(obj)


if __name__ == "__main__":
    sys.exit(main())
