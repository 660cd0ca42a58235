"""Ranking metrics of Yu et al. (2018), as the authors computed them, with ties handled.

For a test fold of ``n`` songs let ``N = max(2, round(top * n))`` (the true top 10%).

``ndcg``
    nDCG@N with the *raw* hit scores as gains and ``1 / log2(rank + 1)`` discounts (rank from
    1): ``sum_{i<N} y[pred_order[i]] / log2(i + 2)`` divided by the same sum over the true
    order. Songs are ordered by prediction over the whole fold. Tied predictions share their
    positions: a group of tied songs gets the mean gain of the group at each of the positions
    it occupies (scikit-learn's ``ndcg_score(..., ignore_ties=False)``), i.e. the expected DCG
    over all orders of the tie, so the score never depends on the order of the rows. Equals
    ``sklearn.metrics.ndcg_score([y], [p], k=N, ignore_ties=False)``, and with no ties the
    plain ``ndcg_score([y], [p], k=N)``. Signed labels (e.g. net liking in [-1, 1]): the
    gains are the labels minus their minimum over the ranked songs, so the least-liked song
    gains 0 (:func:`gains`); non-negative labels are their own gains, as in the paper.
``kendall`` / ``spearman``
    Kendall tau-b and Spearman rho (average ranks) of prediction vs truth over the songs in
    the TRUE top N. When true scores tie at the cut-off, every song tied with the N-th best is
    kept (so the set can hold more than N songs and never depends on row order). A constant
    prediction carries no ranking information and scores 0.
``recall``
    ``|top-N(pred) & top-N(true)| / N``; when ties straddle either cut-off, the expected
    overlap over all ways of breaking the ties (each song of a straddling group is in the top
    N with probability ``places left / group size``).
``kendall_all`` / ``spearman_all``
    The same correlations over the whole fold.

Precision: predictions are rounded to float32 before anything is ranked (values beyond
float32's range are clipped to it). Models run in float32 or bfloat16, so two songs whose
float64 predictions differ below float32 resolution (about 6e-8 relative) are tied in truth;
the rounding stops float64 noise (a target inverse, an ensemble sum) from breaking such ties
in an arbitrary direction. True scores (the gains) stay float64.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kendalltau, spearmanr

from .errors import ParameterError

METRICS = ("ndcg", "kendall", "spearman", "recall")
#: Predictions are ranked in this precision (see the module docstring).
RANK_DTYPE = np.float32
_RANK_MAX = float(np.finfo(RANK_DTYPE).max)
MIN_TOP = 2  # songs: a correlation needs two


def _corr(fn, a, b) -> float:
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    r = fn(a, b)[0]
    return 0.0 if r is None or math.isnan(r) else float(r)


def n_top(n: int, top: float) -> int:
    """Number of songs in the top fraction ``top`` of ``n`` songs (at least 2, at most n)."""
    return int(min(n, max(MIN_TOP, round(top * n))))


def rank_precision(y_pred) -> np.ndarray:
    """Predictions as they are ranked: rounded to float32, returned as float64.

    Parameters
    ----------
    y_pred : array (n,) of finite predictions

    Returns
    -------
    (n,) float64 array; values beyond float32's range are clipped to +-3.4e38.
    """
    p = np.clip(np.asarray(y_pred, dtype=np.float64), -_RANK_MAX, _RANK_MAX)
    return p.astype(RANK_DTYPE).astype(np.float64)


def _tie_groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of equal values in descending order.

    Returns
    -------
    group : (n,) int, the group of each element (0 = the largest value)
    start : (g,) int, first position of each group in the descending order
    size : (g,) int, elements per group
    """
    _, group, size = np.unique(-x, return_inverse=True, return_counts=True)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    return group.reshape(-1), start, size


def _in_top_probability(x: np.ndarray, k: int) -> np.ndarray:
    """(n,) probability that each element is among the ``k`` largest when ties are broken at
    random: 1 above the cut, 0 below, ``places left / group size`` in a straddling group."""
    group, start, size = _tie_groups(x)
    places = np.clip(k - start, 0, size)
    return (places / size)[group]


def _tie_averaged_dcg(y: np.ndarray, p: np.ndarray, discount_cum: np.ndarray, k: int) -> float:
    """DCG@k of ordering ``y`` by ``p``, a tied group's mean gain at each of its positions.

    ``discount_cum[i]`` is the sum of the first ``i`` discounts (``discount_cum[0] = 0``).
    """
    group, start, size = _tie_groups(p)
    mean_gain = np.bincount(group, weights=y, minlength=len(size)) / size
    first, last = np.minimum(start, k), np.minimum(start + size, k)
    return float(np.sum(mean_gain * (discount_cum[last] - discount_cum[first])))


def _check(y_true, y_pred, top: float) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ParameterError(f"y_true {y.shape} and y_pred {p.shape} must be 1-D and equal in shape")
    if len(y) < MIN_TOP:
        raise ParameterError(f"need at least {MIN_TOP} songs to rank, got {len(y)}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
        raise ParameterError("y_true and y_pred must be finite (NaN or inf found)")
    if not 0 < top <= 1:
        raise ParameterError(f"top={top}; expected a fraction in (0, 1]")
    return y, rank_precision(p)


def gains(y: np.ndarray) -> np.ndarray:
    """nDCG gains of raw labels ``y`` (..., n): the labels themselves when none is negative,
    else the labels minus their minimum (per row), so that every gain is >= 0.

    Kendall, Spearman and recall do not depend on this shift; nDCG does, so the rule is fixed
    here once (see the module docstring).
    """
    y = np.asarray(y, dtype=np.float64)
    low = y.min(axis=-1, keepdims=True)
    return np.where(low < 0, y - low, y)


def _top_metrics(y: np.ndarray, p: np.ndarray, top: float) -> dict:
    """The @top metrics of checked arrays (``p`` already in rank precision)."""
    k = n_top(len(y), top)
    discount_cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    g = gains(y)
    ideal = float(np.sum(np.sort(g)[::-1][:k] * np.diff(discount_cum)))
    ndcg = _tie_averaged_dcg(g, p, discount_cum, k) / ideal if ideal > 0 else 0.0
    kth_best = np.partition(y, len(y) - k)[len(y) - k]
    true_top = y >= kth_best  # every song tied with the k-th best
    overlap = float(np.sum(_in_top_probability(p, k) * _in_top_probability(y, k)))
    return {
        "ndcg": min(ndcg, 1.0),
        "kendall": _corr(kendalltau, y[true_top], p[true_top]),
        "spearman": _corr(spearmanr, y[true_top], p[true_top]),
        "recall": min(overlap / k, 1.0),
        "n_top": k,
    }


def top_metrics(y_true, y_pred, top: float = 0.1) -> dict:
    """nDCG, Kendall, Spearman and recall on the true top ``top`` fraction only.

    :func:`ranking_metrics` without the whole-fold correlations (cheaper: used by the
    bootstraps). Same parameters; returns keys ``ndcg``, ``kendall``, ``spearman``,
    ``recall``, ``n_top``.
    """
    y, p = _check(y_true, y_pred, top)
    return _top_metrics(y, p, top)


def ranking_metrics(y_true, y_pred, top: float = 0.1) -> dict:
    """nDCG, Kendall tau and Spearman rho on the true top ``top`` fraction, and recall.

    Ties (in predictions, after rounding them to float32, and in truths) are handled as the
    module docstring says: no metric depends on the order of the rows.

    Parameters
    ----------
    y_true : array (n,) of raw hit scores (any finite values; nDCG gains: :func:`gains`)
    y_pred : array (n,) of predictions (any monotone scale)
    top : fraction of songs in the top group (paper: 0.1)

    Returns
    -------
    dict with keys ``ndcg``, ``kendall``, ``spearman``, ``recall``, ``kendall_all``,
    ``spearman_all``, ``n_top``.
    """
    y, p = _check(y_true, y_pred, top)
    m = _top_metrics(y, p, top)
    k = m.pop("n_top")
    return {**m, "kendall_all": _corr(kendalltau, y, p), "spearman_all": _corr(spearmanr, y, p),
            "n_top": k}


# ----------------------------------------------------------------------------- batches
#: Up to this many songs in a true-top set, Kendall's tau-b of a batch comes from sign
#: matrices (rows x t x t int8); larger sets use scipy row by row.
PAIRWISE_KENDALL_MAX = 256
#: Elements (rows x songs, or rows x t x t) handled at once: bounds the memory of a batch.
BATCH_ELEMENTS = 1 << 21


def _run_bounds(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of sorted values (B, m): start and end (exclusive) position of the run of equal
    values each position belongs to."""
    b, m = v.shape
    pos = np.broadcast_to(np.arange(m), (b, m))
    new = np.ones((b, m), dtype=bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones((b, m), dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos, m)[:, ::-1], axis=1)[:, ::-1] + 1
    return start, end


def _unsort(values_sorted: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(values_sorted)
    np.put_along_axis(out, order, values_sorted, axis=1)
    return out


def _average_ranks(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """1-based average ranks of the valid entries of each row (invalid ones are ranked last,
    as +inf, and do not change the ranks of the valid ones)."""
    xs = np.where(valid, x, np.inf)
    order = np.argsort(xs, axis=1, kind="stable")
    start, end = _run_bounds(np.take_along_axis(xs, order, axis=1))
    return _unsort((start + end + 1) / 2.0, order)


def _batch_spearman(yt: np.ndarray, pt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    ry, rp = _average_ranks(yt, valid), _average_ranks(pt, valid)
    n_valid = valid.sum(axis=1)
    cy = np.where(valid, ry - (np.where(valid, ry, 0).sum(axis=1) / n_valid)[:, None], 0.0)
    cp = np.where(valid, rp - (np.where(valid, rp, 0).sum(axis=1) / n_valid)[:, None], 0.0)
    den = np.sqrt((cy * cy).sum(axis=1) * (cp * cp).sum(axis=1))
    return np.where(den > 0, (cy * cp).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0)


def _batch_kendall(yt: np.ndarray, pt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """tau-b = sum sgn(dy) sgn(dp) / sqrt(sum sgn(dy)^2 * sum sgn(dp)^2) over valid pairs."""
    b, t = yt.shape
    if t > PAIRWISE_KENDALL_MAX:
        return np.array([_corr(kendalltau, yt[i, valid[i]], pt[i, valid[i]]) for i in range(b)])
    out = np.empty(b)
    rows = max(1, BATCH_ELEMENTS // max(1, t * t))
    for s in range(0, b, rows):
        y, p, v = yt[s:s + rows], pt[s:s + rows], valid[s:s + rows]
        both = v[:, :, None] & v[:, None, :]
        dy = (np.sign(y[:, :, None] - y[:, None, :]) * both).astype(np.int8)
        dp = (np.sign(p[:, :, None] - p[:, None, :]) * both).astype(np.int8)
        num = (dy * dp).sum(axis=(1, 2), dtype=np.int64)
        den = np.sqrt((dy * dy).sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
                      * (dp * dp).sum(axis=(1, 2), dtype=np.int64))
        out[s:s + rows] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return out


def _batch_top_metrics(y: np.ndarray, p: np.ndarray, k: int) -> dict:
    """Rows of checked arrays (B, m), ``p`` in rank precision; see :func:`top_metrics_batch`."""
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    zero = np.zeros((len(y), 1))
    order_p = np.argsort(-p, axis=1, kind="stable")
    start, end = _run_bounds(np.take_along_axis(p, order_p, axis=1))
    g = gains(y)
    gain_cum = np.concatenate([zero, np.cumsum(np.take_along_axis(g, order_p, axis=1), axis=1)], axis=1)
    mean_gain = (np.take_along_axis(gain_cum, end, axis=1)
                 - np.take_along_axis(gain_cum, start, axis=1)) / (end - start)
    dcg = (mean_gain[:, :k] * discounts).sum(axis=1)
    in_top_p = _unsort(np.clip(k - start, 0, end - start) / (end - start), order_p)

    order_y = np.argsort(-y, axis=1, kind="stable")
    y_sorted = np.take_along_axis(y, order_y, axis=1)
    ideal = (np.take_along_axis(g, order_y, axis=1)[:, :k] * discounts).sum(axis=1)
    start_y, end_y = _run_bounds(y_sorted)
    in_top_y = _unsort(np.clip(k - start_y, 0, end_y - start_y) / (end_y - start_y), order_y)

    n_true_top = end_y[:, k - 1]  # every song tied with the k-th best
    t = int(n_true_top.max())
    yt, pt = y_sorted[:, :t], np.take_along_axis(p, order_y, axis=1)[:, :t]
    valid = np.arange(t) < n_true_top[:, None]
    ndcg = np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)
    return {"ndcg": np.minimum(ndcg, 1.0), "kendall": _batch_kendall(yt, pt, valid),
            "spearman": _batch_spearman(yt, pt, valid),
            "recall": np.minimum((in_top_p * in_top_y).sum(axis=1) / k, 1.0)}


def top_metrics_batch(y_true, y_pred, top: float = 0.1) -> dict:
    """:func:`top_metrics` of many rankings at once (bootstrap resamples), vectorised.

    Parameters
    ----------
    y_true : array (B, m) of raw hit scores, one ranking problem per row
    y_pred : array (B, m) of predictions
    top : fraction of songs in the top group

    Returns
    -------
    dict: ``ndcg``, ``kendall``, ``spearman``, ``recall`` -> (B,) float64 arrays equal to
    :func:`top_metrics` of each row (to rounding), and ``n_top`` -> int (the same ``N`` for
    every row).
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape:
        raise ParameterError(f"y_true {y.shape} and y_pred {p.shape} must be 2-D (rows, songs) and "
                             "equal in shape")
    _check(y.reshape(-1), p.reshape(-1), top)
    if y.shape[1] < MIN_TOP:
        raise ParameterError(f"need at least {MIN_TOP} songs per row to rank, got {y.shape[1]}")
    p = rank_precision(p)
    k = n_top(y.shape[1], top)
    out = {key: np.empty(len(y)) for key in METRICS}
    rows = max(1, BATCH_ELEMENTS // y.shape[1])
    for s in range(0, len(y), rows):
        part = _batch_top_metrics(y[s:s + rows], p[s:s + rows], k)
        for key in METRICS:
            out[key][s:s + rows] = part[key]
    return {**out, "n_top": k}
