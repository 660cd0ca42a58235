#!/usr/bin/env python
"""Ranking speed and memory, side by side in one run on the same full-length MP3s.

Pipelines (songs/s, each from a cold feature cache, one process, the same fold models):
  plain           librosa.load(path, sr=22050) of the whole file + melspectrogram + power_to_db,
                  the middle 30 s of frames, every fold model (torch, no grad): the work of
                  `rank` written the obvious way
  rank            hitrank.rank_folder (Mid-30: decodes only the segment; --nearest 0)
  rank --curve    the same with every 30 s window of the whole song scored (hop about 1 s)

Goals of issue #26: rank >= 4x plain; rank --curve >= plain (which scores one window).

Memory: peak resident memory (ru_maxrss) of a child process ranking N symlinked copies of the
songs, for two sizes (--memory-sizes), with a fresh cache each: "flat in the number of
songs" means the larger run's peak is not much above the smaller's.

    python scripts/bench_rank.py [--songs 6] [--folds 5] [--memory-sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_run(work: Path, folds: int) -> Path:
    """A cv run of the paper's simple CNN on a small synthetic corpus (1 epoch): fold models
    of the real architecture, whatever they learned."""
    from hitrank.cli import main

    run = work / "run"
    if (run / "summary.json").exists():
        return run
    corpus = work / "train_corpus"
    if main(["synth", str(corpus), "--songs", "40", "-q"]) != 0:
        raise SystemExit("synth failed")
    if main(["cv", "--config", "table1/a_simple_cnn_mid30", "--labels", str(corpus / "labels.csv"), "--out", str(run),
             "--folds", str(folds), "--set", "train.epochs=1", "-q"]) != 0:
        raise SystemExit("cv failed")
    return run


def plain_rank(files, run: Path) -> np.ndarray:
    """The plain pipeline: whole-file librosa load, mel, dB, middle 30 s, every fold model."""
    import librosa
    import torch

    from hitrank.curve import load_scorers
    from hitrank.features import FeatureParams

    scorers = load_scorers(run, torch.device("cpu"))
    p = FeatureParams.from_dict(scorers[0].feature_params)
    out = []
    for path in files:
        y, _ = librosa.load(path, sr=p.sr)
        mel = librosa.power_to_db(librosa.feature.melspectrogram(
            y=y, sr=p.sr, n_fft=p.n_fft, hop_length=p.hop_length, window=p.window, n_mels=p.n_mels))
        mid = max(0, mel.shape[1] // 2 - p.n_frames // 2)
        x = torch.from_numpy(mel[:, mid: mid + p.n_frames].astype(np.float32))[None]
        with torch.no_grad():
            out.append(np.mean([sum(w * float(m(x)) for w, m in s.members) for s in scorers]))
    return np.asarray(out)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    res = fn(*args, **kwargs)
    return res, time.perf_counter() - t


def memory_child(folder: str, run: str, cache: str) -> None:
    """In a child process: rank ``folder`` and print the peak RSS (MiB) and seconds as JSON."""
    from hitrank.rank import rank_folder

    t = time.perf_counter()
    ranking, failures = rank_folder(folder, run, cache=cache, progress=False, nearest=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"songs": len(ranking), "failed": len(failures), "peak_mib": peak,
                      "seconds": time.perf_counter() - t}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        memory_child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--songs", type=int, default=6, help="full-length 44.1 kHz stereo MP3s to rank")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--memory-sizes", type=int, nargs="*", default=[1000, 10000],
                    help="catalogue sizes (symlinked copies) for the memory runs; none to skip")
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    from hitrank.cli import main as hitrank
    from hitrank.rank import rank_folder

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_rank_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; work folder {work}")
    run = make_run(work, args.folds)
    songs = work / "mp3"
    if not songs.is_dir():
        hitrank(["synth", str(songs), "--songs", str(args.songs), "--format", "mp3", "--stereo", "--sr", "44100",
                 "--seed", "3", "-q"])
    files = sorted(str(p) for p in (songs / "audio").glob("*.mp3"))
    import soundfile as sf

    minutes = sum(sf.info(f).duration for f in files) / 60
    print(f"{len(files)} MP3s, 44.1 kHz stereo, {minutes:.1f} min of audio; {args.folds} fold models")
    for cache in ("cache_rank", "cache_curve"):  # cold caches: every song decoded
        shutil.rmtree(work / cache, ignore_errors=True)
    _, t_plain = timed(plain_rank, files, run)
    _, t_rank = timed(rank_folder, songs / "audio", run, cache=work / "cache_rank", progress=False, nearest=0)
    _, t_curve = timed(rank_folder, songs / "audio", run, cache=work / "cache_curve", progress=False, nearest=0,
                       curve=True)
    n = len(files)
    rows = [("plain librosa + torch", t_plain), ("rank", t_rank), ("rank --curve", t_curve)]
    print("| pipeline | songs/s | vs plain |\n|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {n / t:.2f} | {t_plain / t:.2f}x |")
    print(f"goals: rank >= 4x plain: {t_plain / t_rank:.2f}x; rank --curve >= plain: {t_plain / t_curve:.2f}x")
    for size in args.memory_sizes:
        folder = work / f"catalogue_{size}"
        folder.mkdir(exist_ok=True)
        for i in range(size):
            link = folder / f"song {i:05d}.mp3"
            if not link.is_symlink():
                os.symlink(files[i % n], link)
        res = subprocess.run([sys.executable, __file__, "--child", str(folder), str(run),
                              str(work / f"cache_mem_{size}")], capture_output=True, text=True, check=True)
        m = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"memory: {m['songs']} songs ranked ({m['failed']} failed) in {m['seconds']:.0f} s "
              f"({m['songs'] / m['seconds']:.1f} songs/s), peak RSS {m['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
