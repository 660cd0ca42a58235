"""Segment methods: which 30 s of a song the features describe (Mid-30, HL-30, ...).

A segment method is registered by name and gives everything the rest of hitrank needs:

* :meth:`SegmentMethod.feature_params` -- the :class:`~hitrank.features.FeatureParams` that
  name the method (and its highlighter) in stores and checkpoints;
* :meth:`SegmentMethod.cut` -- the decoded 30 s of one song, plus the manifest fields the
  method records (HL-30: ``method`` and the per-second ``curve``) and the whole decoded song
  when the method had to decode it anyway (reused for song-scope tags);
* :meth:`SegmentMethod.resolve_highlighter` -- the checkpoint a store or model made with this
  method needs, checked against the digest recorded in its parameters.

``config``, ``cli``, ``extract``, ``cv`` and ``rank`` read the choices from :func:`names` and
:func:`get`. Adding a method: subclass :class:`SegmentMethod`, decorate it with
:func:`register`, and name it in a config (``features.segment``); see docs/architecture.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CheckpointError, ParameterError
from .features import FeatureParams

CURVE_DECIMALS = 4  # the per-second HL-30 curve is stored rounded to this many decimals


@dataclass
class Cut:
    """One song's analysed segment and what the method records about it.

    Attributes
    ----------
    segment : :class:`hitrank.audio.Segment`, exactly ``segment_seconds`` of mono audio
    fields : manifest fields of the method (e.g. ``method``, ``curve``), JSON-ready
    song : (n,) the whole decoded song at the feature rate, when the method decoded it
    """

    segment: object
    fields: dict = field(default_factory=dict)
    song: np.ndarray | None = None


class SegmentMethod:
    """Base class of segment methods; subclasses set :attr:`name` and :attr:`help`."""

    name: str = ""
    help: str = ""
    #: extra manifest columns this method fills (the store keeps them as text)
    manifest_fields: tuple[str, ...] = ()
    #: whether configs must name a highlighter (``features.highlighter``) for this method
    takes_highlighter: bool = False

    def feature_params(self, highlighter: str | os.PathLike | None = None, **kwargs) -> FeatureParams:
        """Feature parameters of this method; ``kwargs`` are other FeatureParams fields."""
        if highlighter:
            raise ParameterError(f"segment {self.name!r} takes no highlighter (got {str(highlighter)!r}); "
                                 "highlighters are for hl30")
        return FeatureParams(segment=self.name, **kwargs)

    def resolve_highlighter(self, params: FeatureParams, given=None, recorded: str = "") -> str | None:
        """The highlighter checkpoint that features ``params`` need (None: none needed)."""
        return None

    def cut(self, path: str | os.PathLike, params: FeatureParams, highlighter=None) -> Cut:
        """Decode the segment of the song at ``path``; AudioLoadError on unusable files.

        A segment of digital silence is returned flagged (``segment.silent``), not refused:
        extraction keeps the song and ranking lists it last.
        """
        raise NotImplementedError


_METHODS: dict[str, SegmentMethod] = {}


def register(cls: type[SegmentMethod]) -> type[SegmentMethod]:
    """Class decorator: make a segment method available under ``cls.name``."""
    if not cls.name or cls.name in _METHODS:
        raise ValueError(f"segment method {cls.name!r}: empty or registered twice")
    _METHODS[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    """Remove a segment method (for plug-ins and tests that register temporary ones)."""
    _METHODS.pop(name, None)


def names() -> list[str]:
    """Registered segment methods, in registration order."""
    return list(_METHODS)


def get(name: str) -> SegmentMethod:
    """The segment method ``name``; ParameterError listing the known ones otherwise."""
    if name not in _METHODS:
        raise ParameterError(f"segment={name!r}; known segment methods: {names()}")
    return _METHODS[name]


def params_for(segment: str, highlighter: str | os.PathLike | None = None, **kwargs) -> FeatureParams:
    """Feature parameters of segment method ``segment`` (shortcut for ``get(...).feature_params``)."""
    return get(segment).feature_params(highlighter, **kwargs)


@register
class Mid30(SegmentMethod):
    """The 30 s centred on the middle of the song (only those frames are decoded)."""

    name = "mid30"
    help = "the middle 30 s (default)"

    def cut(self, path, params, highlighter=None) -> Cut:
        from . import audio

        return Cut(audio.load_mid30(path, sr=params.sr, allow_silent=True))


@register
class HL30(SegmentMethod):
    """The 30 s highlight: the window with the largest mass under a per-second importance
    curve, from the training-free fallback or an attention highlighter checkpoint."""

    name = "hl30"
    help = "the 30 s highlight (training-free fallback, or an attention highlighter)"
    manifest_fields = ("method", "curve")
    takes_highlighter = True

    def feature_params(self, highlighter=None, **kwargs) -> FeatureParams:
        from .thumbnail import highlighter_id

        return FeatureParams(segment=self.name, highlighter=highlighter_id(highlighter), **kwargs)

    def resolve_highlighter(self, params, given=None, recorded: str = "") -> str | None:
        """``given`` (or the ``recorded`` path of a model's config) when ``params`` were made
        with an attention highlighter; its digest must match."""
        from .thumbnail import highlighter_id, parse_highlighter_id

        kind, _ = parse_highlighter_id(params.highlighter)
        if kind == "fallback":
            return None
        path = given or recorded
        if not path or not Path(path).is_file():
            raise CheckpointError(f"these features come from an attention highlighter "
                                  f"({params.highlighter}); pass its checkpoint with --highlighter")
        if highlighter_id(path) != params.highlighter:
            raise CheckpointError(f"highlighter {str(path)!r} is not the one the features were made "
                                  f"with ({params.highlighter})")
        return str(path)

    def cut(self, path, params, highlighter=None) -> Cut:
        from . import audio
        from .thumbnail import find_highlight, parse_highlighter_id
        from .thumbnail.attention import load_highlighter_cached

        kind, _ = parse_highlighter_id(params.highlighter)
        if (kind == "attention") != bool(highlighter):
            raise ParameterError(f"params.highlighter={params.highlighter!r} does not match "
                                 f"highlighter={highlighter!r}; build the parameters with "
                                 "segments.params_for('hl30', highlighter)")
        model = load_highlighter_cached(str(highlighter)) if highlighter else None
        h = find_highlight(path, kind, model, sr=params.sr, seconds=params.segment_seconds,
                           allow_silent=True)
        seg = audio.crop(path, h["audio"], params.sr, h["start"], h["duration"], params.segment_seconds,
                         allow_silent=True)
        fields = {"method": h["method"],
                  "curve": json.dumps(np.round(h["curve"], CURVE_DECIMALS).tolist())}
        return Cut(seg, fields, song=h["audio"])
