"""Models, registered by name and role: ``build("simple_cnn", **kwargs)`` (see registry.py)."""

from . import cnn, descriptor, siamese, tagfusion  # noqa: F401  (registers the models)
from .registry import Scorer, ScoringModel, available, build, model_class, register, unregister
from .tagfusion import with_tag_branch

__all__ = ["Scorer", "ScoringModel", "available", "build", "model_class", "register", "unregister",
           "with_tag_branch"]
