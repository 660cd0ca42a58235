"""Highlights of many audio files, as ``hitrank highlight`` shows them (and their plots).

A separate room from :mod:`hitrank.thumbnail`, which segment methods use: this one loads an
attention highlighter (torch) and draws curves (:mod:`.plot`, matplotlib when called).
"""

from __future__ import annotations

import os
from pathlib import PurePath

from ..errors import HitrankError
from . import find_highlight
from .attention import load_highlighter
from .plot import plot_highlight


def highlight_files(paths, method: str | None = None, model_path=None, plot=None):
    """Highlights of audio files: yields ``(path, find_highlight result)`` (with ``plot``, the
    PNG written into that folder, as ``result["plot"]``), or ``(path, HitrankError)`` for a
    file that fails (the batch goes on).

    ``method`` defaults to ``attention`` when ``model_path`` is given, else ``fallback``. A
    plot is named after its file (``song.wav.highlight.png``); files of one name in different
    folders keep as many of their folders as tell them apart (``a/song.wav.highlight.png``,
    ``b/song.wav.highlight.png``), so that no plot replaces another.
    """
    method = method or ("attention" if model_path else "fallback")
    model = None
    if method == "attention":  # a usage error stops the batch here, before any file (not lazily)
        if not model_path:
            raise HitrankError("--method attention needs --model CKPT (or use --method fallback)")
        model = load_highlighter(model_path)
    return _highlight_each(list(paths), method, model, plot)


def _highlight_each(paths: list, method: str, model, plot):
    for path, name in zip(paths, distinct_tails(paths), strict=True):
        try:
            h = find_highlight(path, method, model)
        except HitrankError as exc:
            yield path, exc
            continue
        if plot:
            os.makedirs(os.path.join(plot, os.path.dirname(name)), exist_ok=True)
            h["plot"] = str(plot_highlight(h, plot, name))
        yield path, h


def distinct_tails(paths: list[str]) -> list[str]:
    """The shortest end of each path (its file name, then as many parent folders as needed)
    that no other path of ``paths`` shares, as a relative POSIX path; a file given twice gets
    one name. ``['x/a/s.wav', 'x/b/s.wav', 't.wav']`` -> ``['a/s.wav', 'b/s.wav', 't.wav']``."""
    parts = [PurePath(os.path.abspath(p)).parts[1:] or (str(p),) for p in paths]
    n = [1] * len(parts)
    while True:
        owners: dict[tuple, set] = {}
        for own, k in zip(parts, n, strict=True):
            owners.setdefault(own[-k:], set()).add(own)
        longer = [i for i, own in enumerate(parts) if len(owners[own[-n[i]:]]) > 1 and n[i] < len(own)]
        if not longer:
            return ["/".join(own[-k:]) for own, k in zip(parts, n, strict=True)]
        for i in longer:
            n[i] += 1
