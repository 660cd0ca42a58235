"""Segment methods: which 30 s of a song the features describe (Mid-30, HL-30, ...).

A segment method is registered by name and gives everything the rest of hitrank needs:

* :meth:`SegmentMethod.feature_params` -- the :class:`~hitrank.features.FeatureParams` that
  name the method (and its highlighter) in stores and checkpoints;
* :meth:`SegmentMethod.cut` -- the decoded 30 s of one song, plus the manifest fields the
  method records (HL-30: ``method`` and the per-second ``curve``) and the whole decoded song
  when the method had to decode it anyway (reused for song-scope tags); :meth:`Cut.mel` gives
  its features (the mel of the 30 s, or with ``mel_crop='centre'`` the centre frames of the
  mel of the whole song: :func:`centre_mel`);
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
from typing import TYPE_CHECKING

import numpy as np

from . import audio
from .errors import CheckpointError, ParameterError
from .features import CONTRASTS, FeatureParams, log_mel
from .thumbnail import contrast_window, find_highlight, highlighter_id, parse_highlighter_id

if TYPE_CHECKING:  # torch is imported when first needed (fast start)
    import torch

CURVE_DECIMALS = 4  # the per-second HL-30 curve is stored rounded to this many decimals


@dataclass
class Cut:
    """One song's analysed segment and what the method records about it.

    Attributes
    ----------
    segment : :class:`hitrank.audio.Segment`, exactly ``segment_seconds`` of mono audio
    fields : manifest fields of the method (e.g. ``method``, ``curve``), JSON-ready
    song : (n,) the whole decoded song at the feature rate, when the method decoded it
    centre_frames : the features are the centre frames of the mel of ``song`` (the released
        ret30 rule, :func:`centre_mel`), not the mel of ``segment``
    contrast : start (s) of the song's contrast window (``params.contrast``), or None
    """

    segment: object
    fields: dict = field(default_factory=dict)
    song: np.ndarray | None = None
    centre_frames: bool = False
    contrast: float | None = None

    def mel(self, params: FeatureParams) -> torch.Tensor:
        """The features of this cut: (n_mels, params.n_frames) float32 torch tensor (CPU)."""
        if self.centre_frames:
            return centre_mel(self.song, params)
        return log_mel(self.segment.audio, params)

    def contrast_mel(self, path, params: FeatureParams) -> torch.Tensor:
        """The features of the contrast window (:func:`~hitrank.thumbnail.contrast_window`),
        computed like the segment's: (n_mels, params.n_frames) float32 torch tensor (CPU).
        A song too short for a contrast window gets its segment's features again."""
        if self.contrast is None or self.song is None:
            raise ParameterError(f"contrast={params.contrast!r} needs a segment method that "
                                 "finds a contrast window (hl30)")
        seg = audio.crop(path, self.song, params.sr, self.contrast, self.segment.duration,
                         params.segment_seconds, allow_silent=True)
        return log_mel(seg.audio, params)

    def whole_mel(self, path, params: FeatureParams) -> torch.Tensor:
        """The log-mel of the whole song (``params.whole_song``: whole-song training), computed
        like the segment's: (n_mels, n_song_frames) float32 torch tensor (CPU). The song is
        decoded again only when the segment method did not decode it (Mid-30); a song shorter
        than the segment gets the segment's features (zero-padded to ``params.n_frames``)."""
        song = self.song if self.song is not None else audio.load(path, params.sr)[0]
        if len(song) < len(self.segment.audio):
            return log_mel(self.segment.audio, params)
        return log_mel(song, params)


def centre_first(n_samples: int, params: FeatureParams) -> int:
    """The first of the ``params.n_frames`` centre frames that the released ret30 extractor
    keeps of the centred mel of ``n_samples`` samples: ``T // 2 - n_frames // 2`` with
    ``T = 1 + n_samples // hop_length`` (0 when ``T == n_frames``; see :func:`centre_mel`)."""
    n, total = params.n_frames, 1 + n_samples // params.hop_length
    if total < n:
        raise ParameterError(f"the centre frames need audio of at least {n} frames ({(n - 1) * params.hop_length} "
                             f"samples), got {n_samples} samples; shorter audio takes the segment path "
                             "(zero-padded)")
    return total // 2 - n // 2


def centre_mel(y: np.ndarray, params: FeatureParams) -> torch.Tensor:
    """The released ret30 front end: the mel of all of ``y``, its centre ``n_frames`` kept.

    The authors' extractor (``mel_extract.py`` of OckhamsRazor/HSP_CNN) computes the centred
    mel of the whole clip, ``T = 1 + len(y) // hop`` frames, and keeps the frames
    ``[T // 2 - n // 2, T // 2 - n // 2 + n)`` (n = 323: ``[T//2 - 161, T//2 + 162)``;
    :func:`centre_first`). Only the samples those frames read are transformed (equal to
    slicing the whole mel, also for a song of an hour), with the centred STFT's zero padding
    outside ``y``.

    Parameters
    ----------
    y : (n_samples,) mono audio at ``params.sr``, at least ``params.n_frames`` frames long
        (``n_samples >= (n_frames - 1) * hop_length``)
    params : FeatureParams

    Returns
    -------
    torch.Tensor, shape (n_mels, n_frames), float32 (``params.log`` applied)
    """
    n, hop, half = params.n_frames, params.hop_length, params.n_fft // 2
    first = centre_first(len(y), params)
    # frames whose centred windows reach the first kept one's: computed, then dropped, so that
    # the kept frames see the song (or the centred STFT's zeros), never the window's edge padding
    lead = -(-half // hop)
    lo = (first - lead) * hop  # sample under the centre of the first computed frame (may be < 0)
    window = np.zeros((n - 1 + 2 * lead) * hop + 1, dtype=np.float32)
    a, b = max(lo, 0), min(lo + len(window), len(y))
    window[a - lo: b - lo] = y[a:b]
    return log_mel(window, params)[:, lead: lead + n]


class SegmentMethod:
    """Base class of segment methods; subclasses set :attr:`name` and :attr:`help`."""

    name: str = ""
    help: str = ""
    #: extra manifest columns this method fills (the store keeps them as text)
    manifest_fields: tuple[str, ...] = ()
    #: whether configs must name a highlighter (``features.highlighter``) for this method
    takes_highlighter: bool = False

    #: the ``mel_crop`` values (:data:`hitrank.features.MEL_CROPS`) this method's cut honours
    mel_crops: tuple[str, ...] = ("",)
    #: the ``contrast`` values (:data:`hitrank.features.CONTRASTS`) this method's cut honours:
    #: a contrast window is chosen on a highlighter's curve (HL-30)
    contrasts: tuple[str, ...] = ("",)

    def feature_params(self, highlighter: str | os.PathLike | None = None, **kwargs) -> FeatureParams:
        """Feature parameters of this method; ``kwargs`` are other FeatureParams fields."""
        if highlighter:
            raise ParameterError(f"segment {self.name!r} takes no highlighter (got {str(highlighter)!r}); "
                                 "highlighters are for hl30")
        return self.check_mel_crop(FeatureParams(segment=self.name, **kwargs))

    def check_mel_crop(self, params: FeatureParams) -> FeatureParams:
        """``params``, or a ParameterError when this method cannot honour ``params.mel_crop``
        or ``params.contrast``."""
        if params.mel_crop not in self.mel_crops:
            raise ParameterError(f"mel_crop={params.mel_crop!r} is not available with segment "
                                 f"{self.name!r} (it takes {self.mel_crops}); use segment 'mid30'")
        if params.contrast not in self.contrasts:
            raise ParameterError(f"contrast={params.contrast!r} is not available with segment "
                                 f"{self.name!r}: a contrast window is chosen on a highlighter's "
                                 "curve; use segment 'hl30'")
        return params

    def resolve_highlighter(self, params: FeatureParams, given=None, recorded: str = "") -> str | None:
        """The highlighter checkpoint that features ``params`` need (None: none needed)."""
        return None

    def cut(self, path: str | os.PathLike, params: FeatureParams, highlighter=None) -> Cut:
        """Decode the segment of the song at ``path``; AudioLoadError on unusable files.

        A segment with no sound (:func:`hitrank.audio.is_silent`) is returned flagged (``segment.silent``), not refused:
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
    """The 30 s centred on the middle of the song (only those frames are decoded).

    With ``params.mel_crop == 'centre'`` (the authors' imported ret30, ``yu2018-kkbox``) the
    whole song is decoded and, when it lasts ``segment_seconds`` or longer, the features are
    the centre frames of its mel (:func:`centre_mel`), as the released extractor computes
    them, and the segment (tags, ``seg_start``) is the ``segment_seconds`` from where the
    first kept frame's window starts: for a clip of 30 s to 30.19 s that is the clip's start,
    where the released tagger reads it. A shorter song takes the usual path (zero-padded).
    """

    name = "mid30"
    help = "the middle 30 s (default)"
    mel_crops = ("", "centre")

    def cut(self, path, params, highlighter=None) -> Cut:
        if params.mel_crop != "centre":
            return Cut(audio.load_mid30(path, sr=params.sr, allow_silent=True))
        y, duration = audio.load(path, params.sr)
        centre = len(y) >= int(round(params.segment_seconds * params.sr))
        first = centre_first(len(y), params) if centre else 0
        start = max(0, first * params.hop_length - params.n_fft // 2) / params.sr  # s
        seg = audio.crop(path, y, params.sr, start, duration, params.segment_seconds, allow_silent=True)
        return Cut(seg, song=y, centre_frames=centre)


@register
class HL30(SegmentMethod):
    """The 30 s highlight: the window with the largest mass under a per-second importance
    curve, from the training-free fallback or an attention highlighter checkpoint."""

    name = "hl30"
    help = "the 30 s highlight (training-free fallback, or an attention highlighter)"
    manifest_fields = ("method", "curve")
    takes_highlighter = True
    contrasts = CONTRASTS

    def feature_params(self, highlighter=None, **kwargs) -> FeatureParams:
        return self.check_mel_crop(FeatureParams(segment=self.name, highlighter=highlighter_id(highlighter),
                                                 **kwargs))

    def resolve_highlighter(self, params, given=None, recorded: str = "") -> str | None:
        """``given`` (or the ``recorded`` path of a model's config) when ``params`` were made
        with an attention highlighter; its digest must match."""
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
        from .thumbnail.attention import load_highlighter_cached  # lazily: torch

        self.check_mel_crop(params)
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
        contrast = (contrast_window(h["curve"], h["duration"], h["start"], params.segment_seconds,
                                    params.contrast) if params.contrast else None)
        return Cut(seg, fields, song=h["audio"], contrast=contrast)
