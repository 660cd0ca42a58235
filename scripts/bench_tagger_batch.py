"""musicnn on the CPU: patches per forward pass, side by side (seconds, kernel time, memory).

Each setting runs in a fresh process over the same files (decoded once there, untimed): the
MTT_musicnn penultimate embedding of every 3 s patch, ``--batch`` patches per forward pass.
Printed per setting: wall and kernel seconds per file, page faults per file and the process's
peak memory, and the ratio of each setting's seconds to the first's.

    python scripts/bench_tagger_batch.py ../shared/data/emotify_dev/audio --files 6 --batches 64,1

hitrank's default on the CPU is one patch per pass (hitrank.tags.musicnn.patch_batch); 64
was the default before 2026-12-07. Needs the musicnn wheel (``pip install --no-deps
musicnn==0.1.0``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def child(batch: int, files: list[str]) -> None:
    """Embed ``files`` with ``batch`` patches per pass; print the timed figures as JSON."""
    import torch

    from hitrank import audio
    from hitrank.tags import musicnn

    torch.set_num_threads(1)
    ys = [audio.load(f, musicnn.SR)[0] for f in files]
    musicnn.penultimate(ys[0], batch=batch)  # weights loaded, first pass: untimed
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for y in ys:
        musicnn.penultimate(y, batch=batch)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    print(json.dumps({"wall": wall / len(ys), "kernel": (r1.ru_stime - r0.ru_stime) / len(ys),
                      "faults": (r1.ru_minflt - r0.ru_minflt) / len(ys)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--batches", default="64,1", help="patches per pass to compare, the first the reference")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("child_files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child, [str(args.folder), *args.child_files])
    from hitrank.corpus import list_folder

    files = [s.path for s in list_folder(args.folder)[: args.files]]
    if not files:
        raise SystemExit(f"{args.folder}: no audio files")
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{len(files)} files, MTT_musicnn penultimate, one torch thread, one process per setting")
    print(f"{'patches per pass':>16} {'s/file':>7} {'kernel s/file':>14} {'faults/file':>12} {'peak MB':>8} {'ratio':>6}")
    first = None
    for b in batches:
        proc = subprocess.Popen([sys.executable, __file__, *files, "--child", str(b)], stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status:
            raise SystemExit(f"the run with --batch {b} failed (status {status})")
        r = json.loads(out)
        first = first or r["wall"]
        print(f"{b:>16} {r['wall']:7.2f} {r['kernel']:14.2f} {r['faults']:12.0f} {usage.ru_maxrss / 1024:8.0f} "
              f"{first / r['wall']:5.2f}x")


if __name__ == "__main__":
    main()
