"""Where the 30 s come from: Mid-30, or HL-30 highlights (attention model or fallback).

``highlight_curve`` gives a per-second importance curve of a decoded song and
``pick_window`` the 30 s window with the largest mass under it.

Methods:
``fallback``
    training-free: the most repeated loud section (:mod:`.fallback`).
``attention``
    a trained attention highlighter checkpoint (:mod:`.attention`), after Huang, Chou & Yang
    (2017): the attention weights over 3 s chunks, spread over their seconds.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .. import audio
from ..constants import SAMPLE_RATE, SEGMENT_SECONDS
from ..errors import AudioLoadError, ParameterError
from .fallback import fallback_curve
from .window import pick_window

log = logging.getLogger(__name__)

METHODS = ("attention", "fallback")

__all__ = ["METHODS", "fallback_curve", "find_highlight", "highlight_curve", "pick_window"]


def highlight_curve(y: np.ndarray, sr: int = SAMPLE_RATE, method: str = "fallback",
                    model=None) -> np.ndarray:
    """Per-second importance of a song: (ceil(len(y) / sr),) float64, non-negative.

    Parameters
    ----------
    y : (n,) mono audio at ``sr``
    method : 'fallback' or 'attention'
    model : for 'attention', a loaded highlighter (:func:`.attention.load_highlighter`)
    """
    if method == "fallback":
        return fallback_curve(y, sr)
    if method == "attention":
        if model is None:
            raise ParameterError("method='attention' needs a trained highlighter (--model CKPT); "
                                 "train one with `hitrank highlighter train` or use --method fallback")
        return model.curve(y, sr)
    raise ParameterError(f"method={method!r}; expected one of {METHODS}")


def find_highlight(path: str | os.PathLike, method: str = "fallback", model=None,
                   sr: int = SAMPLE_RATE, seconds: float = SEGMENT_SECONDS) -> dict:
    """Decode a song and find its highlight.

    Returns
    -------
    dict with ``path``, ``start``, ``end`` (s), ``method``, ``duration`` (s), ``curve``
    (per-second importance, list of float) and ``audio`` ((n,) mono at ``sr``, the whole song).
    """
    y, duration = audio.load(path, sr)
    if float(np.max(np.abs(y), initial=0.0)) < audio.SILENCE_PEAK:
        raise AudioLoadError(path, "audio is silent")
    curve = highlight_curve(y, sr, method, model)
    start = pick_window(curve, duration, seconds)
    log.debug("%r: highlight %.0f-%.0f s chosen by %s", str(path), start, start + seconds, method)
    return {"path": str(path), "start": start, "end": start + seconds, "method": method,
            "duration": duration, "curve": curve, "audio": y}
