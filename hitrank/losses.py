"""Loss functions of Yu et al. (2018): rating (MSE), pairwise ranking hinge, and their mix."""

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
