"""Models, registered by name: ``build("simple_cnn", **kwargs)``."""

from . import cnn, descriptor, siamese, tagfusion  # noqa: F401  (registers the models)
from .registry import available, build, register

__all__ = ["available", "build", "register"]
