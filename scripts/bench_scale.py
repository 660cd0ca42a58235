#!/usr/bin/env python
"""Scale-out, side by side in one run: extraction engines and torchrun training modes.

Extraction (the same synthetic files, a fresh store each time; wall time including each
engine's start-up: the process pool's spawn, the local Ray instance's start):

  local 1       `extract` in this process
  local 2       `extract`, 2 spawned worker processes
  ray 1 / ray 2 `extract --engine ray` on a local Ray instance with 1 / 2 CPUs

Training (`hitrank cv` on a store of those songs, Siamese A/B, launched with torchrun):

  1 process     torchrun --nproc-per-node 1
  2 data        torchrun --nproc-per-node 2 --distribute data (DDP, gloo on CPU)
  2 folds       torchrun --nproc-per-node 2 --distribute folds (folds as independent jobs)

    python scripts/bench_scale.py [--songs 96] [--segment hl30] [--tags] [--cv-songs 400]
                                  [--folds 4] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hitrank.extract import extract  # noqa: E402
from hitrank.features import FeatureParams  # noqa: E402
from hitrank.segments import params_for  # noqa: E402
from hitrank.synth import synthesize  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_extract(tmp: Path, n: int, segment: str, tags: bool) -> dict:
    corpus = tmp / "corpus"
    synthesize(corpus, n, seed=5, sr=22050, progress=False)
    tag = "segment" if tags else ""
    params = params_for("hl30", tags=tag) if segment == "hl30" else FeatureParams(tags=tag)
    rows = {"ray start": timed(_start_stop_ray)}
    print(f"ray start + stop {rows['ray start']:6.1f} s (2 CPUs, local instance)", flush=True)
    for name, engine, workers in (("local 1", "local", 1), ("local 2", "local", 2),
                                  ("ray 1", "ray", 1), ("ray 2", "ray", 2)):
        out = tmp / f"store_{engine}{workers}"
        secs = timed(lambda: extract(corpus / "labels.csv", out, params, progress=False,  # noqa: B023
                                     engine=engine, workers=workers))  # noqa: B023 - called at once
        rows[name] = secs
        shutil.rmtree(out)
        print(f"extract {name:<8} {secs:6.1f} s  {n / secs:6.1f} songs/s", flush=True)
    for name in ("ray 1", "ray 2"):
        print(f"extract {name:<8} {rows[name] - rows['ray start']:6.1f} s without the Ray start-up")
    return rows


def _start_stop_ray() -> None:
    import ray

    from hitrank.engines import _start_ray

    _start_ray(ray, 2, None)
    ray.shutdown()


def bench_cv(tmp: Path, n: int, folds: int, epochs: int) -> dict:
    corpus = tmp / "cv_corpus"
    synthesize(corpus, n, seed=6, sr=22050, progress=False)
    store = tmp / "cv_store"
    extract(corpus / "labels.csv", store, progress=False, workers=2)
    args = ["cv", "--config", "configs/table1/i_siamese_ab_hl30.yaml", "--store", str(store),
            "--folds", str(folds), "--set", "features.segment=mid30", "--set", f"train.epochs={epochs}",
            "--set", "pairs.w=[0.5]", "--device", "cpu", "-q"]
    rows = {}
    for name, procs, extra in (("1 process", 1, []), ("2 data", 2, ["--distribute", "data"]),
                               ("2 folds", 2, ["--distribute", "folds"])):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
               "-m", "hitrank", *args, "--out", str(tmp / f"run_{procs}{name[2:]}"), *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(2 // procs)}
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        secs = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        rows[name] = secs
        print(f"cv {name:<10} {secs:6.1f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=96, help="songs for the extraction engines")
    ap.add_argument("--segment", default="hl30", choices=["mid30", "hl30"],
                    help="extraction segment (default hl30 with the training-free highlighter: "
                         "a per-song cost closer to a catalogue run's than Mid-30's)")
    ap.add_argument("--tags", action="store_true", help="also compute the 50 MTT tags per song")
    ap.add_argument("--cv-songs", type=int, default=400, help="songs for the torchrun CV")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ex = bench_extract(tmp, args.songs, args.segment, args.tags)
        cv = bench_cv(tmp, args.cv_songs, args.folds, args.epochs)
    print("\nratios (speed-up over one process):")
    for name in ("local 2", "ray 1", "ray 2"):
        print(f"  extract {name:<8} {ex['local 1'] / ex[name]:.2f}x")
    for name in ("2 data", "2 folds"):
        print(f"  cv {name:<10} {cv['1 process'] / cv[name]:.2f}x")
    print(f"  per-song extraction cost here: {ex['local 1'] / args.songs:.3f} core-s ({args.segment}{' + tags' if args.tags else ''})")


if __name__ == "__main__":
    main()
