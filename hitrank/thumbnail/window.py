"""Choosing a 30 s window from a per-second importance curve: the highlight (the most
important window) and its contrast (the least important window away from it)."""

from __future__ import annotations

import numpy as np

from ..constants import CONTRAST_QUANTILES, SEGMENT_SECONDS
from ..errors import ParameterError


def window_masses(curve: np.ndarray, duration: float, seconds: float = SEGMENT_SECONDS) -> np.ndarray | None:
    """The mass under ``curve`` of every ``seconds``-long window starting at a whole second.

    Parameters
    ----------
    curve : (n,) non-negative importance per second (second i covers [i, i + 1) s); NaN/inf
        and negative values count as 0
    duration : song length in seconds
    seconds : window length

    Returns
    -------
    (floor(duration - seconds) + 1,) float64: entry ``k`` sums ``curve[k : k + seconds]``
    (exactly ``seconds`` values; missing ones count 0); None when the song is not longer than
    the window or the curve is empty (one window only, starting at 0).
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.ndim != 1:
        raise ParameterError(f"curve must be 1-D, got shape {curve.shape}")
    if duration <= seconds or len(curve) == 0:
        return None
    curve = np.nan_to_num(curve, nan=0.0, posinf=0.0, neginf=0.0)
    curve = np.clip(curve, 0, None)
    width = int(round(seconds))
    last = int(np.floor(duration - seconds))  # latest start that keeps the window in the song
    padded = np.zeros(last + width)
    n = min(len(curve), len(padded))
    padded[:n] = curve[:n]
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    return csum[width: width + last + 1] - csum[: last + 1]


def pick_window(curve: np.ndarray, duration: float, seconds: float = SEGMENT_SECONDS) -> float:
    """Start (s) of the ``seconds``-long window with the largest mass under ``curve``.

    Parameters
    ----------
    curve : (n,) non-negative importance per second (second i covers [i, i + 1) s)
    duration : song length in seconds
    seconds : window length

    Returns
    -------
    float
        Start time in whole seconds, in ``[0, max(0, duration - seconds)]``. Songs not longer
        than the window start at 0. Ties go to the earliest window. The window sums exactly
        ``seconds`` values (the released code's first window summed one more, a bias towards
        start 0 that is not copied).
    """
    sums = window_masses(curve, duration, seconds)
    return 0.0 if sums is None else float(np.argmax(sums))


#: a contrast window may share at most this share of its length with the highlight
CONTRAST_MAX_OVERLAP = 0.5


def contrast_window(curve: np.ndarray, duration: float, highlight: float,
                    seconds: float = SEGMENT_SECONDS, which: str = "lowest") -> float:
    """Start (s) of a ``seconds``-long window that shares at most :data:`CONTRAST_MAX_OVERLAP`
    of its length with the highlight starting at ``highlight`` (s): among those windows, the
    one with the *smallest* mass under ``curve`` (``lowest``: the part of the song its
    highlighter rates lowest, often an intro or outro) or the one of *median* mass
    (``median``: a typical part away from the highlight, often a verse). The contrast of
    within-song training (``features.contrast``).

    Parameters
    ----------
    curve : (n,) non-negative importance per second (as :func:`pick_window`)
    duration : song length in seconds
    highlight : start (s) of the song's analysed segment
    seconds : window length
    which : a name of :data:`hitrank.constants.CONTRAST_QUANTILES`

    Returns
    -------
    float
        Start time in whole seconds. ``highlight`` itself when no window is far enough from
        it: always for songs shorter than ``seconds * (2 - CONTRAST_MAX_OVERLAP)`` (45 s for
        30 s windows), and for shorter than ``2 * seconds`` when the highlight sits near the
        middle. The contrast is then the segment, which training recognises and leaves out.
        Ties go to the earliest window.
    """
    if which not in CONTRAST_QUANTILES:
        raise ParameterError(f"contrast window {which!r}; expected one of {list(CONTRAST_QUANTILES)}")
    sums = window_masses(curve, duration, seconds)
    if sums is None:
        return float(highlight)
    starts = np.arange(len(sums), dtype=np.float64)
    overlap = np.clip(np.minimum(starts, highlight) + seconds - np.maximum(starts, highlight), 0, None)
    far = overlap <= CONTRAST_MAX_OVERLAP * seconds + 1e-9
    if not far.any():
        return float(highlight)
    order = np.argsort(sums[far], kind="stable")  # ties: the earliest window first
    pick = int(round(CONTRAST_QUANTILES[which] * (len(order) - 1)))
    return float(starts[far][order[pick]])
