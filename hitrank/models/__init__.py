"""Models, registered by name: ``build("simple_cnn", **kwargs)``."""

from . import cnn, siamese  # noqa: F401  (registers the models)
from .registry import available, build, register

__all__ = ["available", "build", "register"]
