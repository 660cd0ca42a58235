"""Playlist fit evaluated as in the playlist-membership seed: which of two "playlists" did a
held-out song come from? Fit rule, the classifier chosen on validation (DNN, logistic
regression or gradient-boosted trees), each candidate, logistic regression and chance; k-fold,
equal sizes.

    python scripts/eval_playlist_fit.py ../shared/data/spotify_hit_predictor/dataset-of-60s.csv \\
        ../shared/data/spotify_hit_predictor/dataset-of-00s.csv [--hits-only] [--folds 10]
    python scripts/eval_playlist_fit.py A.csv B.csv --markdown "1960s vs 2000s, all songs"
"""

from __future__ import annotations

import argparse

import numpy as np

from hitrank.descriptors.fit import common_columns, evaluate_two_playlists, matrix
from hitrank.descriptors.table import read_table, song_keys

METHODS = ("fit", "chosen", "dnn", "gbdt", "logistic", "chance")


def _first(keys: np.ndarray) -> np.ndarray:
    """True at the first row of each key."""
    first = np.zeros(len(keys), bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--hits-only", action="store_true", help="keep rows with target == 1 only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", metavar="LABEL",
                    help="also print one Markdown table row (docs/descriptors.md layout) labelled LABEL")
    args = ap.parse_args()
    ta, tb = read_table(args.a), read_table(args.b)
    cols = common_columns(ta, tb)
    xa, xb = matrix(ta, cols), matrix(tb, cols)
    # one row per song (same URI, or artist + title + duration), and no song in both playlists:
    # a copy in another fold would be scored on its own label
    keys, _ = song_keys(read_table([args.a, args.b]))
    ka, kb = keys[:len(ta)], keys[len(ta):]
    shared = np.intersect1d(ka, kb)
    keep_a = ~np.isin(ka, shared) & _first(ka)
    keep_b = ~np.isin(kb, shared) & _first(kb)
    print(f"removed {int((~keep_a).sum())} + {int((~keep_b).sum())} rows: copies of a song, "
          f"{len(shared)} songs in both playlists")
    if args.hits_only:
        keep_a &= ta.frame["target"].astype(float).to_numpy() == 1
        keep_b &= tb.frame["target"].astype(float).to_numpy() == 1
    xa, xb = xa[keep_a], xb[keep_b]
    res = evaluate_two_playlists(xa, xb, args.folds, args.seed)
    picked = ", ".join(f"{k} {v}" for k, v in res["choices"].items() if v)
    print(f"{res['n_per_playlist']} songs per playlist, {len(cols)} descriptors, {res['folds']} folds; "
          f"chosen on validation: {picked}")
    for k in METHODS:
        r = res[k]
        print(f"  {k:<9} accuracy {r['accuracy']:.3f} +- {r['accuracy_std']:.3f}   "
              f"ROC-AUC {r['roc_auc']:.3f} +- {r['roc_auc_std']:.3f}")
    if args.markdown:
        cell = {k: f"{res[k]['accuracy']:.3f} / {res[k]['roc_auc']:.3f}" for k in METHODS}
        print(f"| {args.markdown} | {res['n_per_playlist']} | {cell['fit']} | {cell['chosen']} "
              f"({picked}) | {cell['dnn']} | {cell['gbdt']} | {cell['logistic']} | 0.5 |")


if __name__ == "__main__":
    main()
