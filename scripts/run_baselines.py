#!/usr/bin/env python
"""Chance and ceiling next to a CV run: the random-ranking and oracle rows of a Table-1 table.

For the test songs of a run folder written by ``hitrank cv`` (its ``predictions.csv``: every
song once, in the fold that tested it), prints the per-fold mean (and fold std) and the
pooled value of nDCG / Kendall / Spearman / recall @10% for

* the run itself (the same numbers as its ``summary.json``),
* random rankings (``hitrank.uncertainty.random_baseline``: the mean over 200 draws and, in
  brackets, the central 95% of the draws: how far a row can move by chance),
* the oracle: the synthetic corpus's noise-free latent (``truth.csv`` column ``oracle``) used
  as the prediction, i.e. the best a model of the audio could do on this corpus.

    python scripts/run_baselines.py RUN_FOLDER --truth CORPUS/truth.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hitrank.metrics import METRICS  # noqa: E402
from hitrank.train import ranked_last  # noqa: E402
from hitrank.uncertainty import pooled_metrics, random_baseline  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="run folder of `hitrank cv`")
    ap.add_argument("--truth", type=Path, required=True, help="truth.csv of `hitrank synth`")
    ap.add_argument("--top", type=float, default=0.1)
    args = ap.parse_args()
    pred = pd.read_csv(args.run / "predictions.csv")
    truth = pd.read_csv(args.truth, usecols=["song_id", "oracle"])
    df = pred.merge(truth, on="song_id", how="left")
    if df.oracle.isna().any():
        raise SystemExit(f"{args.truth}: no oracle value for {int(df.oracle.isna().sum())} songs of {args.run}")
    y, folds = df.hit_score.to_numpy(float), df.fold.to_numpy()
    print(f"{args.run}: {len(df)} songs, {len(np.unique(folds))} folds; per-fold mean +- std | pooled")
    print(f"{'':<8}" + "".join(f"{m + '@10%':>28}" for m in METRICS))
    for name, p in (("run", ranked_last(df.pred.to_numpy())), ("oracle", df.oracle.to_numpy(float))):
        res = pooled_metrics(y, p, folds, args.top, n_boot=200)
        fold, pooled = res["per_fold"], res["pooled"]
        print(f"{name:<8}" + "".join(f"{fold[m]['mean']:>10.3f} +- {fold[m]['std']:.3f} | {pooled[m]:.3f}"
                                     for m in METRICS))
    rand = random_baseline(y, folds, args.top)
    print(f"{'random':<8}" + "".join(f"{rand[m]['mean']:>10.3f} [{rand[m]['lo']:+.3f}, {rand[m]['hi']:+.3f}]"
                                     for m in METRICS))
    print("(random: the mean of 200 random rankings' per-fold means, [central 95% of them])")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
