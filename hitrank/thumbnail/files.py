"""Highlights of many audio files, as ``hitrank highlight`` shows them (and their plots).

A separate room from :mod:`hitrank.thumbnail`, which segment methods use: this one loads an
attention highlighter (torch) and draws curves (:mod:`.plot`, matplotlib when called).
"""

from __future__ import annotations

import os

from ..errors import HitrankError
from . import find_highlight
from .attention import load_highlighter
from .plot import plot_highlight


def highlight_files(paths, method: str | None = None, model_path=None, plot=None):
    """Highlights of audio files: yields ``(path, find_highlight result)`` (with ``plot``, the
    PNG written into that folder, as ``result["plot"]``), or ``(path, HitrankError)`` for a
    file that fails (the batch goes on).

    ``method`` defaults to ``attention`` when ``model_path`` is given, else ``fallback``.
    """
    method = method or ("attention" if model_path else "fallback")
    model = None
    if method == "attention":
        if not model_path:
            raise HitrankError("--method attention needs --model CKPT (or use --method fallback)")
        model = load_highlighter(model_path)
    for path in paths:
        try:
            h = find_highlight(path, method, model)
        except HitrankError as exc:
            yield path, exc
            continue
        if plot:
            os.makedirs(plot, exist_ok=True)
            h["plot"] = str(plot_highlight(h, plot))
        yield path, h
