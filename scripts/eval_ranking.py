"""Score a ranking CSV (`hitrank rank ... --out ranking.csv`) against a labels CSV.

Joins the two by file (the last two path components, e.g. `rock/017.ogg`, so a folder of
links or a copy of the audio still matches) and prints the Spearman over all songs and inside
each stratum, with 95% bootstrap intervals over songs, or with ``--group-by artist`` over whole
artists (hitrank.strata: one test set, so the within-stratum ranks are those of the songs of
each stratum). With ``--baseline-labels TRAIN.csv`` (and ``--within``) it also scores the
stratum-mean baseline, each song predicted by its stratum's mean label among the model's
training songs, and the paired difference model minus baseline over the same songs.

    python scripts/eval_ranking.py ../shared/data/emotify_dev/labels.csv ranking.csv --within genre
    python scripts/eval_ranking.py B/labels.csv rankB.csv --within genre --group-by artist --baseline-labels A/labels.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from hitrank import strata
from hitrank.corpus import read_text_table
from hitrank.fileio import strict_json
from hitrank.transfer.report import difference, figure


def _read(path: str) -> pd.DataFrame:
    """A CSV with every cell as text (hitrank.corpus.read_text_table), ``hit_score`` and the
    numeric columns of a ranking as numbers (NaN where not numeric)."""
    t = read_text_table(path)
    for c in ("hit_score", "score", "best_score", "percentile"):
        if c in t:
            t[c] = pd.to_numeric(t[c], errors="coerce")
    return t


def _key(paths: pd.Series) -> pd.Series:
    return paths.astype(str).str.replace("\\", "/").str.split("/").str[-2:].str.join("/")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels")
    ap.add_argument("ranking")
    ap.add_argument("--within", default="", help="a labels column (e.g. genre)")
    ap.add_argument("--score", default="score", help="the ranking's score column")
    ap.add_argument("--group-by", default="", help="a labels column (e.g. artist) whose groups the "
                    "bootstrap intervals resample whole (default: songs)")
    ap.add_argument("--baseline-labels", default="", help="the model's training labels CSV: also score the "
                    "stratum-mean baseline (needs --within) and the paired difference")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # every cell as text, as `hitrank cv` reads labels (a stratum 'NA' stays a name; '1' stays '1')
    lab, rk = _read(args.labels), _read(args.ranking)
    if args.score in rk:
        rk[args.score] = pd.to_numeric(rk[args.score], errors="coerce")
    lab["key"], rk["key"] = _key(lab["path"]), _key(rk["path"])
    df = rk.merge(lab, on="key", suffixes=("", "_label"))
    df = df[np.isfinite(df["hit_score"]) & np.isfinite(df[args.score])]
    if len(df) < 3:
        raise SystemExit(f"only {len(df)} ranked songs match the labels by file name")
    s = df[args.within].to_numpy(str) if args.within else None  # '': no stratum
    group = f"{args.group_by}_label" if f"{args.group_by}_label" in df.columns else args.group_by  # the labels' own
    if args.group_by and group not in df.columns:
        raise SystemExit(f"--group-by {args.group_by!r}: {args.labels!r} has no such column")
    g = df[group].to_numpy(str) if args.group_by else None
    y, pred, one = df["hit_score"].to_numpy(float), df[args.score].to_numpy(float), np.zeros(len(df), dtype=int)
    ev = strata.evaluate(y, pred, one, s, groups=g)
    if args.baseline_labels:
        if s is None:
            raise SystemExit("--baseline-labels needs --within COLUMN (the stratum whose training mean predicts)")
        train = _read(args.baseline_labels)
        if args.within not in train.columns:
            raise SystemExit(f"--baseline-labels: {args.baseline_labels!r} has no {args.within!r} column")
        train = train[np.isfinite(train["hit_score"])]
        # the training songs as fold 1, the ranked ones as fold 0: fold 0's stratum means
        both = strata.stratum_mean_predictions(np.concatenate([train["hit_score"].to_numpy(float), y]),
                                               np.r_[np.ones(len(train), int), one],
                                               np.concatenate([train[args.within].to_numpy(str), s]))
        base = both[len(train):]
        ev["baseline"] = strata.evaluate(y, base, one, s, groups=g)["pooled"]
        ev["model_minus_baseline"] = strata.paired_difference(y, pred, base, one, s, groups=g)
    if args.json:
        print(strict_json(ev, indent=2))  # undefined figures: null
        return
    p = ev["pooled"]
    print(f"{len(df)} songs: Spearman {figure(p, 'spearman')}, nDCG@10% {figure(p, 'ndcg')}")
    if ev["within"]:
        w = ev["within"]["mean"]
        print(f"within {args.within}: Spearman {figure(w, 'spearman') if w else 'n/a (no stratum has labels that vary)'}")
        for name, d in ev["within"]["strata"].items():
            print(f"  {name} ({d['n']}): {figure(d, 'spearman')}")
    if "baseline" in ev:
        b, d = ev["baseline"], ev["model_minus_baseline"]
        print(f"{args.within} mean of the training labels: Spearman {figure(b, 'spearman')}, nDCG@10% {figure(b, 'ndcg')}")
        within = f", {difference(d['within'])} within {args.within}" if d["within"] else ""
        print(f"model - {args.within} mean, paired: {difference(d['pooled'])} over all songs{within}")

if __name__ == "__main__":
    main()
