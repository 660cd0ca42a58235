#!/usr/bin/env python
"""Share of songs whose 30 s window covers at least half of a true chorus, per method.

Needs a synthetic corpus (its truth.csv knows the chorus times):

    python scripts/eval_highlights.py CORPUS [--model HIGHLIGHTER.pt] [--songs N]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from hitrank import audio
from hitrank.thumbnail import highlight_curve, pick_window
from hitrank.thumbnail.attention import load_highlighter
from hitrank.thumbnail.training import chorus_hit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--model", type=Path, help="attention highlighter checkpoint")
    ap.add_argument("--songs", type=int, default=0, help="evaluate the first N songs (0 = all)")
    args = ap.parse_args()
    truth = pd.read_csv(args.corpus / "truth.csv")
    labels = pd.read_csv(args.corpus / "labels.csv").set_index("song_id")
    if args.songs:
        truth = truth.head(args.songs)
    model = load_highlighter(args.model) if args.model else None
    hits = {"mid30": [], "fallback": [], **({"attention": []} if model else {})}
    for row in truth.itertuples():
        y, duration = audio.load(args.corpus / labels.loc[row.song_id, "path"])
        chorus = json.loads(row.chorus_times)
        hits["mid30"].append(chorus_hit(audio.mid30_window(duration)[0], chorus))
        for method in hits.keys() - {"mid30"}:
            start = pick_window(highlight_curve(y, method=method, model=model), duration)
            hits[method].append(chorus_hit(start, chorus))
    print(f"{len(truth)} songs of {args.corpus}: share of 30 s windows covering >= half a chorus")
    for method, h in hits.items():
        print(f"  {method:<10} {np.mean(h):.3f}")


if __name__ == "__main__":
    main()
