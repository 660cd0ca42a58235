#!/usr/bin/env python
"""Extraction speed, side by side in one run on the same synthetic files.

Pipelines (songs/s, one process):
  plain     librosa.load(path, sr=22050) of the whole file + melspectrogram + power_to_db
  decode    decode-only limit: read just the Mid-30 frames with soundfile (no resample, no mel)
  hitrank   hitrank's Mid-30 extractor (segment seek + soxr + torch log-mel)

    python scripts/bench_extract.py [--songs 20] [--format wav mp3] [--sr 44100] [--stereo]
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
from hitrank.extract import extract_song
from hitrank.features import FeatureParams
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
    ap.add_argument("--stereo", action="store_true", default=True)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{args.songs} synthetic songs, {args.sr} Hz, {'stereo' if args.stereo else 'mono'}")
    params = FeatureParams()
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.format:
            synthesize(Path(tmp) / fmt, args.songs, seed=3, fmt=fmt, sr=args.sr, stereo=args.stereo,
                       progress=False)
            files = sorted(str(p) for p in (Path(tmp) / fmt / "audio").iterdir())
            secs = np.mean([sf.info(p).duration for p in files])
            r_plain = rate(plain, files)
            r_dec = rate(decode_only, files)
            r_hit = rate(lambda p: extract_song(p, params), files)
            print(f"{fmt}: mean song {secs:.0f} s | plain librosa {r_plain:.2f} songs/s | "
                  f"decode-only Mid-30 {r_dec:.1f} songs/s | hitrank Mid-30 {r_hit:.1f} songs/s | "
                  f"hitrank/plain = {r_hit / r_plain:.1f}x | hitrank/decode-only = {r_hit / r_dec:.2f}")


if __name__ == "__main__":
    main()
