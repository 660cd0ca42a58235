"""Training-free highlight finder: the most repeated loud section.

Per second of the song: a chroma vector with 4 s of context (``librosa.feature.stack_memory``)
and the signal power. The *repetition* of a second is the mean of its best recurrence
affinities (``librosa.segment.recurrence_matrix``, which ignores neighbours closer than 10 s,
so a long steady section does not count as repeating); the curve is
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


def fallback_curve(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Per-second importance of a song, (ceil(len(y)/sr),) in [0, 1].

    Parameters
    ----------
    y : (n,) mono audio at ``sr``
    """
    n_sec = max(1, int(np.ceil(len(y) / sr)))
    if n_sec < 2 * MIN_LAG_SECONDS:
        return np.ones(n_sec)  # too short for repetition: any window is as good
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH)) ** 2
    fps = sr / HOP_LENGTH
    chroma = _per_second(librosa.feature.chroma_stft(S=S, sr=sr), fps, n_sec)
    power = _per_second(S.sum(axis=0, keepdims=True), fps, n_sec)[0]
    feats = librosa.feature.stack_memory(chroma, n_steps=CONTEXT_SECONDS, mode="edge")
    rec = librosa.segment.recurrence_matrix(feats, k=max(2, n_sec // 8), width=MIN_LAG_SECONDS,
                                            metric="cosine", mode="affinity", sym=True)
    rec = rec.toarray() if hasattr(rec, "toarray") else np.asarray(rec)
    repetition = np.sort(rec, axis=1)[:, -TOP_K:].mean(axis=1)
    repetition = repetition / max(repetition.max(), 1e-12)
    return np.sqrt(repetition) * power / max(power.max(), 1e-12)
