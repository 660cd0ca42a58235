"""JYnet (Liu & Yang 2016) vs musicnn (MTT_musicnn): tags of the same clips, and their speed, CPU.

Both ports tag the Mid-30 segment (30 s centred on the middle, decoded at 16 kHz with soxr HQ)
of each recording in a folder; JYnet uses the per-clip standardisation of the released
pipeline (``--standardisation shipped``: the released MTT standardisers) and, like the original, sees the first 911 frames (29.1 s). For each clip it prints
the Spearman rank correlation of the two 50-tag vectors (hitrank's TAGS order, mapped by name)
and each tagger's top 5 tags, then the songs/s of each port (tagging only: front end +
network, decoding excluded), timed side by side in this process with torch's default threads:

    python scripts/compare_taggers.py [--audio ../shared/audio] [--hsp ../shared/reference/hsp_cnn]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AUDIO_EXTS = (".ogg", ".mp3", ".wav", ".flac")
TOP = 5  # tags listed per tagger


def get_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--audio",
        type=Path,
        default=ROOT.parent / "shared" / "audio",
        help="folder of recordings (default: ../shared/audio)",
    )
    ap.add_argument(
        "--hsp",
        type=Path,
        default=ROOT.parent / "shared" / "reference" / "hsp_cnn",
        help="JYnet release folder (hsp_cnn data or an HSP_CNN checkout)",
    )
    ap.add_argument(
        "--resampler",
        choices=("soxr_hq", "kaiser_best"),
        default="soxr_hq",
        help="JYnet's resampler to 16 kHz (kaiser_best = the original's, needs resampy)",
    )
    ap.add_argument(
        "--standardisation",
        choices=("clip", "shipped"),
        default="clip",
        help="JYnet input standardisation (clip = the released pipeline's refit)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="timing passes over the clips")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)

    import torch
    from scipy.stats import spearmanr

    from hitrank import audio
    from hitrank.tags import TAGS, musicnn
    from hitrank.tags import jynet as J

    files = sorted(p for p in args.audio.iterdir() if p.suffix.lower() in AUDIO_EXTS)
    if not files:
        raise SystemExit(f"no audio files ({', '.join(AUDIO_EXTS)}) in {args.audio}")
    net = J.JYNet.from_release(args.hsp)

    clips = {}  # name -> (16 kHz audio for musicnn, (audio, sr) for JYnet)
    for f in files:
        if args.resampler == "soxr_hq":
            y16 = audio.load_mid30(f, J.SR).audio
            clips[f.name] = (y16, (y16, J.SR))
        else:
            sr = audio.info(f).samplerate
            y = audio.load_mid30(f, sr).audio
            clips[f.name] = (audio.resample(y, sr, J.SR), (y, sr))

    def run_jynet(c):
        return J.tag_vector(*c[1], net, args.standardisation, resampler=args.resampler)

    def run_musicnn(c):
        return musicnn.tag_vector(c[0], "MTT_musicnn")

    print(
        f"JYnet ({args.standardisation} standardisation, {args.resampler}) vs MTT_musicnn, Mid-30 segments"
    )
    print(f"{'clip':<44} {'rho':>6}  top {TOP}")
    for name, c in clips.items():
        vj, vm = run_jynet(c), run_musicnn(c)
        rho = spearmanr(vj, vm).statistic
        top_j = ", ".join(f"{TAGS[i]} {vj[i]:.2f}" for i in np.argsort(-vj)[:TOP])
        top_m = ", ".join(f"{TAGS[i]} {vm[i]:.2f}" for i in np.argsort(-vm)[:TOP])
        print(f"{name[:44]:<44} {rho:6.3f}  JYnet:   {top_j}")
        print(f"{'':<44} {'':>6}  musicnn: {top_m}")

    times = {"JYnet": 0.0, "musicnn": 0.0}
    for _ in range(max(1, args.repeats)):
        for c in clips.values():  # alternate the two so both see the same machine load
            for label, fn in (("JYnet", run_jynet), ("musicnn", run_musicnn)):
                t0 = time.perf_counter()
                fn(c)
                times[label] += time.perf_counter() - t0
    n = len(clips) * max(1, args.repeats)
    print(
        f"\nthroughput on 30 s clips, tagging only, torch threads {torch.get_num_threads()}, "
        f"{n} clips each:"
    )
    for label, t in times.items():
        print(f"  {label:<8} {n / t:6.2f} songs/s  ({1000 * t / n:.0f} ms per clip)")


if __name__ == "__main__":
    main()
