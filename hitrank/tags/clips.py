"""Deterministic test clips for the tagger golden test (numpy only: also runs in a TF venv).

The noise comes from a 64-bit linear congruential generator in exact integer arithmetic, so
the clips are the same under any numpy version (sine values may differ by one ulp at most).
"""

from __future__ import annotations

import numpy as np

SR = 16000
SECONDS = 6.5  # two 3-second patches


def _noise(n: int, seed: int) -> np.ndarray:
    """Uniform noise in [-1, 1) from an exact 64-bit LCG (Knuth's MMIX constants)."""
    state = np.uint64(seed * 2654435761 + 1)
    a, c = np.uint64(6364136223846793005), np.uint64(1442695040888963407)
    out = np.empty(n, dtype=np.uint64)
    # jump-free vectorised LCG: blocks of 4096 steps
    with np.errstate(over="ignore"):
        mult = np.empty(4096, dtype=np.uint64)
        add = np.empty(4096, dtype=np.uint64)
        m, s = np.uint64(1), np.uint64(0)
        for i in range(4096):
            m, s = m * a, s * a + c
            mult[i], add[i] = m, s
        for start in range(0, n, 4096):
            k = min(4096, n - start)
            out[start:start + k] = state * mult[:k] + add[:k]
            state = out[start + k - 1]
    return ((out >> np.uint64(40)).astype(np.float64) / 2.0 ** 23 - 1.0)


def _env(n: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau * SR))


def drum_loop(seed: int = 1) -> np.ndarray:
    """Kick, snare and hi-hat at 120 BPM."""
    n = int(SECONDS * SR)
    y = np.zeros(n)
    beat = SR // 2
    t = np.arange(beat) / SR
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * _env(beat, 0.12)
    noise = _noise(n, seed)
    for i, start in enumerate(range(0, n - beat, beat)):
        y[start:start + beat] += kick
        if i % 2 == 1:
            y[start:start + beat] += 0.5 * noise[start:start + beat] * _env(beat, 0.05)
        for h in (0, beat // 2):
            m = min(2000, n - start - h)
            y[start + h:start + h + m] += 0.15 * np.diff(noise[start + h:start + h + m + 1]) * _env(m, 0.01)
    return y


def piano(seed: int = 2) -> np.ndarray:
    """Decaying harmonic notes of a slow C-major arpeggio."""
    n = int(SECONDS * SR)
    y = np.zeros(n)
    notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 261.63, 196.0]
    step = n // len(notes)
    for i, f in enumerate(notes):
        m = n - i * step
        t = np.arange(m) / SR
        tone = sum(np.sin(2 * np.pi * f * h * t) / h ** 1.5 for h in range(1, 8))
        y[i * step:] += tone * _env(m, 0.6)
    return y / np.max(np.abs(y))


def strings(seed: int = 3) -> np.ndarray:
    """A sustained minor chord of bright, vibrato-laden tones with a slow attack."""
    n = int(SECONDS * SR)
    t = np.arange(n) / SR
    y = np.zeros(n)
    for f in (220.0, 261.63, 329.63):
        phase = 2 * np.pi * f * t + 0.02 * f / 5.5 * np.sin(2 * np.pi * 5.5 * t)
        y += sum(np.sin(h * phase) / h for h in range(1, 12))
    return y * (1 - np.exp(-t / 0.8)) / 6


def techno(seed: int = 4) -> np.ndarray:
    """Four-on-the-floor kick with a square-wave bass at 128 BPM."""
    n = int(SECONDS * SR)
    t = np.arange(n) / SR
    bass = 0.3 * np.sign(np.sin(2 * np.pi * 55 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 128 / 60 * 2 * t))
    return bass + 0.7 * drum_loop(seed) * 0.8


def clips() -> dict[str, np.ndarray]:
    """All clips, float32 in [-1, 1], 16 kHz mono."""
    out = {"drums": drum_loop(), "piano": piano(), "strings": strings(), "techno": techno(),
           "noise": 0.3 * _noise(int(SECONDS * SR), 9)}
    return {k: (0.8 * v / np.max(np.abs(v))).astype(np.float32) for k, v in out.items()}
