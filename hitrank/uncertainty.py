"""How sure are the metrics? Bootstrap intervals, fold spread, chance and ceiling.

A CV run scores every song exactly once, by the fold model that never saw it. Two summaries
of the same predictions answer different questions:

per fold (the paper's protocol)
    The metric of each test fold, then the mean over folds, with the sample standard
    deviation over folds (``ddof=1``) and the standard error ``std / sqrt(k)``. With 10
    folds of 1500 songs the top 10% of a fold is 150 songs; on small corpora it is a handful
    (:func:`small_top_warning`).
pooled
    The metric of all out-of-fold predictions together (``N = top x n`` songs in the true top
    fraction of the whole corpus). Pooling assumes the fold models' predictions share one
    scale (they are all mapped back to raw hit scores); it uses ten times more top songs
    than a fold does, so its rank metrics are far less noisy. The 95% interval comes from
    resampling songs with replacement (within folds, when folds are given, so each resample
    keeps the fold sizes) and recomputing the metric on the resampled pool (percentile
    interval). Intervals are given for nDCG, Kendall, Spearman and recall @top; the
    whole-set correlations are reported without one.

Reference points for a set of songs: :func:`random_baseline` (the metrics of random scores:
what chance gives) and :func:`oracle` (the metrics of the true scores themselves: the
ceiling, 1 for every metric unless true scores tie).

Resampling is seeded (:func:`stratified_resamples`): the same inputs and seed give the same
numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .errors import ParameterError
from .metrics import BATCH_ELEMENTS, METRICS, MIN_TOP, ranking_metrics, top_metrics_batch

N_BOOT = 2000  # bootstrap resamples
N_RANDOM = 200  # random rankings of the chance baseline
CI_LEVEL = 0.95
#: Fewer songs than this in a fold's top fraction: its Kendall/Spearman mean little.
MIN_RELIABLE_TOP = 10
#: how :func:`small_top_warning` names each set of songs, and what gives it a larger top fraction
SMALL_TOP_SETS = {
    "fold": ("a fold's top fraction", "use more songs, fewer folds, a larger top fraction, or the pooled metrics"),
    "pooled": ("the pooled out-of-fold top fraction", "use more songs or a larger top fraction"),
}
RESAMPLE_STREAM = 7919  # mixed into the seed: the resampler's own random stream
RANDOM_STREAM = 104729  # the chance baseline's own random stream


def _quantiles(values: np.ndarray, level: float = CI_LEVEL) -> list[float]:
    lo, hi = np.nanquantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def _as_folds(folds, n: int) -> np.ndarray:
    if folds is None:
        return np.zeros(n, dtype=np.int64)
    f = np.asarray(folds)
    if f.shape != (n,):
        raise ParameterError(f"folds {f.shape} must give one fold per song ({n},)")
    return np.unique(f, return_inverse=True)[1].reshape(-1)


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise ParameterError(f"y_true {y.shape} and y_pred {p.shape} must be 1-D and equal in shape")
    return y, p


def stratified_resamples(strata, n_boot: int, seed: int,
                         chunk_elements: int = BATCH_ELEMENTS) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n`` items, stratified, in chunks of rows (bounded memory).

    Parameters
    ----------
    strata : (n,) labels; each resample draws, within every stratum, as many items as the
        stratum holds, with replacement
    n_boot : resamples in all
    seed : the same seed (and strata, n_boot, chunk_elements) gives the same resamples
    chunk_elements : rows x n per chunk

    Yields
    ------
    (rows, n) int64 item indices, ``n_boot`` rows in all. Columns are grouped by stratum in
    the order of ``np.unique(strata)``, the same in every row, so ``strata[idx[0]]`` labels
    every column of every row.
    """
    strata = np.asarray(strata)
    if n_boot < 1:
        raise ParameterError(f"n_boot={n_boot}; expected at least 1 resample")
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    rng = np.random.default_rng([seed, RESAMPLE_STREAM])
    rows = max(1, chunk_elements // max(1, len(strata)))
    for start in range(0, n_boot, rows):
        r = min(rows, n_boot - start)
        yield np.concatenate([m[rng.integers(0, len(m), (r, len(m)))] for m in members], axis=1)


def fold_summary(values) -> dict:
    """Mean, sample standard deviation (``ddof=1``) and standard error of per-fold values.

    Parameters
    ----------
    values : (k,) one metric value per fold

    Returns
    -------
    dict with ``mean``, ``std`` (NaN for one fold), ``se`` (``std / sqrt(k)``) and ``n`` (k).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ParameterError(f"need a 1-D array of per-fold values, got shape {v.shape}")
    std = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "std": std, "se": std / float(np.sqrt(len(v))), "n": len(v)}


def small_top_warning(n_top_songs: int, of: str = "fold") -> str | None:
    """A warning when a top fraction holds too few songs for its rank correlations to mean much.

    Parameters
    ----------
    n_top_songs : songs in the true top fraction
    of : which set's top fraction, a key of :data:`SMALL_TOP_SETS`: ``fold`` (the smallest
        fold's) or ``pooled`` (the pooled out-of-fold songs')

    Returns
    -------
    The warning text when ``n_top_songs < MIN_RELIABLE_TOP`` (10), else None.
    """
    if of not in SMALL_TOP_SETS:
        raise ParameterError(f"of={of!r}; expected one of {list(SMALL_TOP_SETS)}")
    if n_top_songs >= MIN_RELIABLE_TOP:
        return None
    where, remedy = SMALL_TOP_SETS[of]
    return (f"only {n_top_songs} songs in {where} (fewer than {MIN_RELIABLE_TOP}): "
            "Kendall and Spearman @top over so few songs take only a few values (over 2 songs "
            f"they are +-1) and mean little; {remedy}")


def _fold_means(y: np.ndarray, preds: np.ndarray, folds: np.ndarray, top: float) -> dict:
    """Metrics of each row of ``preds`` (B, n): per fold, then the mean over folds -> (B,)."""
    per_fold = {m: [] for m in METRICS}
    for f in np.unique(folds):
        sel = np.flatnonzero(folds == f)
        if len(sel) < MIN_TOP:
            continue
        res = top_metrics_batch(np.broadcast_to(y[sel], (len(preds), len(sel))), preds[:, sel], top)
        for m in METRICS:
            per_fold[m].append(res[m])
    if not per_fold[METRICS[0]]:
        raise ParameterError(f"no fold has at least {MIN_TOP} songs to rank")
    return {m: np.mean(v, axis=0) for m, v in per_fold.items()}


def pooled_metrics(y_true, y_pred, folds=None, top: float = 0.1, n_boot: int = N_BOOT,
                   seed: int = 0) -> dict:
    """Pooled out-of-fold metrics with bootstrap intervals, and the per-fold spread.

    Parameters
    ----------
    y_true : (n,) raw hit scores of every song of the run
    y_pred : (n,) each song's prediction by the fold model that did not train on it
    folds : (n,) the test fold of each song, or None (one set: no per-fold summary)
    top : fraction of songs in the top group (paper: 0.1)
    n_boot : bootstrap resamples
    seed : the bootstrap seed (same inputs and seed -> same intervals)

    Returns
    -------
    dict with
    ``pooled``: :func:`~hitrank.metrics.ranking_metrics` of the whole pool (all its keys);
    ``ci``: metric -> ``[lo, hi]``, the 95% bootstrap interval of the pooled ``ndcg``,
    ``kendall``, ``spearman`` and ``recall``;
    ``per_fold``: metric -> :func:`fold_summary` (mean, std with ddof=1, se, n) over folds,
    or None without ``folds``;
    ``fold_n_top``: the smallest fold's top-fraction size (None without folds);
    ``warnings``: list of texts (:func:`small_top_warning`);
    ``n_songs``, ``n_top`` (the pooled N), ``top``, ``n_boot``, ``seed``, ``level`` (0.95).
    """
    y, p = _check_pair(y_true, y_pred)
    pooled = ranking_metrics(y, p, top)  # checks the values
    fold_idx = _as_folds(folds, len(y))
    boot = {m: np.empty(n_boot) for m in METRICS}
    done = 0
    for idx in stratified_resamples(fold_idx, n_boot, seed):
        res = top_metrics_batch(y[idx], p[idx], top)
        for m in METRICS:
            boot[m][done:done + len(idx)] = res[m]
        done += len(idx)
    per_fold, fold_n_top, warnings = None, None, []
    if folds is not None:
        rows = [ranking_metrics(y[fold_idx == f], p[fold_idx == f], top)
                for f in np.unique(fold_idx) if np.sum(fold_idx == f) >= MIN_TOP]
        if rows:
            per_fold = {m: fold_summary([r[m] for r in rows])
                        for m in (*METRICS, "kendall_all", "spearman_all")}
            fold_n_top = min(r["n_top"] for r in rows)
            warning = small_top_warning(fold_n_top)
            if warning:
                warnings.append(warning)
    pooled_warning = small_top_warning(pooled["n_top"], "pooled")
    if pooled_warning:
        warnings.append(pooled_warning)
    return {"pooled": pooled, "ci": {m: _quantiles(boot[m]) for m in METRICS},
            "per_fold": per_fold, "fold_n_top": fold_n_top, "warnings": warnings,
            "n_songs": len(y), "n_top": pooled["n_top"], "top": top, "n_boot": n_boot,
            "seed": seed, "level": CI_LEVEL}


def random_baseline(y_true, folds=None, top: float = 0.1, n_draws: int = N_RANDOM,
                    seed: int = 0) -> dict:
    """What chance scores: the metrics of ``n_draws`` random rankings of the songs.

    Each draw gives every song an independent uniform random score (no ties) and is scored
    like a model: per fold and averaged over folds when ``folds`` are given, else on the
    whole set.

    Parameters
    ----------
    y_true : (n,) raw hit scores
    folds : (n,) test fold of each song, or None
    top : fraction of songs in the top group
    n_draws : random rankings
    seed : the same seed gives the same numbers

    Returns
    -------
    dict metric (``ndcg``, ``kendall``, ``spearman``, ``recall``) -> {``mean``, ``std``
    (ddof=1 over the draws), ``lo``, ``hi`` (the central 95% of the draws)}.
    """
    y = np.asarray(y_true, dtype=np.float64)
    ranking_metrics(y, np.zeros_like(y), top)  # checks y and top
    if n_draws < 2:
        raise ParameterError(f"n_draws={n_draws}; expected at least 2 random rankings")
    fold_idx = _as_folds(folds, len(y))
    rng = np.random.default_rng([seed, RANDOM_STREAM])
    rows = max(1, BATCH_ELEMENTS // len(y))
    parts = []
    for start in range(0, n_draws, rows):
        scores = rng.random((min(rows, n_draws - start), len(y)))
        parts.append(_fold_means(y, scores, fold_idx, top))
    out = {}
    for m in METRICS:
        v = np.concatenate([part[m] for part in parts])
        lo, hi = _quantiles(v)
        out[m] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "lo": lo, "hi": hi}
    return out


def oracle(y_true, folds=None, top: float = 0.1) -> dict:
    """The ceiling: the metrics of the true scores used as predictions.

    Parameters
    ----------
    y_true : (n,) raw hit scores
    folds : (n,) test fold of each song (metrics per fold, averaged), or None (whole set)
    top : fraction of songs in the top group

    Returns
    -------
    dict metric (``ndcg``, ``kendall``, ``spearman``, ``recall``) -> value (1.0 unless true
    scores tie, also in float32: predictions are ranked in float32 precision).
    """
    y = np.asarray(y_true, dtype=np.float64)
    ranking_metrics(y, y, top)  # checks y and top
    res = _fold_means(y, y[None, :], _as_folds(folds, len(y)), top)
    return {m: float(res[m][0]) for m in METRICS}


__all__ = ["pooled_metrics", "fold_summary", "small_top_warning", "random_baseline", "oracle",
           "stratified_resamples"]
