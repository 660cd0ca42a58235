"""Ranking metrics of Yu et al. (2018), as the authors computed them.

For a test fold of ``n`` songs let ``N = max(2, round(top * n))`` (the true top 10%).

``ndcg``
    nDCG@N with the *raw* hit scores as gains and ``1 / log2(rank + 1)`` discounts (rank from
    1): ``sum_{i<N} y[pred_order[i]] / log2(i + 2)`` divided by the same sum over the true
    order. Songs are ordered by prediction over the whole fold (ties broken by input order).
    Equals ``sklearn.metrics.ndcg_score([y], [p], k=N)`` when there are no ties.
``kendall`` / ``spearman``
    Kendall tau-b and Spearman rho of prediction vs truth over the songs in the TRUE top N.
    A constant prediction carries no ranking information and scores 0.
``recall``
    ``|top-N(pred) & top-N(true)| / N``.
``kendall_all`` / ``spearman_all``
    The same correlations over the whole fold.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kendalltau, spearmanr

from .errors import ParameterError

METRICS = ("ndcg", "kendall", "spearman", "recall")


def _corr(fn, a, b) -> float:
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    r = fn(a, b)[0]
    return 0.0 if r is None or math.isnan(r) else float(r)


def n_top(n: int, top: float) -> int:
    """Number of songs in the top fraction ``top`` of ``n`` songs (at least 2, at most n)."""
    return int(min(n, max(2, round(top * n))))


def ranking_metrics(y_true, y_pred, top: float = 0.1) -> dict:
    """nDCG, Kendall tau and Spearman rho on the true top ``top`` fraction, and recall.

    Parameters
    ----------
    y_true : array (n,) of raw, non-negative hit scores
    y_pred : array (n,) of predictions (any monotone scale)
    top : fraction of songs in the top group (paper: 0.1)

    Returns
    -------
    dict with keys ``ndcg``, ``kendall``, ``spearman``, ``recall``, ``kendall_all``,
    ``spearman_all``, ``n_top``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ParameterError(f"y_true {y.shape} and y_pred {p.shape} must be 1-D and equal in shape")
    if len(y) < 2:
        raise ParameterError(f"need at least 2 songs to rank, got {len(y)}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
        raise ParameterError("y_true and y_pred must be finite (NaN or inf found)")
    if not 0 < top <= 1:
        raise ParameterError(f"top={top}; expected a fraction in (0, 1]")
    if np.any(y < 0):
        raise ParameterError("y_true must be non-negative raw hit scores (nDCG gains)")
    k = n_top(len(y), top)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    pred_order = np.argsort(-p, kind="stable")[:k]
    true_order = np.argsort(-y, kind="stable")[:k]
    ideal = float(np.sum(y[true_order] * discounts))
    ndcg = float(np.sum(y[pred_order] * discounts)) / ideal if ideal > 0 else 0.0
    return {
        "ndcg": ndcg,
        "kendall": _corr(kendalltau, y[true_order], p[true_order]),
        "spearman": _corr(spearmanr, y[true_order], p[true_order]),
        "recall": len(set(pred_order) & set(true_order)) / k,
        "kendall_all": _corr(kendalltau, y, p),
        "spearman_all": _corr(spearmanr, y, p),
        "n_top": k,
    }
