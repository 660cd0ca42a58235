"""Tag branch of Yu et al. (2018), Eq. 4: y = (1 - mu) * f_cnn(x) + mu * f_dnn(g(x)).

``g(x)`` are the 50 MTT tag probabilities of the song (pretrained tagger, frozen); ``f_dnn`` is
the DNN 50 -> 100 -> 100 -> 30 -> 1 (LeakyReLU 0.1 and dropout 0.25 after each hidden layer,
as in the authors' released code); both branches are trained jointly, and for Siamese
training the ranking loss applies to the combined score.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..tags import N_TAGS
from .descriptor import mlp
from .registry import build, register


class TagDNN(nn.Module):
    """``(B, 50)`` tag probabilities -> ``(B,)`` score."""

    def __init__(self, n_tags: int = N_TAGS, hidden=(100, 100, 30), dropout: float = 0.25):
        super().__init__()
        self.net = mlp(n_tags, hidden, nn.LeakyReLU(0.1), dropout)

    def forward(self, tags: torch.Tensor) -> torch.Tensor:
        return self.net(tags).squeeze(-1)


@register("tag_fusion")
class TagFusion(nn.Module):
    """A registered audio scorer (``base``) fused with the tag DNN by the weight ``mu``.

    ``forward(x, tags)``: x (B, n_mels, T), tags (B, 50) -> (B,);
    ``pair(xi, xj, ti, tj)`` scores both songs of each pair with shared weights.
    """

    uses_tags = True

    def __init__(self, base: str = "simple_cnn", base_kwargs: dict | None = None, mu: float = 0.5,
                 n_tags: int = N_TAGS):
        super().__init__()
        if not 0 <= mu <= 1:
            raise ValueError(f"mu={mu}: must be in [0, 1]")
        self.base = build(base, **(base_kwargs or {}))
        self.dnn = TagDNN(n_tags)
        self.mu = float(mu)

    def set_input_stats(self, mean, std) -> None:
        self.base.set_input_stats(mean, std)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        return (1 - self.mu) * self.base(x) + self.mu * self.dnn(tags)

    def pair(self, xi, xj, ti, tj) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.forward(torch.cat([xi, xj]), torch.cat([ti, tj]))
        return s[: len(xi)], s[len(xi):]
