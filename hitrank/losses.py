"""Loss functions of Yu et al. (2018): rating (MSE), pairwise ranking hinge, and their mix;
and hitrank's within-song hinge (a song's analysed segment above its contrast window)."""

from __future__ import annotations

import torch


def rating_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1: mean squared error, (B,), (B,) -> scalar."""
    return torch.mean((pred - target) ** 2)


def ranking_loss(fi: torch.Tensor, fj: torch.Tensor, yi: torch.Tensor, yj: torch.Tensor,
                 margin: float) -> torch.Tensor:
    """Eq. 2: mean over pairs of max(0, m - delta(yi, yj) * (f(xi) - f(xj))).

    ``delta = 1`` if ``yi >= yj`` else ``-1``. All inputs (P,), returns a scalar.
    """
    delta = torch.where(yi >= yj, 1.0, -1.0).to(fi.dtype)
    return torch.clamp(margin - delta * (fi - fj), min=0).mean()


def multi_loss(fi, fj, yi, yj, w: float, margin: float) -> torch.Tensor:
    """Eq. 3: (1 - w) * MSE over both songs of each pair + w * ranking hinge."""
    rate = rating_loss(torch.cat([fi, fj]), torch.cat([yi, yj]))
    if w == 0:
        return rate
    return (1 - w) * rate + w * ranking_loss(fi, fj, yi, yj, margin)


def all_pairs_ranking_loss(pred: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """Ranking hinge over every ordered pair i != j of a set of songs (validation), (N,) -> scalar."""
    diff = pred[:, None] - pred[None, :]
    delta = torch.where(target[:, None] >= target[None, :], 1.0, -1.0).to(pred.dtype)
    mask = ~torch.eye(len(pred), dtype=torch.bool, device=pred.device)
    return torch.clamp(margin - delta * diff, min=0)[mask].mean()


def within_song_loss(seg: torch.Tensor, contrast: torch.Tensor, usable: torch.Tensor,
                     margin: float) -> torch.Tensor:
    """Within-song hinge: mean over the usable songs of max(0, m - (f(segment) - f(contrast))).

    The ranking hinge of Eq. 2 applied inside each song, with the song's analysed segment (its
    highlight) always the better one: it teaches a model to score the part of a song its
    highlighter picks above another part of it (the contrast window, ``features.contrast``:
    of median or lowest rating; ``train.contrast``), which the curve of ``rank --curve``
    needs and songs-only training never asks for.

    Parameters
    ----------
    seg, contrast : (B,) scores of the songs' segments and of their contrast windows
    usable : (B,) bool, songs with a contrast window of their own (others are left out)
    margin : m > 0

    Returns
    -------
    scalar; 0 when no song of the batch is usable.
    """
    hinge = torch.clamp(margin - (seg - contrast), min=0)
    w = usable.to(hinge.dtype)
    return (hinge * w).sum() / w.sum().clamp(min=1)
