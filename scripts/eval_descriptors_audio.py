#!/usr/bin/env python
"""Compare descriptor extractors against Echo Nest values and synthetic truth, side by side.

For each extractor of ``hitrank.descriptors.extractors`` (default: all):

* on the real development clips (``DEV/echonest.csv`` + ``DEV/audio/<track_id>.mp3``, decoded
  whole at 44.1 kHz with ``hitrank.audio.load``): Spearman's rho between the extractor's values
  and the Echo Nest ones, with a bootstrap 95 % interval (resamples of the tracks, seeded; the
  same resamples for every extractor), and the share of tempi within 4 % of the Echo Nest
  tempo, plainly and allowing octave errors (x2, x1/2, x3, x1/3);
* on a synthetic corpus (``hitrank synth SYNTH --songs 40 --seed 3 --sr 22050``, made when
  ``SYNTH/truth.csv`` is missing; the Mid-30 segment of each song): tempo within 4 % of the
  true tempo (plain and octave), key, mode and key+mode accuracy;
* seconds per 30 s clip (the ``describe`` call, including resampling and, for extractors that
  need them, the musicnn tags; decoding excluded; one untimed warm-up call first).

    python scripts/eval_descriptors_audio.py [--extractors librosa hybrid] [--synth DIR]
        [--components] [--out per_track.csv]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm import tqdm

from hitrank import audio
from hitrank.descriptors.extractors import EXTRACTORS, describe

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "fma_echonest_dev"
REFERENCE = ("energy", "acousticness", "danceability", "tempo", "speechiness",
             "instrumentalness", "liveness", "valence")  # the goal's five first
DEV_SR = 44100  # Hz, the clips' own rate
SYNTH_SONGS, SYNTH_SEED, SYNTH_SR = 40, 3, 22050  # the brief's synthetic corpus (Hz)
TEMPO_TOLERANCE = 0.04  # relative
OCTAVES = (2.0, 0.5, 3.0, 1.0 / 3.0)  # metrical-level errors forgiven by the "octave" score
BOOTSTRAP, BOOTSTRAP_SEED = 2000, 0
PITCHES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def tempo_hits(est, ref, octave: bool) -> np.ndarray:
    """(n,) bool: estimate within 4 % of the reference (or of a forgiven multiple of it)."""
    est, ref = np.asarray(est, float), np.asarray(ref, float)
    factors = (1.0,) + (OCTAVES if octave else ())
    return np.any([np.abs(est - f * ref) <= TEMPO_TOLERANCE * f * ref for f in factors], axis=0)


def octave_oracle(est, ref) -> np.ndarray:
    """Each estimate moved to the forgiven multiple closest to its reference (upper bound)."""
    factors = np.array((1.0,) + OCTAVES)
    est, ref = np.asarray(est, float), np.asarray(ref, float)
    cand = est[:, None] / factors[None, :]
    return cand[np.arange(len(est)), np.argmin(np.abs(np.log(cand / ref[:, None])), axis=1)]


def rho_ci(x, y, resamples: np.ndarray) -> str:
    x, y = np.asarray(x, float), np.asarray(y, float)
    boot = [spearmanr(x[i], y[i])[0] for i in resamples]
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return f"{spearmanr(x, y)[0]:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def run(extractor: str, clips: list[tuple[str, np.ndarray, int]], desc: str) -> tuple[pd.DataFrame, float]:
    """Describe every clip; returns (one row per clip, mean seconds per 30 s clip)."""
    _, y0, sr0 = clips[0]
    describe(y0, sr0, extractor)  # warm-up: imports, numba JIT, model load
    rows, seconds = [], []
    for name, y, sr in tqdm(clips, desc=f"{extractor} {desc}", unit="clip", leave=False):
        t0 = time.perf_counter()
        rows.append({"id": name, **describe(y, sr, extractor)})
        seconds.append((time.perf_counter() - t0) * 30.0 * sr / len(y))
    return pd.DataFrame(rows), float(np.mean(seconds))


def synth_corpus(folder: Path | None) -> Path:
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="hitrank_synth_"))
    if not (folder / "truth.csv").is_file():
        from hitrank.synth import synthesize

        synthesize(folder, SYNTH_SONGS, seed=SYNTH_SEED, fmt="wav", sr=SYNTH_SR, progress=False)
    return folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=Path, default=DEV, help="folder with echonest.csv and audio/")
    ap.add_argument("--synth", type=Path, help="synthetic corpus folder (made if it has no truth.csv)")
    ap.add_argument("--extractors", nargs="+", default=list(EXTRACTORS), choices=list(EXTRACTORS))
    ap.add_argument("--components", action="store_true",
                    help="also print rho of every other numeric column vs each Echo Nest descriptor")
    ap.add_argument("--out", type=Path, help="write the per-clip values of every extractor here (CSV)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    ref = pd.read_csv(args.dev / "echonest.csv")
    dev = [(str(t), audio.load(args.dev / "audio" / f"{t:06d}.mp3", DEV_SR)[0], DEV_SR)
           for t in tqdm(ref.track_id, desc="decode dev", leave=False)]
    folder = synth_corpus(args.synth)
    truth = pd.read_csv(folder / "truth.csv")
    labels = pd.read_csv(folder / "labels.csv").set_index("song_id")
    syn = [(sid, audio.load_mid30(folder / labels.loc[sid, "path"], SYNTH_SR).audio, SYNTH_SR)
           for sid in tqdm(truth.song_id, desc="decode synth", leave=False)]
    resamples = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(ref), (BOOTSTRAP, len(ref)))

    table, per_track, components, shown = {}, [], {}, set()
    for ex in args.extractors:
        d, sec_dev = run(ex, dev, "dev")
        s, sec_syn = run(ex, syn, "synth")
        col = {f"rho {k}": rho_ci(ref[k], d[k], resamples) for k in REFERENCE}
        col["rho tempo, octave-oracle (bound)"] = rho_ci(ref.tempo, octave_oracle(d.tempo, ref.tempo),
                                                         resamples)
        col["dev tempo within 4%"] = f"{tempo_hits(d.tempo, ref.tempo, False).mean():.2f}"
        col["dev tempo within 4%, octave"] = f"{tempo_hits(d.tempo, ref.tempo, True).mean():.2f}"
        col["synth tempo within 4%"] = f"{tempo_hits(s.tempo, truth.tempo, False).mean():.2f}"
        col["synth tempo within 4%, octave"] = f"{tempo_hits(s.tempo, truth.tempo, True).mean():.2f}"
        key_ok = s.key.round().astype(int).to_numpy() == truth.key.to_numpy()
        mode_ok = s["mode"].round().astype(int).to_numpy() == (truth["mode"] == "major").to_numpy()
        col["synth key"] = f"{key_ok.mean():.2f}"
        col["synth mode"] = f"{mode_ok.mean():.2f}"
        col["synth key+mode"] = f"{(key_ok & mode_ok).mean():.2f}"
        col["seconds / 30 s clip (dev)"] = f"{sec_dev:.2f}"
        col["seconds / 30 s clip (synth)"] = f"{sec_syn:.2f}"
        table[ex] = col
        per_track += [d.assign(extractor=ex, set="dev"), s.assign(extractor=ex, set="synth")]
        extra = [c for c in d.columns if c not in REFERENCE and c != "id" and d[c].dtype.kind in "if"
                 and d[c].nunique() > 1 and c not in shown]
        shown.update(extra)
        components[ex] = pd.DataFrame({k: [spearmanr(ref[k], d[c])[0] for c in extra] for k in REFERENCE},
                                      index=extra)

    print(f"Descriptor extractors: {len(ref)} dev clips ({args.dev}), "
          f"{len(truth)} synthetic songs (seed {SYNTH_SEED}, Mid-30), "
          f"bootstrap {BOOTSTRAP} resamples (seed {BOOTSTRAP_SEED})\n")
    print(pd.DataFrame(table).to_string())
    if args.components:
        for ex, frame in components.items():
            print(f"\nrho of {ex}'s other columns (not shown above) vs the Echo Nest "
                  "descriptors (dev clips)")
            print(frame.round(2).to_string())
    if args.out:
        pd.concat(per_track, ignore_index=True).to_csv(args.out, index=False)
        print(f"\nper-clip values: {args.out}")


if __name__ == "__main__":
    main()
