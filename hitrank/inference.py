"""Scoring songs with a model: the one inference pass of spectrogram models.

``predict`` is what a loaded checkpoint (:class:`hitrank.checkpoint.CheckpointScorer`) and the trainer's
validation both call, so a model scores the same songs the same way in training and in
``rank``: batches of :data:`PREDICT_BATCH` songs, the model in eval mode, no gradients,
bfloat16 autocast when asked, scores returned as float64.
"""

from __future__ import annotations

import numpy as np
import torch

from .runtime import autocast

PREDICT_BATCH = 64  # songs per inference batch


def window_means(frame_scores: torch.Tensor, starts: torch.Tensor, n_out: int) -> torch.Tensor:
    """Scores of windows from a fully convolutional model's per-frame scores of a longer input:
    each window's score is the mean of its run of ``n_out`` per-frame scores (what the model
    gives that window on its own, for windows starting a multiple of its ``frame_stride`` in).

    Parameters
    ----------
    frame_scores : (..., T') per-frame scores of one song (T',) or of a batch (B, T')
    starts : int tensor, the windows' first per-frame score: (W,) the same windows of every
        song, or (B, W) windows per song
    n_out : per-frame scores of one window

    Returns
    -------
    (..., W) the windows' scores, in ``frame_scores``' dtype
    """
    c = torch.cat([frame_scores.new_zeros(*frame_scores.shape[:-1], 1), frame_scores.cumsum(-1)], -1)
    starts = starts.to(c.device).expand(*frame_scores.shape[:-1], starts.shape[-1])
    return (c.gather(-1, starts + n_out) - c.gather(-1, starts)) / n_out


def model_inputs(X: torch.Tensor, T: torch.Tensor | None, b: torch.Tensor,
                 tag_rows: torch.Tensor | None = None) -> tuple:
    """Model inputs of songs ``b``: ``(mel,)`` or ``(mel, tags)`` for tag-fusion models.

    Parameters
    ----------
    X : (n, n_mels, n_frames) features of all songs (any float dtype)
    T : (n, 50) tag vectors of all songs, or None for models without a tag branch
    b : (B,) row indices of ``X``, on ``X``'s device
    tag_rows : (B,) row indices of ``T`` when they differ from ``b`` (a song's contrast
        window takes its song's tags), or None

    Returns
    -------
    ``(X[b],)`` or ``(X[b], T[tag_rows])``, float32.
    """
    if T is None:
        return (X[b].float(),)
    return X[b].float(), T[b if tag_rows is None else tag_rows].float()


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor, idx: np.ndarray, amp: bool = False,
            T: torch.Tensor | None = None) -> np.ndarray:
    """Model scores (standardised target units) of songs ``idx``: (len(idx),) float64.

    Parameters
    ----------
    model : a registered scoring model; put in eval mode
    X : (n, n_mels, n_frames) features of all songs
    idx : (m,) indices of the songs to score
    amp : bfloat16 autocast on ``X``'s device
    T : (n, 50) tag vectors of all songs, for models with a tag branch
    """
    model.eval()
    out = []
    for i in range(0, len(idx), PREDICT_BATCH):
        b = torch.as_tensor(idx[i: i + PREDICT_BATCH], device=X.device)
        with autocast(X.device, amp):
            out.append(model(*model_inputs(X, T, b)).float().cpu())
    return torch.cat(out).double().numpy() if out else np.zeros(0)
