"""Model registry: models are registered by name and built from plain config kwargs."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ..errors import ConfigError

_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: ``@register("simple_cnn")``."""

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown names and bad kwargs are ConfigErrors."""
    if name not in _REGISTRY:
        raise ConfigError(f"model.name={name!r} is not a known model; choose one of {available()}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad model.kwargs for {name!r}: {exc}") from None
