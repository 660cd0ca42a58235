"""How a transfer config ranks songs it has never heard, over many random halves.

One train/test split of a few hundred songs is a noisy estimate: on emotify_dev the
within-genre Spearman of one held-out half moves by about 0.1 from one split to the next.
This script draws ``--splits`` random halves (each stratum's groups, e.g. each genre's
duplicate groups, cut in two halves at random, so a group never sits on both sides), trains
the config on one half (for ``real/auto``: its inner cross-validated choice of learner, on
that half only) and ranks the other, then the other way round, and prints the mean over the
``2 x splits`` test halves, with its standard error, of the Spearman over all test songs and
inside each stratum (hitrank.strata, one test set), next to the stratum-mean baseline (each
test song predicted by its stratum's mean label in the training half) and the paired
difference. The embeddings come from the cache like ``hitrank cv``'s.

    python scripts/repeated_halves.py --config real/auto --labels ../shared/data/emotify_dev/labels.csv --within genre --split-by group --splits 20

``--out FILE.csv`` writes one row per test half.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from hitrank import strata
from hitrank.runtime import keep_freed_memory
from hitrank.transfer.config import load_transfer_config
from hitrank.transfer.protocol import choose, fit_one, label_column, load_data, predict_one


def halves(stratum: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) bool: the songs of half A. Each stratum's groups are shuffled and the first half of
    them (rounded down) go to A; a song with no group ('') is a group of its own."""
    unit = np.where(group == "", np.char.add("song:", np.arange(len(group)).astype(str)), group)
    a = np.zeros(len(unit), dtype=bool)
    for s in np.unique(stratum):
        units = np.unique(unit[stratum == s])
        rng.shuffle(units)
        a |= (stratum == s) & np.isin(unit, units[: len(units) // 2])
    return a


def scores(y: np.ndarray, pred: np.ndarray, stratum: np.ndarray) -> tuple[float, float]:
    """Spearman over all songs and the mean Spearman inside the strata of one test set."""
    one = np.zeros(len(y), dtype=int)
    within = strata.within_metrics(y, pred, one, stratum, n_boot=1)["mean"].get("spearman", np.nan)
    return float(spearmanr(y, pred)[0]), float(within)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="a transfer config, e.g. real/auto")
    ap.add_argument("--labels", required=True, help="labels CSV (song_id, path, hit_score, ...)")
    ap.add_argument("--within", required=True, help="labels column of the strata, e.g. genre")
    ap.add_argument("--split-by", default="group", help="labels column whose groups stay on one side (default: group)")
    ap.add_argument("--splits", type=int, default=20, help="random halves (each tested both ways; default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random halves")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--workers", type=int, default=1, help="processes embedding songs not in the cache yet")
    ap.add_argument("--out", help="CSV with one row per test half")
    args = ap.parse_args(argv)
    keep_freed_memory()  # as the CLI does: musicnn embeds about 1.8x faster (docs/benchmarks.md)
    if args.splits < 1:
        ap.error(f"--splits {args.splits}: expected at least 1")
    cfg = load_transfer_config(args.config, [*args.set, f"cv.within={args.within}", f"cv.group_by={args.split_by}"])
    data = load_data(cfg, args.labels, workers=args.workers)
    stratum = label_column(data, args.within, "--within")
    group = label_column(data, args.split_by, "--split-by")
    rng = np.random.default_rng(args.seed)
    rows, t0 = [], time.time()
    for split in range(args.splits):
        a = halves(stratum, group, rng)
        for side, (train, test) in enumerate(((a, ~a), (~a, a))):
            tr, te = np.flatnonzero(train), np.flatnonzero(test)
            seed = cfg.train.seed + 2 * split + side
            name, _, _ = choose(cfg, data.X[tr], data.y[tr], data.ids[tr], group[tr], stratum[tr], seed)
            model = fit_one(cfg, name, data.X[tr], data.y[tr], data.ids[tr], seed)
            pred = predict_one(model, data.X[te])
            folds = np.where(train, 0, 1)
            base = strata.stratum_mean_predictions(data.y, folds, stratum)[te]
            (m_all, m_in), (b_all, b_in) = scores(data.y[te], pred, stratum[te]), scores(data.y[te], base, stratum[te])
            rows.append({"split": split, "test_half": "BA"[side], "train_songs": len(tr), "test_songs": len(te),
                         "learner": name, "spearman": m_all, "spearman_within": m_in,
                         "baseline_spearman": b_all, "baseline_within": b_in})
            print(f"split {split} {'BA'[side]}: {name:8s} all {m_all:+.3f} within {m_in:+.3f} "
                  f"(baseline {b_all:+.3f} / {b_in:+.3f})", flush=True)
    t = pd.DataFrame(rows)
    t["difference"] = t.spearman - t.baseline_spearman
    if args.out:
        t.to_csv(args.out, index=False)

    def line(what: str, column: str) -> str:
        v = t[column].to_numpy(dtype=float)
        return f"  {what:34s} {v.mean():+.3f} (se {v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan:.3f})"

    print(f"\n{cfg.name}: {len(t)} test halves of about {int(t.test_songs.mean())} songs, trained on the other half "
          f"({time.time() - t0:.0f} s); learners chosen: {t.learner.value_counts().to_dict()}")
    print(line("Spearman, all songs", "spearman"))
    print(line(f"Spearman within {args.within}", "spearman_within"))
    print(line(f"{args.within} mean (baseline), all songs", "baseline_spearman"))
    print(line("model - baseline, all songs", "difference"))
    print(f"  within {args.within} above 0 in {(t.spearman_within > 0).mean():.0%} of the test halves")


if __name__ == "__main__":
    main()
