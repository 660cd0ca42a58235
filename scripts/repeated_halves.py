"""How a transfer config ranks songs it has never heard, over many random halves.

Draws ``--splits`` random halves of the labelled songs (each stratum's groups halved, a group
never on both sides), trains the config on one half (for ``real/auto``: its inner
cross-validated choice of learner, on that half only) and ranks the other, then the other way
round, and prints the mean over the ``2 x splits`` test halves of the Spearman over all test
songs and inside each stratum, next to the stratum-mean baseline, with the spread of single
halves and a standard error corrected for the overlap of the halves
(:mod:`hitrank.transfer.halves`). The embeddings come from the cache like ``hitrank cv``'s.

    python scripts/repeated_halves.py --config real/auto --labels ../shared/data/emotify_dev/labels.csv --within genre --split-by group --splits 20

``--out FILE.csv`` writes one row per test half.
"""

from __future__ import annotations

import argparse
import time

from hitrank.transfer.config import load_transfer_config
from hitrank.transfer.halves import repeated_halves, summarize_halves
from hitrank.transfer.protocol import label_column, load_data


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="a transfer config, e.g. real/auto")
    ap.add_argument("--labels", required=True, help="labels CSV (song_id, path, hit_score, ...)")
    ap.add_argument("--within", required=True, help="labels column of the strata, e.g. genre")
    ap.add_argument("--split-by", default="group", help="labels column whose groups stay on one side (default: group)")
    ap.add_argument("--splits", type=int, default=20, help="random splits (each tested both ways; default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random halves")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--workers", type=int, default=1, help="processes embedding songs not in the cache yet")
    ap.add_argument("--out", help="CSV with one row per test half")
    args = ap.parse_args(argv)
    if args.splits < 1:
        ap.error(f"--splits {args.splits}: expected at least 1")
    t0 = time.time()
    cfg = load_transfer_config(args.config, [*args.set, f"cv.within={args.within}", f"cv.group_by={args.split_by}"])
    data = load_data(cfg, args.labels, workers=args.workers)
    t = repeated_halves(cfg, data, label_column(data, args.within, "--within"),
                        label_column(data, args.split_by, "--split-by"), args.splits, args.seed)
    t["difference"] = t.spearman - t.baseline_spearman
    if args.out:
        t.to_csv(args.out, index=False)
    print(f"{cfg.name}: {len(t)} test halves of about {t.test_songs.mean():.0f} songs, each model trained on the "
          f"other half ({time.time() - t0:.0f} s); learners chosen: {t.learner.value_counts().to_dict()}")
    print(f"  {'':34s} {'mean':>7} {'sd':>6} {'se':>6}   (sd: single halves; se: corrected for overlap)")
    for what, column in (("Spearman, all songs", "spearman"), (f"Spearman within {args.within}", "spearman_within"),
                         (f"{args.within} mean (baseline), all songs", "baseline_spearman"),
                         ("model - baseline, all songs", "difference")):
        r = summarize_halves(t, column)
        undefined = f"   ({r['undefined']} halves undefined)" if r["undefined"] else ""
        print(f"  {what:34s} {r['mean']:+7.3f} {r['sd']:6.3f} {r['se']:6.3f}{undefined}")
    within = t.spearman_within.dropna()
    print(f"  within {args.within} above 0 in {(within > 0).mean():.0%} of the {len(within)} test halves where defined")


if __name__ == "__main__":
    main()
