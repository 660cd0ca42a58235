#!/usr/bin/env python
"""Training speed, measured side by side in one run: the sequential fp32 trainer against the
new path (train.precision auto, train.bank auto) on Table-1 rows (a) and (i), and start-up.

    python scripts/bench_train.py [--store STORE_MID30] [--songs 2000] [--epochs 2] [--folds 10]

Prints, for each row and path: wall time of a 10-fold CV at a fixed number of epochs (early
stopping off), songs (or pairs) per second per model, achieved GFLOP/s (FLOPs of the model's
forward + backward counted by torch.utils.flop_counter) and that rate as a fraction of this
machine's measured fp32 matmul rate (measured here, same threads); then the start-up time of
`hitrank --help`, of `hitrank extract` on a finished store and of `hitrank rank` on a cached
folder. Without --store a store of random log-mels with a planted signal is built.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hitrank.data import load_dataset  # noqa: E402
from hitrank.features import FeatureParams  # noqa: E402
from hitrank.models import build  # noqa: E402
from hitrank.runtime import cpu_has_bf16, use_bf16  # noqa: E402
from hitrank.store import FeatureStore  # noqa: E402

ROWS = {"a": "table1/a_simple_cnn_mid30", "i": "table1/i_siamese_ab_hl30"}
MATMUL_N = 2048  # size of the square matmuls that measure the machine's rate


def matmul_rate(dtype=torch.float32, seconds: float = 2.0) -> float:
    """GFLOP/s of square float matmuls on this machine's torch threads."""
    a, b = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype), torch.randn(MATMUL_N, MATMUL_N, dtype=dtype)
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * MATMUL_N ** 3 * n / (time.perf_counter() - t0) / 1e9


def flops_per_song(siamese: bool) -> float:
    """FLOPs of forward + backward per song (a pair is two songs) of the paper's CNN."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build("simple_cnn")
    x = torch.randn(16, 128, 323)
    with FlopCounterMode(display=False) as fc:
        model(x).sum().backward()
    return fc.get_total_flops() / 16 * (2 if siamese else 1)


def make_store(root: Path, n: int, seed: int = 0) -> None:
    """Random log-mels whose level in a band plants a learnable hit score."""
    params = FeatureParams()
    rng = np.random.default_rng(seed)
    with FeatureStore.create_or_open(root, params) as store:
        z = rng.normal(size=n)
        store.plan([(f"s{i:06d}", f"/songs/s{i:06d}.wav", f"artist{i % (n // 4)}",
                     float(np.exp(z[i]) * 1e-5)) for i in range(n)])
        for i in range(n):
            x = rng.normal(-40, 10, (params.n_mels, params.n_frames))
            x[20:40] += 5 * z[i]
            store.write(f"s{i:06d}", x.astype(np.float16), {"seg_start": 0.0, "seg_end": 30.0,
                                                              "duration": 180.0, "padded": False})


def time_row(row: str, store: Path, epochs: int, folds: int, sets: list[str], out: Path,
             code: Path = ROOT) -> dict:
    """Wall time of ``hitrank cv`` of a Table-1 row at a fixed number of epochs (early stopping
    off), run from the checkout ``code`` (this one, or an older revision) in a fresh process."""
    import json

    config = code / "configs" / "table1" / (Path(ROWS[row]).name + ".yaml")
    args = [sys.executable, "-m", "hitrank", "cv", "--config", str(config), "--store", str(store),
            "--out", str(out), "-q", "--set", f"train.epochs={epochs}", "--set", f"train.patience={epochs + 1}",
            "--set", f"cv.folds={folds}", "--set", "pairs.w=[0.5]", "--set", "features.segment=mid30"]
    for item in sets:
        args += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(code)}
    t0 = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=code, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"hitrank cv of row ({row}) from {code} failed (exit {done.returncode}):\n"
                         + done.stderr[-2000:])
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["n_songs"] * (folds - 2) / folds * epochs * folds  # songs or pairs trained on
    return {"wall": wall, "per_model": steps / wall, "summary": summary}


def checkout(rev: str, where: Path) -> Path:
    """A work tree of revision ``rev`` of this repository (for the "before" column)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where), rev],
                   check=True, capture_output=True)
    return where


def start_up(store: Path, folder: Path, run: Path, cache: Path) -> dict:
    """Median wall time of three runs of each command (a fresh interpreter each time)."""
    cmds = {"hitrank --help": ["--help"],
            "hitrank extract (finished store)": ["extract", str(folder), "--out", str(store), "-q"],
            "hitrank rank (cached folder)": ["rank", str(folder), "--model", str(run), "--cache", str(cache),
                                             "-q", "--top", "0"],
            "python -c 'import torch'": None}
    out = {}
    for name, args in cmds.items():
        cmd = [sys.executable, "-c", "import torch"] if args is None else [sys.executable, "-m", "hitrank", *args]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=False, capture_output=True)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="a Mid-30 store with hit scores (default: build one)")
    ap.add_argument("--songs", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per model (early stopping off)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--rows", default="a,i")
    ap.add_argument("--before", default="df36950", help="git revision of the trainer to compare "
                    "with (default: the last commit before the 2026-12 speed work)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, bf16 CPU: {cpu_has_bf16()}, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    fp32, bf16 = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
    print(f"measured matmul rate ({MATMUL_N}^2): fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = (args.store or tmp / "store").resolve()
        if not (store / "params.json").exists():
            make_store(store, args.songs)
        ds, _ = load_dataset(FeatureStore.open(store))
        print(f"{len(ds)} songs, {args.folds} folds, {args.epochs} epochs per model, batch 16")
        old = checkout(args.before, tmp / "before")
        paths = {f"before ({args.before}: 1 process, 2 threads, fp32)": ([], old),
                 "now, fp32, 1 process": (["train.precision=fp32", "train.bank=off", "cv.processes=1"], ROOT),
                 "now, bf16, 1 process": (["train.precision=bf16", "cv.processes=1"], ROOT),
                 "now, default (fold processes, precision auto, bank auto)": ([], ROOT)}
        rows = []
        for row in args.rows.split(","):
            for name, (sets, code) in paths.items():
                res = time_row(row, store, args.epochs, args.folds, sets, tmp / f"{row}_{len(rows)}", code)
                flops = flops_per_song(row != "a") * res["per_model"]
                rows.append((row, name, res, flops / 1e9))
                print(f"  ({row}) {name}: {res['wall']:.0f} s", flush=True)
        print(f"\n{'row':<4} {'path':<56} {'wall':>7} {'throughput':>14} {'GFLOP/s':>8} {'of fp32 mm':>10} "
              f"{'speed-up':>8}  nDCG@10%")
        for row, name, res, gf in rows:
            base = next(r for r in rows if r[0] == row)[2]["wall"]
            unit = "pairs/s" if row != "a" else "songs/s"
            print(f"({row})  {name:<56} {res['wall']:6.0f}s {res['per_model']:8.0f} {unit} {gf:8.1f} "
                  f"{gf / fp32:9.0%} {base / res['wall']:7.2f}x  {res['summary']['ndcg_mean']:.3f}")
        print(f"(precision auto on this CPU: bf16 autocast {'on' if use_bf16('auto', torch.device('cpu')) else 'off'})")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
        folder = tmp / "songs"
        folder.mkdir()
        from hitrank.synth import synthesize

        synthesize(tmp / "c", 4, seed=0, sr=22050, progress=False)
        for p in (tmp / "c" / "audio").iterdir():
            (folder / p.name).symlink_to(p)
        run = tmp / "a_3"
        subprocess.run([sys.executable, "-m", "hitrank", "extract", str(folder), "--out", str(tmp / "st"), "-q"],
                       check=True)
        subprocess.run([sys.executable, "-m", "hitrank", "rank", str(folder), "--model", str(run), "--cache",
                        str(tmp / "cache"), "-q"], check=True, capture_output=True)
        print("\nstart-up (median of 3, a fresh interpreter each):")
        for name, t in start_up(tmp / "st", folder, run, tmp / "cache").items():
            print(f"  {name:<36} {t:5.2f} s")


if __name__ == "__main__":
    main()
