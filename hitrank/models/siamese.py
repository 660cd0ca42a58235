"""Multi-objective Siamese network (Yu et al. 2018, Sec. 2.2, Fig. 2a).

Two weight-sharing copies of a scorer: one module scores both songs of a pair (a single
forward over the concatenated batch), so the copies share weights by construction.
"""

from __future__ import annotations

import torch

from .registry import Scorer, build, register


@register("siamese")
class Siamese(Scorer):
    """Wraps a registered scorer; ``forward(x)`` scores songs, ``pair(xi, xj)`` scores pairs.

    Parameters
    ----------
    scorer : name of the registered scorer (default ``simple_cnn``)
    scorer_kwargs : its kwargs
    """

    trains_on_pairs = True

    def __init__(self, scorer: str = "simple_cnn", scorer_kwargs: dict | None = None):
        super().__init__()
        self.scorer = build(scorer, **(scorer_kwargs or {}))

    def set_input_stats(self, mean, std) -> None:
        self.scorer.set_input_stats(mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B,) scores."""
        return self.scorer(x)

    @property
    def frame_stride(self) -> int:
        """The wrapped scorer's (0: it has no per-frame scores)."""
        return getattr(self.scorer, "frame_stride", 0)

    def frame_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped scorer's per-frame scores, (B, n_mels, T) -> (B, T')."""
        return self.scorer.frame_scores(x)
