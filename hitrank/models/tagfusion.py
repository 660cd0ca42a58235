"""Tag branch of Yu et al. (2018), Eq. 4: y = (1 - mu) * f_cnn(x) + mu * f_dnn(g(x)).

``g(x)`` are the 50 MTT tag probabilities of the song (pretrained tagger, frozen); ``f_dnn`` is
the DNN 50 -> 100 -> 100 -> 30 -> 1 (LeakyReLU 0.1 and dropout 0.25 after each hidden layer,
as in the authors' released code); both branches are trained jointly, and for Siamese
training the ranking loss applies to the combined score.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..constants import N_TAGS
from .layers import mlp
from .registry import Scorer, build, register

FUSION_MODEL = "tag_fusion"


class TagDNN(nn.Module):
    """``(B, 50)`` tag probabilities -> ``(B,)`` score.

    ``output_activation``: 'none' (default) or 'leaky_relu' (LeakyReLU 0.1 on the score too, as
    in the authors' released ret30 graph).
    """

    def __init__(self, n_tags: int = N_TAGS, hidden=(100, 100, 30), dropout: float = 0.25,
                 output_activation: str = "none"):
        super().__init__()
        if output_activation not in ("none", "leaky_relu"):
            raise TypeError(f"output_activation={output_activation!r}; use 'none' or 'leaky_relu'")
        self.net = mlp(n_tags, hidden, nn.LeakyReLU(0.1), dropout)
        if output_activation == "leaky_relu":  # parameter-free: the state-dict keys are unchanged
            self.net.append(nn.LeakyReLU(0.1))

    def forward(self, tags: torch.Tensor) -> torch.Tensor:
        return self.net(tags).squeeze(-1)


@register(FUSION_MODEL, role="fusion")
class TagFusion(Scorer):
    """A registered audio scorer (``base``) fused with the tag DNN by the weight ``mu``.

    ``forward(x, tags)``: x (B, n_mels, T), tags (B, 50) -> (B,);
    ``pair(xi, xj, ti, tj)`` scores both songs of each pair with shared weights.

    ``dnn_kwargs`` go to :class:`TagDNN`; ``weights`` = ``(a, b)`` gives ``a * cnn + b * tag``
    instead of ``(1 - mu, mu)`` (not a convex mix, e.g. the ``cnn + 0.5 * tag`` of the authors'
    released ret30 script); when given, ``mu`` is not used.
    """

    uses_tags = True

    def __init__(self, base: str = "simple_cnn", base_kwargs: dict | None = None, mu: float = 0.5,
                 n_tags: int = N_TAGS, dnn_kwargs: dict | None = None,
                 weights: tuple | list | None = None):
        super().__init__()
        if not 0 <= mu <= 1:
            raise ValueError(f"mu={mu}: must be in [0, 1]")
        if weights is not None and len(weights) != 2:
            raise ValueError(f"weights={weights!r}: give two numbers (cnn weight, tag weight)")
        self.base = build(base, **(base_kwargs or {}))
        self.trains_on_pairs = self.base.trains_on_pairs
        self.dnn = TagDNN(n_tags, **(dnn_kwargs or {}))
        self.mu = float(mu)
        self.weights = ((1 - self.mu, self.mu) if weights is None
                        else (float(weights[0]), float(weights[1])))

    def set_input_stats(self, mean, std) -> None:
        self.base.set_input_stats(mean, std)

    def forward(self, x: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        return self.weights[0] * self.base(x) + self.weights[1] * self.dnn(tags)

    @property
    def frame_stride(self) -> int:
        """The audio branch's (0: it has no per-frame scores)."""
        return getattr(self.base, "frame_stride", 0)

    def frame_scores(self, x: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Per-frame fused scores, (B, n_mels, T), (B, 50) -> (B, T'): the tag term is added to
        every frame, so the mean over a window's frames is the window's fused score."""
        return self.weights[0] * self.base.frame_scores(x) + self.weights[1] * self.dnn(tags)[:, None]


def with_tag_branch(name: str, kwargs: dict, mu: float) -> tuple[str, dict]:
    """Registry name and kwargs of scorer ``name`` fused with the tag DNN by weight ``mu``."""
    return FUSION_MODEL, {"base": name, "base_kwargs": dict(kwargs), "mu": float(mu)}
