"""``hitrank demo``: the whole pipeline on the embedded synthetic corpus.

1. synthesise a labelled corpus and a small held-out folder (``hitrank synth``),
2. extract Mid-30 log-mels (``hitrank extract``),
3. 10-fold CV of the simple CNN (rating) and the Siamese CNN with A/B sampling,
4. print their metrics side by side,
5. rank the held-out folder with the Siamese fold ensemble, and check the ranking against
   the held-out songs' true scores (which the synthetic corpus knows).

Everything is cached in the work folder: a second run reuses the corpus, features and
finished folds.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from .config import load_config
from .cv import run_cv
from .data import load_dataset
from .extract import extract
from .rank import rank_folder
from .runtime import cache_root
from .store import FeatureStore
from .synth import synthesize

log = logging.getLogger(__name__)

DEMO_SEED = 0
HELDOUT_SEED = 1
HELDOUT_SONGS = 24
DEMO_SR = 22050  # Hz; the analysis rate, so no resampling is needed in the demo

MODELS = {
    "simple_cnn": ["model.name=simple_cnn", "pairs.sampling=none"],
    "siamese_ab": ["model.name=siamese", "pairs.sampling=ab", "pairs.w=[0.5]", "pairs.margin=[0.5]"],
}


def run_demo(out: str | os.PathLike | None = None, n_songs: int = 240, epochs: int = 8,
             workers: int = 2, progress: bool = True) -> dict:
    """Run the demo; returns ``{model: summary}`` and prints a report."""
    t0 = time.time()
    out = Path(out) if out else cache_root() / "demo"
    corpus, heldout = out / "corpus", out / "heldout"
    print(f"[1/5] synthesising {n_songs} songs + {HELDOUT_SONGS} held-out songs into {out}")
    synthesize(corpus, n_songs, seed=DEMO_SEED, sr=DEMO_SR, workers=workers, progress=progress)
    truth_held = synthesize(heldout, HELDOUT_SONGS, seed=HELDOUT_SEED, sr=DEMO_SR, workers=workers,
                            progress=progress)
    print("[2/5] extracting Mid-30 log-mel features")
    extract(corpus / "labels.csv", out / "store", workers=workers, progress=progress)
    ds, problems = load_dataset(FeatureStore.open(out / "store"))
    summaries = {}
    for i, (name, overrides) in enumerate(MODELS.items()):
        print(f"[{3 + i}/5] 10-fold CV of {name} ({epochs} epochs max per fold)")
        cfg = load_config(None, [f"name=demo_{name}", f"train.epochs={epochs}", "train.patience=3",
                                 *overrides])
        summaries[name] = run_cv(cfg, ds, out / "runs" / name, progress=progress)
    rows = []
    for name, s in summaries.items():
        rows.append({"model": name, **{k: f"{s[k + '_mean']:+.3f} +- {s[k + '_std']:.3f}"
                                       for k in ("ndcg", "kendall", "spearman", "spearman_all")}})
    table = pd.DataFrame(rows).set_index("model")
    table.columns = ["nDCG@10%", "Kendall@10%", "Spearman@10%", "Spearman (all)"]
    print(f"\nCross-validated on {len(ds)} synthetic songs (mean +- std over 10 folds):")
    print(table.to_string())
    print("[5/5] ranking the held-out folder with the Siamese A/B fold ensemble")
    ranking, failures = rank_folder(heldout / "audio", out / "runs" / "siamese_ab",
                                    cache=out / "heldout_store", workers=1, progress=progress)
    ranking.to_csv(out / "heldout_ranking.csv", index=False)
    from .cvreport import load_run, write_cv_report
    from .report import write_ranking_report

    write_ranking_report(ranking, failures, out / "heldout_report.html", str(out / "runs" / "siamese_ab"),
                         store_dir=ranking.attrs.get("store"))
    write_cv_report([load_run(out / "runs" / name) for name in summaries], out / "cv_report.html")
    truth = truth_held.set_index(truth_held.path.str.split("/").str[-1])["hit_score"]
    true_scores = truth.loc[ranking.song_id].to_numpy()
    rho = spearmanr(ranking.score, true_scores)[0]
    print(ranking.head(5)[["rank", "song_id", "score", "score_std"]].to_string(index=False))
    print(f"held-out check: Spearman between predicted and true hit scores = {rho:+.3f} "
          f"({len(ranking)} songs the models never saw)")
    print(f"\ndone in {time.time() - t0:.0f} s. Corpus: {corpus}; features: {out / 'store'}; "
          f"runs: {out / 'runs'}; held-out ranking: {out / 'heldout_ranking.csv'}; reports: "
          f"{out / 'heldout_report.html'}, {out / 'cv_report.html'}")
    return summaries
