"""Out-of-distribution flags for ranked songs: how far a song's features lie from the songs a
model was trained on.

The statistic (documented in docs/training.md): for each song, the mean over time of its log-mel
per mel bin (a 128-d timbre/level profile, ``m``); for the training songs of a model, the
per-bin mean ``mu`` and standard deviation ``sd`` of those profiles and the 99th percentile
``q99`` of their distance ``d = sqrt(mean_bins(((m - mu) / sd) ** 2))`` (an RMS z-score).
A song scores ``ood_score = d / q99``: 1 or less is as typical as 99% of the training songs;
``ood_score > 1`` flags it out of distribution. The reference is stored in each checkpoint's
``info["ood"]`` at training time (plain lists), so ranking needs no training data. Transfer
models (pretrained embeddings) use the same statistic on the song's embedding vector instead
of the log-mel profile (:func:`profile_reference`, :func:`profile_scores`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

CHUNK = 256  # songs per chunk when computing profiles
QUANTILE = 0.99  # training songs below this distance are "in distribution"
STD_FLOOR = 1e-3  # per-bin std floor (constant bins)
STATISTIC = "rms z-score of the per-bin time-mean log-mel vs the training songs, / its 99th percentile"
EMBEDDING_STATISTIC = "rms z-score of the song's embedding vs the training songs', / its 99th percentile"
EMBEDDING_FLOOR = 0.1  # an embedding unit's std is at least this share of the median unit's


def profiles(X: torch.Tensor, idx: np.ndarray | None = None) -> np.ndarray:
    """Per-bin time means of songs ``idx`` of ``X`` (n, n_mels, T): (len(idx), n_mels) float64."""
    idx = np.arange(len(X)) if idx is None else np.asarray(idx)
    out = [X[torch.as_tensor(idx[i: i + CHUNK], device=X.device)].float().mean(dim=2).double().cpu()
           for i in range(0, len(idx), CHUNK)]
    return torch.cat(out).numpy() if out else np.zeros((0, X.shape[1]))


def _distance(m: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(((m - mu) / sd) ** 2, axis=1))


def profile_reference(m: np.ndarray, statistic: str = STATISTIC, relative_floor: float = 0.0) -> dict:
    """The reference of training songs' profiles ``m`` (n, d): per-dimension mean and standard
    deviation and the 99th percentile of their distance (plain lists and floats). Each
    standard deviation is at least :data:`STD_FLOOR` and ``relative_floor`` times their
    median (embeddings: a unit that hardly moves on the training songs must not flag every
    new song that stirs it a little)."""
    m = np.asarray(m, dtype=np.float64)
    sd = m.std(axis=0)
    floor = max(STD_FLOOR, relative_floor * float(np.median(sd))) if sd.size else STD_FLOOR
    mu, sd = m.mean(axis=0), np.maximum(sd, floor)
    q = float(np.quantile(_distance(m, mu, sd), QUANTILE)) if len(m) else 1.0
    return {"statistic": statistic, "mean": mu.tolist(), "std": sd.tolist(), "q99": max(q, 1e-9),
            "n_train": int(len(m))}


def profile_scores(m: np.ndarray, ref: dict) -> np.ndarray:
    """``d / q99`` of profiles ``m`` (n, d) against a reference: (n,) float64 (> 1: out of
    distribution)."""
    m = np.asarray(m, dtype=np.float64)
    return _distance(m, np.asarray(ref["mean"]), np.asarray(ref["std"])) / ref["q99"]


def reference(X: torch.Tensor, train_idx: np.ndarray) -> dict:
    """The training songs' reference (stored in a checkpoint's ``info["ood"]``)."""
    return profile_reference(profiles(X, train_idx))


def ood_scores(X: torch.Tensor, ref: dict) -> np.ndarray:
    """``d / q99`` of every song of log-mels ``X`` (n, n_mels, T) against a reference: (n,)
    float64 (> 1: out of distribution)."""
    return profile_scores(profiles(X), ref)


def combine(o: np.ndarray) -> tuple[np.ndarray, pd.arrays.BooleanArray, bool]:
    """Per-model OOD scores ``o`` (n_models, n) -> ``(ood_score, ood, has_reference)``: the mean
    over the models that have a reference (NaN for all when none has), the flag
    ``ood_score > 1`` (a nullable boolean: missing where the score is undefined, so that
    "not measured" never reads as "in distribution"), and whether any model had a reference."""
    has = bool(np.isfinite(o).any())
    score = np.full(o.shape[1], np.nan)
    measured = np.isfinite(o).any(axis=0)
    score[measured] = np.nanmean(o[:, measured], axis=0)
    return score, pd.array(np.where(measured, score > 1.0, None), dtype="boolean"), has
