"""Where the 30 s come from: Mid-30, or HL-30 highlights (attention model or fallback).

``highlight_curve`` gives a per-second importance curve of a decoded song and
``pick_window`` the 30 s window with the largest mass under it.

Methods:
``fallback``
    training-free: the most repeated loud section (:mod:`.fallback`).
``attention``
    a trained attention highlighter checkpoint (:mod:`.attention`), after Huang, Chou & Yang
    (2017): the attention weights over 3 s chunks, spread over their seconds.

This module stays light (no torch): segment methods import it. ``hitrank highlight`` runs
:func:`.files.highlight_files` (a checkpoint loaded, curves plotted); training is
:mod:`.training`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from .. import audio
from ..constants import SAMPLE_RATE, SEGMENT_SECONDS
from ..errors import AudioLoadError, CheckpointError, ParameterError
from .fallback import fallback_curve
from .window import contrast_window, pick_window

log = logging.getLogger(__name__)

def _fallback(y: np.ndarray, sr: int, model) -> np.ndarray:
    return fallback_curve(y, sr)


def _attention(y: np.ndarray, sr: int, model) -> np.ndarray:
    if model is None:
        raise ParameterError("method='attention' needs a trained highlighter (--model CKPT); "
                             "train one with `hitrank highlighter train` or use --method fallback")
    return model.curve(y, sr)


#: Highlighters by name: ``fn(y, sr, model) -> (n_seconds,)`` importance curve.
HIGHLIGHTERS = {"attention": _attention, "fallback": _fallback}
METHODS = tuple(HIGHLIGHTERS)

__all__ = ["HIGHLIGHTERS", "METHODS", "checkpoint_digest", "fallback_curve", "find_highlight",
           "highlight_curve", "highlighter_id", "parse_highlighter_id", "pick_window",
           "contrast_window"]


def highlight_curve(y: np.ndarray, sr: int = SAMPLE_RATE, method: str = "fallback",
                    model=None) -> np.ndarray:
    """Per-second importance of a song: (ceil(len(y) / sr),) float64, non-negative.

    Parameters
    ----------
    y : (n,) mono audio at ``sr``
    method : a name in :data:`HIGHLIGHTERS` ('fallback' or 'attention')
    model : for 'attention', a loaded highlighter (:func:`.attention.load_highlighter`)
    """
    if method not in HIGHLIGHTERS:
        raise ParameterError(f"method={method!r}; expected one of {METHODS}")
    return HIGHLIGHTERS[method](y, sr, model)


def highlighter_id(checkpoint: str | os.PathLike | None = None) -> str:
    """How features name their highlighter: ``fallback`` (no checkpoint) or
    ``attention:<first 12 hex digits of the checkpoint's SHA-1>``."""
    if not checkpoint:
        return "fallback"
    return f"attention:{checkpoint_digest(checkpoint)}"


def checkpoint_digest(path: str | os.PathLike) -> str:
    """First 12 hex digits of the checkpoint's SHA-1 (names the highlighter in feature params)."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]
    except OSError as exc:
        raise CheckpointError(f"{str(path)!r}: cannot read highlighter checkpoint ({exc.strerror})") from None


def parse_highlighter_id(hid: str) -> tuple[str, str]:
    """``'attention:abc'`` -> ``('attention', 'abc')``, ``'fallback'`` -> ``('fallback', '')``."""
    kind, _, digest = (hid or "fallback").partition(":")
    if kind not in HIGHLIGHTERS:
        raise ParameterError(f"highlighter {hid!r}: unknown kind {kind!r}; known: {METHODS}")
    return kind, digest


def find_highlight(path: str | os.PathLike, method: str = "fallback", model=None,
                   sr: int = SAMPLE_RATE, seconds: float = SEGMENT_SECONDS,
                   allow_silent: bool = False) -> dict:
    """Decode a song and find its highlight.

    A silent song is an AudioLoadError, or with ``allow_silent`` starts at 0 with a flat
    curve and ``silent=True`` (extraction keeps such songs, flagged).

    Returns
    -------
    dict with ``path``, ``start``, ``end`` (s), ``method``, ``duration`` (s), ``curve``
    (per-second importance, list of float), ``silent`` and ``audio`` ((n,) mono at ``sr``,
    the whole song).
    """
    y, duration = audio.load(path, sr)
    silent = audio.is_silent(y, sr, duration)
    if silent and not allow_silent:
        raise AudioLoadError(path, "audio is " + audio.silent_message(y, sr, duration))
    curve = np.zeros(max(1, int(np.ceil(len(y) / sr)))) if silent else highlight_curve(y, sr, method, model)
    start = pick_window(curve, duration, seconds)
    log.debug("%r: highlight %.0f-%.0f s chosen by %s", str(path), start, start + seconds, method)
    return {"path": str(path), "start": start, "end": start + seconds, "method": method,
            "duration": duration, "curve": curve, "silent": silent, "audio": y}
