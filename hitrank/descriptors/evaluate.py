"""Honest metrics for the descriptor models, always next to baselines.

Classification (hit / not hit): ROC-AUC, PR-AUC (average precision), balanced accuracy, F1
and precision on hits (threshold 0.5 on the probability), plus the ranking view an A&R user
cares about: ``precision@10%`` (share of hits among the 10% best-scored songs) and nDCG@10%
with 0/1 gains. Kendall / Spearman inside the true top 10% are undefined for 0/1 labels (all
tied) and are not reported for classifiers.

Baselines on the same rows, folds and inputs: majority (or mean), logistic (or ridge)
regression, scikit-learn's histogram gradient boosting and a random forest (fixed, seeded
hyper-parameters below).

Regression (log streams): MAE and MSE on the model's target scale, Spearman over all songs,
and the core's nDCG / Kendall / Spearman on the true top 10% (:func:`hitrank.metrics.ranking_metrics`).
"""

from __future__ import annotations

import contextlib

import numpy as np
from scipy.stats import spearmanr

from ..errors import HitrankError
from ..metrics import n_top, ranking_metrics

#: tree baselines: fixed, seeded hyper-parameters (not tuned on any test rows)
RF_TREES = 300  # random forest: trees
RF_MIN_LEAF = 3  # random forest: songs per leaf at least
RF_MAX_FEATURES = "sqrt"  # random forest: inputs tried per split
#: HistGradientBoosting baseline: scikit-learn's defaults (learning rate 0.1, 100 rounds,
#: 31 leaves, 20 songs per leaf), early stopping off so every fold gets the same 100 rounds
HGB_ROUNDS = 100

CLASSIFY_METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "f1", "precision",
                    "precision@10%", "ndcg@10%")
REGRESS_METRICS = ("mae", "mse", "spearman_all", "ndcg@10%", "kendall@10%", "spearman@10%")


@contextlib.contextmanager
def one_tree_thread():
    """Run scikit-learn's histogram gradient boosting on one OpenMP thread: the same numbers
    whatever the core count, and no spin-waiting threads on a busy CPU (a 200-row fit took
    4 s with two threads on a loaded 2-core machine, 0.04 s with one)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def sklearn():
    """Import scikit-learn, or explain how to install the descriptor extra."""
    try:
        import sklearn.linear_model  # noqa: F401
        import sklearn.metrics  # noqa: F401
    except ImportError:
        raise HitrankError("the descriptor branch needs scikit-learn and imbalanced-learn: "
                           "pip install 'hitrank[descriptors]'") from None
    import sklearn as sk

    return sk


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of ``score`` (n,) for 0/1 labels ``y`` (n,) from ranks (Mann-Whitney U, ties
    count half): the value of scikit-learn's ``roc_auc_score`` (up to float rounding) without
    its per-call input checks, ~20x faster on small sets. Used where it runs thousands of times
    (a validation score per boosting round or epoch, bootstrap resamples). NaN for one class.
    """
    from scipy.stats import rankdata

    pos = np.asarray(y) > 0.5
    n1 = int(pos.sum())
    n0 = len(pos) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _untie(*arrays):
    """A constant prediction (a baseline) ranks nothing: shuffle the rows (seeded) so its
    top-10% metrics are those of a random order, not of the table's row order."""
    if np.ptp(np.asarray(arrays[1], dtype=float)) > 0:
        return arrays
    order = np.random.default_rng(0).permutation(len(arrays[0]))
    return tuple(np.asarray(a)[order] for a in arrays)


def classification_metrics(y: np.ndarray, prob: np.ndarray, top: float = 0.1) -> dict:
    """Metrics of hit probabilities ``prob`` (n,) against 0/1 labels ``y`` (n,)."""
    from sklearn import metrics as skm

    sklearn()
    y, prob = _untie(np.asarray(y).astype(int), np.asarray(prob, dtype=float))
    pred = (prob >= 0.5).astype(int)
    both = len(np.unique(y)) == 2
    k = n_top(len(y), top)
    best = np.argsort(-prob, kind="stable")[:k]
    return {
        "roc_auc": float(skm.roc_auc_score(y, prob)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, prob)) if both else float("nan"),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "precision@10%": float(y[best].mean()),
        "ndcg@10%": ranking_metrics(y.astype(float), prob, top)["ndcg"] if y.any() else 0.0,
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray, raw: np.ndarray, top: float = 0.1) -> dict:
    """Metrics of predictions ``pred`` against ``y`` (both on the target scale, e.g. log1p
    streams); ``raw`` are the untransformed non-negative values used as nDCG gains."""
    y, pred, raw = _untie(np.asarray(y, dtype=float), np.asarray(pred, dtype=float), raw)
    r = ranking_metrics(np.clip(raw, 0, None), pred, top)
    rho = spearmanr(y, pred)[0] if np.ptp(pred) > 0 else 0.0
    return {
        "mae": float(np.mean(np.abs(pred - y))),
        "mse": float(np.mean((pred - y) ** 2)),
        "spearman_all": float(rho),
        "ndcg@10%": r["ndcg"], "kendall@10%": r["kendall"], "spearman@10%": r["spearman"],
    }


def baselines(task: str, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray,
              raw: tuple | None = None, seed: int = 0) -> dict:
    """Predictions of the baselines, all trained on the same rows.

    ``X`` are standardised, NaN-free 2-D inputs (the linear model's); ``raw`` =
    ``(Rtr, Rte)`` the same inputs unstandardised, NaN where missing, for the trees
    (default: ``X``). Histogram gradient boosting reads NaN natively; the random forest gets
    the training medians in its place. Returns ``{"majority"|"mean", "logistic"|"linear",
    "hist_gbdt", "random_forest": (n,)}`` (probabilities for classify, target-scale values
    for regress).
    """
    sklearn()
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    Rtr, Rte = raw if raw is not None else (Xtr, Xte)
    with np.errstate(all="ignore"):
        median = np.nan_to_num(np.nanmedian(Rtr, axis=0))
    Ftr, Fte = (np.where(np.isnan(R), median, R) for R in (Rtr, Rte))
    forest = {"n_estimators": RF_TREES, "min_samples_leaf": RF_MIN_LEAF,
              "max_features": RF_MAX_FEATURES, "random_state": seed, "n_jobs": 1}
    hgb = {"max_iter": HGB_ROUNDS, "early_stopping": False, "random_state": seed}
    if task == "classify":
        yi = ytr.astype(int)
        lr = LogisticRegression(max_iter=2000).fit(Xtr, yi)
        with one_tree_thread():
            gb = HistGradientBoostingClassifier(**hgb).fit(Rtr, yi).predict_proba(Rte)[:, 1]
        return {"majority": np.full(len(Xte), float(np.mean(ytr))),
                "logistic": lr.predict_proba(Xte)[:, 1], "hist_gbdt": gb,
                "random_forest": RandomForestClassifier(**forest).fit(Ftr, yi).predict_proba(Fte)[:, 1]}
    ridge = Ridge(alpha=1.0).fit(Xtr, ytr)
    with one_tree_thread():
        gb = HistGradientBoostingRegressor(**hgb).fit(Rtr, ytr).predict(Rte)
    return {"mean": np.full(len(Xte), float(np.mean(ytr))), "linear": ridge.predict(Xte),
            "hist_gbdt": gb, "random_forest": RandomForestRegressor(**forest).fit(Ftr, ytr).predict(Fte)}
