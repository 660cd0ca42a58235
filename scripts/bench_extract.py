#!/usr/bin/env python
"""Extraction speed, side by side in one run on the same synthetic files.

Pipelines (songs/s):
  plain         librosa.load(path, sr=22050) of the whole file + melspectrogram + power_to_db
  decode Mid-30 decode-only limit of Mid-30: read just its frames (no down-mix, resample, mel)
  decode whole  decode-only limit of HL-30: read the whole file
  Mid-30        hitrank's Mid-30 extractor (segment seek + soxr + torch log-mel), one process
  HL-30         hitrank's HL-30 extractor (whole decode, training-free highlighter, crop, mel)
  workers 1/2   `hitrank.extract.extract` of the whole folder (Mid-30) with 1 and 2 processes

Goals of issue #8 on a 2-core machine: Mid-30 >= 8x plain and >= 0.6 of its decode-only
limit; HL-30 >= 1.5x plain; 2 workers >= 1.8x one.

    python scripts/bench_extract.py [--songs 20] [--format wav mp3] [--sr 44100] [--mono]
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from hitrank import audio
from hitrank.extract import extract, extract_song
from hitrank.features import FeatureParams
from hitrank.segments import params_for
from hitrank.synth import synthesize


def plain(path):
    y, _ = librosa.load(path, sr=22050)
    mel = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=4096, hop_length=2048,
                                         window="hamming", n_mels=128)
    return librosa.power_to_db(mel)


def decode_only(path):
    meta = audio.info(path)
    start, _ = audio.mid30_window(meta.duration)
    with sf.SoundFile(path) as f:
        f.seek(int(start * meta.samplerate))
        return f.read(int(30 * meta.samplerate), dtype="float32")


def decode_whole(path):
    with sf.SoundFile(path) as f:
        return f.read(dtype="float32")


COPIES = 40  # --batch-copies


def folder_rate(files, workers, copies=None):
    """Songs/s of ``extract`` over ``copies`` symlinked copies of ``files`` (so that the
    one-off start of the worker processes, about 2 s, does not dominate)."""
    copies = copies or COPIES
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "songs"
        folder.mkdir()
        for c in range(copies):
            for p in files:
                (folder / f"{c}_{Path(p).name}").symlink_to(p)
        t = time.perf_counter()
        rep = extract(folder, Path(tmp) / "store", FeatureParams(), workers=workers, progress=False)
        return rep.new / (time.perf_counter() - t)


def pool_startup(workers):
    """Seconds to start ``workers`` spawned extraction processes (each imports torch) and
    get one result back: the fixed cost of ``--workers N`` per run."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from hitrank.engines import _worker_init

    t = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init) as pool:
        list(pool.map(abs, range(workers)))
    return time.perf_counter() - t


def rate(fn, files, repeat=1):
    fn(files[0])  # warm-up (imports, filter banks, JIT)
    t = time.perf_counter()
    for _ in range(repeat):
        for p in files:
            fn(p)
    return repeat * len(files) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=20)
    ap.add_argument("--format", nargs="+", default=["wav", "mp3"])
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--mono", action="store_true", help="mono files (default stereo)")
    ap.add_argument("--batch-copies", type=int, default=40,
                    help="the worker-scaling runs extract this many copies of the songs (default 40)")
    args = ap.parse_args()
    global COPIES
    COPIES = args.batch_copies
    args.stereo = not args.mono
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{args.songs} synthetic songs, {args.sr} Hz, {'stereo' if args.stereo else 'mono'}")
    params, hl = FeatureParams(), params_for("hl30")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.format:
            synthesize(Path(tmp) / fmt, args.songs, seed=3, fmt=fmt, sr=args.sr, stereo=args.stereo,
                       progress=False)
            files = sorted(str(p) for p in (Path(tmp) / fmt / "audio").iterdir())
            secs = np.mean([sf.info(p).duration for p in files])
            r_plain = rate(plain, files)
            r_dec = rate(decode_only, files)
            r_whole = rate(decode_whole, files)
            r_hit = rate(lambda p: extract_song(p, params), files)
            r_hl = rate(lambda p: extract_song(p, hl), files)
            w1 = folder_rate(files, 1)
            w2 = folder_rate(files, 2)
            start = pool_startup(2)
            n_batch = COPIES * len(files)
            w2_steady = n_batch / max(1e-9, n_batch / w2 - start)
            print(f"{fmt}: mean song {secs:.0f} s")
            for name, r in (("plain librosa", r_plain), ("decode-only Mid-30", r_dec),
                            ("decode-only whole", r_whole), ("hitrank Mid-30", r_hit),
                            ("hitrank HL-30", r_hl), ("extract, 1 worker", w1), ("extract, 2 workers", w2),
                            ("2 workers, steady", w2_steady)):
                print(f"  {name:<20} {r:8.2f} songs/s")
            print(f"  (extract runs: {n_batch} songs; starting 2 worker processes takes {start:.1f} s, "
                  "excluded from 'steady')")
            print(f"  2 workers steady / 1 {w2_steady / w1:8.2f}   (estimate: start-up measured apart)")
            for name, v, goal in (("Mid-30 / plain", r_hit / r_plain, 8.0),
                                  ("Mid-30 / decode-only", r_hit / r_dec, 0.6),
                                  ("HL-30 / plain", r_hl / r_plain, 1.5),
                                  (f"2 workers / 1 ({n_batch})", w2 / w1, 1.8)):
                print(f"  {name:<20} {v:8.2f}   goal >= {goal}: {'met' if v >= goal else 'NOT met'}")

if __name__ == "__main__":
    main()
