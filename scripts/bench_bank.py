#!/usr/bin/env python
"""Model-bank cost per member on this machine, measured side by side in one run.

For each engine (``loop``, ``grouped``, ``bmm``), bank size K and precision, times one
training step of K simple-CNN members (Table 1 row (a): MSE, batch 16, the paper's 128 x 323
log-mel) trained one after another and as one bank step (``hitrank.bank.measure``: the median
of interleaved repeats, process CPU time on the CPU, wall time on CUDA), and prints the
per-member cost of each and their ratio. This is the measurement ``train.bank: auto`` makes
once per machine; here it is printed for every engine and size:

    python scripts/bench_bank.py [--songs 400] [--members 1,4,10] [--steps 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hitrank.bank import FitJob, measure  # noqa: E402
from hitrank.config import load_config  # noqa: E402
from hitrank.data import Target, make_folds  # noqa: E402
from hitrank.runtime import cpu_has_bf16  # noqa: E402

N_FRAMES = 323  # the paper's 30 s at hop 2048


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--songs", type=int, default=400)
    ap.add_argument("--members", default="1,4,10", help="bank sizes K, comma-separated")
    ap.add_argument("--steps", type=int, default=8, help="timed repeats per measurement")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    level = np.minimum(rng.exponential(0.3, args.songs), 2.0)
    scores = np.exp(2 * level + rng.normal(0, 0.05, args.songs))
    mel = rng.normal(-40, 5, (args.songs, 128, N_FRAMES)).astype(np.float32)
    mel[:, 30:50] += 6 * level[:, None, None]
    X = torch.from_numpy(mel.astype(np.float16)).to(device)
    artists = np.array([f"a{i % 40}" for i in range(args.songs)])
    folds = make_folds(args.songs, 10, 0)
    jobs = [FitJob(tr, va, Target.fit("log", scores[tr]), "none", 0.0, None, None, f, None)
            for f, (tr, va, _) in enumerate(folds)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"AVX512-BF16/AMX: {cpu_has_bf16()}")
    print(f"simple CNN (row a), batch 16, 128 x {N_FRAMES} inputs, {args.songs} songs; "
          "one training step per member, ms")
    print(f"{'precision':<9} {'engine':<8} {'K':>3} {'alone/member':>13} {'bank/member':>12} {'speed-up':>9}")
    precisions = ["fp32"] + (["bf16"] if cpu_has_bf16() or device.type == "cuda" else [])
    for precision in precisions:
        cfg = load_config(None, ["train.precision=" + precision])
        for engine in ("loop", "grouped", "bmm"):
            for k in (int(x) for x in args.members.split(",")):
                r = measure(cfg, X, scores, artists, jobs, engine=engine, members=k, steps=args.steps)
                print(f"{precision:<9} {engine:<8} {k:>3} {r['sequential_ms'] / k:13.1f} "
                      f"{r['bank_ms'] / k:12.1f} {r['speedup']:8.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
