"""Playlist fit evaluated as in the playlist-membership seed: which of two "playlists" did a
held-out song come from? Fit rule vs logistic regression vs chance, k-fold, equal sizes.

    python scripts/eval_playlist_fit.py ../shared/data/spotify_hit_predictor/dataset-of-60s.csv \\
        ../shared/data/spotify_hit_predictor/dataset-of-00s.csv [--hits-only] [--folds 10]
"""

from __future__ import annotations

import argparse

from hitrank.descriptors.fit import common_columns, evaluate_two_playlists, matrix
from hitrank.descriptors.table import read_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--hits-only", action="store_true", help="keep rows with target == 1 only")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ta, tb = read_table(args.a), read_table(args.b)
    cols = common_columns(ta, tb)
    xa, xb = matrix(ta, cols), matrix(tb, cols)
    if args.hits_only:
        xa = xa[ta.frame["target"].astype(float).to_numpy() == 1]
        xb = xb[tb.frame["target"].astype(float).to_numpy() == 1]
    res = evaluate_two_playlists(xa, xb, args.folds, args.seed)
    print(f"{res['n_per_playlist']} songs per playlist, {len(cols)} descriptors, {res['folds']} folds")
    for k in ("fit", "logistic", "chance"):
        r = res[k]
        print(f"  {k:<9} accuracy {r['accuracy']:.3f} +- {r['accuracy_std']:.3f}   "
              f"ROC-AUC {r['roc_auc']:.3f} +- {r['roc_auc_std']:.3f}")


if __name__ == "__main__":
    main()
