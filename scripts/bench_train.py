#!/usr/bin/env python
"""Training throughput and memory, measured side by side in one run.

Builds a feature store of ``--songs`` random log-mels (the paper's 15,000 songs by default,
about 1.2 GB of float16) with hitrank's own store code, loads it the way ``hitrank cv`` does,
puts the whole feature tensor on the device and times, on every available device:

* simple CNN rating steps (songs/s), Siamese A/B steps (pairs/s; two songs per pair), and
  inference (songs/s), batches gathered by index from the resident tensor (no DataLoader);
* peak host memory (max RSS) of this process after loading the store and training.

    python scripts/bench_train.py [--songs 15000] [--steps 60] [--batch 32]

On CUDA it also reports bfloat16 autocast (AMP) against float32 and the GPU utilisation
(torch.cuda.utilization, when pynvml is available).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hitrank.data import load_dataset, sample_pairs
from hitrank.features import FeatureParams
from hitrank.losses import multi_loss, rating_loss
from hitrank.models import build
from hitrank.runtime import autocast as _autocast
from hitrank.store import FeatureStore
from hitrank.train import input_stats, predict


def make_store(root: Path, n: int, seed: int = 0) -> None:
    params = FeatureParams()
    rng = np.random.default_rng(seed)
    with FeatureStore.create_or_open(root, params) as store:
        store.plan([(f"s{i:06d}", f"/songs/s{i:06d}.wav", f"artist{i % (n // 8 + 1)}",
                     float(rng.lognormal(-10, 2))) for i in range(n)])
        block = rng.normal(-40, 15, (64, params.n_mels, params.n_frames)).astype(np.float16)
        for i in range(n):
            store.write(f"s{i:06d}", block[i % 64], {"seg_start": 0.0, "seg_end": 30.0,
                                                     "duration": 180.0, "padded": False})


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(device, X, z, idx, batch, steps, siamese, amp, scores, artists):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build("siamese" if siamese else "simple_cnn", **({"scorer": "simple_cnn"} if siamese else {})).to(device)
    model.set_input_stats(*input_stats(X, idx[:512]))
    opt = torch.optim.Adagrad(model.parameters(), lr=5e-3)
    if siamese:
        pairs = torch.as_tensor(sample_pairs("ab", idx, scores, artists, batch * (steps + 5), rng), device=device)
        batches = [pairs[i * batch:(i + 1) * batch] for i in range(steps + 5)]
    else:
        order = torch.as_tensor(rng.choice(idx, batch * (steps + 5)), device=device)
        batches = [order[i * batch:(i + 1) * batch] for i in range(steps + 5)]
    for k, b in enumerate(batches):
        if k == 5:  # warm-up steps done
            sync(device)
            t0 = time.perf_counter()
        with _autocast(device, amp):
            if siamese:
                fi, fj = model.pair(X[b[:, 0]].float(), X[b[:, 1]].float())
                loss = multi_loss(fi.float(), fj.float(), z[b[:, 0]], z[b[:, 1]], 0.5, 0.5)
            else:
                loss = rating_loss(model(X[b].float()).float(), z[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    rate = steps * batch / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    predict(model, X, idx[: min(len(idx), 2048)], amp)
    sync(device)
    infer = min(len(idx), 2048) / (time.perf_counter() - t0)
    return rate, infer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--songs", type=int, default=15000)
    ap.add_argument("--steps", type=int, default=60, help="timed training steps per setting")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--store", type=Path, help="reuse/build the store here (default: a temp folder)")
    args = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, GPU: {gpu}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp) / "store"
        if not (root / "params.json").exists():
            t0 = time.perf_counter()
            make_store(root, args.songs)
            print(f"built a {args.songs}-song store in {time.perf_counter() - t0:.0f} s "
                  f"({(root / 'mel_mid30.npy').stat().st_size / 1e9:.2f} GB)")
        rss0 = peak_rss_gb()
        t0 = time.perf_counter()
        ds, _ = load_dataset(FeatureStore.open(root))
        print(f"loaded {len(ds)} songs in {time.perf_counter() - t0:.1f} s; peak RSS {rss0:.2f} -> "
              f"{peak_rss_gb():.2f} GiB")
        idx = np.arange(len(ds))
        zs = np.log(np.maximum(ds.scores, 1e-12))
        zs = (zs - zs.mean()) / zs.std()
        rows = []
        for device in devices:
            t0 = time.perf_counter()
            X = torch.from_numpy(np.ascontiguousarray(ds.features)).to(device)
            z = torch.as_tensor(zs, dtype=torch.float32, device=device)
            sync(device)
            upload = time.perf_counter() - t0
            for amp in ([False] if device.type == "cpu" else [False, True]):
                for siamese in (False, True):
                    rate, infer = time_steps(device, X, z, idx, args.batch, args.steps, siamese, amp,
                                             ds.scores, ds.artists)
                    util = ""
                    if device.type == "cuda":
                        try:
                            util = f"{torch.cuda.utilization()}%"
                        except Exception:  # noqa: BLE001 - pynvml missing
                            util = "n/a"
                    rows.append((str(device), "bf16" if amp else "fp32",
                                 "siamese A/B" if siamese else "simple CNN", rate, infer, upload, util))
            del X
        print(f"peak RSS after training: {peak_rss_gb():.2f} GiB (goal < 4 GiB for 15k songs)")
    print(f"\n{'device':<7} {'prec':<5} {'model':<12} {'train':>14} {'inference':>12} {'upload':>8}  GPU util")
    for dev, prec, model, rate, infer, upload, util in rows:
        unit = "pairs/s" if "siamese" in model else "songs/s"
        print(f"{dev:<7} {prec:<5} {model:<12} {rate:8.0f} {unit:<6} {infer:7.0f} s/s {upload:7.1f}s  {util}")
    if len(devices) > 1:
        cpu = {m: r for d, p, m, r, *_ in rows if d == "cpu"}
        for d, p, m, r, *_ in rows:
            if d != "cpu":
                print(f"{d} {p} {m}: {r / cpu[m]:.1f}x CPU")
    else:
        print("no CUDA device here: GPU figures not measured")


if __name__ == "__main__":
    main()
