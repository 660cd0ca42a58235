"""Model registry: models are registered by name and role and built from plain config kwargs.

Roles
-----
``scorer``
    a spectrogram scoring model a config can name (``model.name``): it maps log-mels
    ``(B, n_mels, T)`` (and, with ``uses_tags``, tag vectors ``(B, 50)``) to scores ``(B,)``
    and implements :class:`ScoringModel`.
``fusion``
    a scorer built around another one (the tag branch); not named by configs.
``descriptor``
    descriptor-branch networks (song-level descriptor vectors -> score).

(The attention highlighter of HL-30 is not a scoring model and is not registered here: it
belongs to :mod:`hitrank.thumbnail`.)

Adding a model: write its module under ``hitrank/models/``, decorate the class with
``@register("my_model")`` (role ``scorer`` by default), import the module in
``hitrank/models/__init__.py``, and name it in a config (``model.name: my_model``); see
docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn

from ..errors import ConfigError

ROLES = ("scorer", "fusion", "descriptor")

_REGISTRY: dict[str, type[nn.Module]] = {}


@runtime_checkable
class ScoringModel(Protocol):
    """What a spectrogram scoring model provides (role ``scorer`` or ``fusion``).

    ``forward(x, *tags)`` scores songs: x (B, n_mels, T) -> (B,); ``pair(xi, xj, *tags)``
    scores both songs of each pair with shared weights -> ((P,), (P,));
    ``set_input_stats(mean, std)`` receives the per-mel-bin statistics of the training songs
    (n_mels,) before training; ``uses_tags`` says whether the model reads tag vectors;
    ``trains_on_pairs`` whether it needs a pair sampler (``pairs.sampling != 'none'``).
    """

    uses_tags: bool
    trains_on_pairs: bool

    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None: ...

    def forward(self, x: torch.Tensor, *tags: torch.Tensor) -> torch.Tensor: ...

    def pair(self, xi: torch.Tensor, xj: torch.Tensor, *tags: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]: ...


class Scorer(nn.Module):
    """Convenience base class of scoring models: ``pair`` scores both songs in one batch."""

    uses_tags = False
    trains_on_pairs = False
    #: input frames between two per-frame scores (:meth:`frame_scores`); 0: the model has none
    frame_stride = 0

    def frame_scores(self, x, *tags):
        """Per-frame scores whose mean over time is the score, (B, n_mels, T) -> (B, T'), for
        fully convolutional models (``frame_stride`` > 0)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-frame scores (frame_stride 0)")

    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Default: the model does not standardise its input."""

    def pair(self, xi, xj, *tags):
        if tags:
            ti, tj = tags
            s = self(torch.cat([xi, xj]), torch.cat([ti, tj]))
        else:
            s = self(torch.cat([xi, xj]))
        return s[: len(xi)], s[len(xi):]


def register(name: str, role: str = "scorer") -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: ``@register("simple_cnn")``, ``@register("tag_fusion", role="fusion")``.

    Scorers and fusions must implement :class:`ScoringModel` (checked here).
    """
    if role not in ROLES:
        raise ValueError(f"role={role!r}; expected one of {ROLES}")

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        if role in ("scorer", "fusion"):
            missing = [m for m in ("set_input_stats", "pair", "uses_tags", "trains_on_pairs")
                       if not hasattr(cls, m)]
            if missing:
                raise TypeError(f"model {name!r} (role {role}) lacks {missing} of the ScoringModel "
                                "interface; subclass hitrank.models.registry.Scorer")
        _REGISTRY[name] = cls
        cls.registry_name = name
        cls.registry_role = role
        return cls

    return deco


def unregister(name: str) -> None:
    """Remove a registered model (for plug-ins and tests that register temporary ones)."""
    _REGISTRY.pop(name, None)


def available(role: str | None = None) -> list[str]:
    """Registered model names (of one role, or all)."""
    return sorted(n for n, c in _REGISTRY.items() if role is None or c.registry_role == role)


def model_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``; ConfigError listing the known names otherwise."""
    if name not in _REGISTRY:
        raise ConfigError(f"model.name={name!r} is not a known model; choose one of "
                          f"{available('scorer')}")
    return _REGISTRY[name]


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown names and bad kwargs are ConfigErrors."""
    cls = model_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad model.kwargs for {name!r}: {exc}") from None
