"""Training-free highlight finder: the most repeated loud section.

Per second of the song: a chroma vector (A440 tuning assumed: estimating the tuning cost more
than the rest) with 4 s of context (``librosa.feature.stack_memory``) and the signal power.
The *repetition* of a second is the mean of its best recurrence affinities: cosine distances
to the other seconds, neighbours closer than 10 s ignored (a long steady section does not count
as repeating), only mutual k-nearest neighbours kept, ``affinity = exp(-d / median k-th
distance)`` (the semantics of ``librosa.segment.recurrence_matrix(mode='affinity', sym=True)``,
computed densely: the song has only a few hundred seconds); the curve is
``sqrt(repetition) x power / max(power)`` and the highlight is the 30 s window with the
largest mass under it. Choruses are what pop songs repeat most and play loudest.

On 40 synthetic songs the window overlapped half a true chorus for 0.95 of songs with this
curve, 0.85 with ``repetition x power``, 0.25 with repetition alone and 1.00 with power
alone (the synthetic choruses are always the loudest part; real songs are not so kind).
"""

from __future__ import annotations

import librosa
import numpy as np

from ..constants import HOP_LENGTH, N_FFT, SAMPLE_RATE

CONTEXT_SECONDS = 4  # stack_memory steps (one per second)
MIN_LAG_SECONDS = 10  # recurrences closer than this are ignored (same section)
TOP_K = 3  # affinities averaged per second


def _per_second(x: np.ndarray, frames_per_s: float, n_sec: int) -> np.ndarray:
    """Average frames (d, T) into seconds -> (d, n_sec)."""
    idx = np.minimum((np.arange(x.shape[1]) / frames_per_s).astype(int), n_sec - 1)
    out = np.zeros((x.shape[0], n_sec))
    np.add.at(out.T, idx, x.T)
    counts = np.bincount(idx, minlength=n_sec)[None, :]
    return out / np.maximum(counts, 1)


def _power_spectrogram(y: np.ndarray) -> np.ndarray:
    """``|librosa.stft(y, n_fft=4096, hop=2048)|**2`` (periodic Hann, centred, zero padding),
    computed with torch (several times faster than numpy's FFT here): (1 + n_fft/2, T)."""
    import torch

    spec = torch.stft(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), N_FFT, HOP_LENGTH,
                      window=torch.hann_window(N_FFT), center=True, pad_mode="constant",
                      return_complex=True)
    return (spec.real ** 2 + spec.imag ** 2).numpy()


def recurrence_affinity(feats: np.ndarray, k: int, width: int) -> np.ndarray:
    """Dense mutual-kNN recurrence affinity of the columns of ``feats`` (d, n) -> (n, n).

    Cosine distance; pairs with ``|i - j| < width`` are excluded; an entry is kept when each
    column is among the other's ``k`` nearest; kept entries are ``exp(-d / b)`` with ``b``
    the median distance to the k-th nearest neighbour; all other entries are 0.
    """
    n = feats.shape[1]
    unit = feats / np.maximum(np.linalg.norm(feats, axis=0, keepdims=True), 1e-12)
    dist = np.clip(1.0 - unit.T @ unit, 0.0, 2.0)
    lag = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    dist[lag < width] = np.inf
    k = max(1, min(k, n - 1))
    kth = np.partition(dist, k - 1, axis=1)[:, k - 1]  # distance to the k-th nearest
    near = dist <= kth[:, None]
    keep = near & near.T & np.isfinite(dist)
    finite = kth[np.isfinite(kth)]
    bw = float(np.median(finite)) if len(finite) else 1.0
    return np.where(keep, np.exp(-dist / max(bw, 1e-12)), 0.0)


def fallback_curve(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Per-second importance of a song, (ceil(len(y)/sr),) in [0, 1].

    Parameters
    ----------
    y : (n,) mono audio at ``sr``
    """
    n_sec = max(1, int(np.ceil(len(y) / sr)))
    if n_sec < 2 * MIN_LAG_SECONDS:
        return np.ones(n_sec)  # too short for repetition: any window is as good
    S = _power_spectrogram(y)
    fps = sr / HOP_LENGTH
    chroma = _per_second(librosa.feature.chroma_stft(S=S, sr=sr, tuning=0.0), fps, n_sec)
    power = _per_second(S.sum(axis=0, keepdims=True), fps, n_sec)[0]
    feats = librosa.feature.stack_memory(chroma, n_steps=CONTEXT_SECONDS, mode="edge")
    rec = recurrence_affinity(feats, k=max(2, n_sec // 8), width=MIN_LAG_SECONDS)
    repetition = np.sort(rec, axis=1)[:, -TOP_K:].mean(axis=1)
    repetition = repetition / max(repetition.max(), 1e-12)
    return np.sqrt(repetition) * power / max(power.max(), 1e-12)
