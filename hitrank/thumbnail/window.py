"""Choosing a 30 s window from a per-second importance curve."""

from __future__ import annotations

import numpy as np

from ..constants import SEGMENT_SECONDS
from ..errors import ParameterError


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
    curve = np.asarray(curve, dtype=np.float64)
    if curve.ndim != 1:
        raise ParameterError(f"curve must be 1-D, got shape {curve.shape}")
    if duration <= seconds or len(curve) == 0:
        return 0.0
    curve = np.nan_to_num(curve, nan=0.0, posinf=0.0, neginf=0.0)
    curve = np.clip(curve, 0, None)
    width = int(round(seconds))
    last = int(np.floor(duration - seconds))  # latest start that keeps the window in the song
    padded = np.zeros(last + width)
    n = min(len(curve), len(padded))
    padded[:n] = curve[:n]
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    sums = csum[width: width + last + 1] - csum[: last + 1]
    return float(np.argmax(sums))
