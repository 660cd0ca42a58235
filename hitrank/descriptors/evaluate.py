"""Honest metrics for the descriptor models, always next to baselines.

Classification (hit / not hit): ROC-AUC, PR-AUC (average precision), balanced accuracy, F1
and precision on hits (threshold 0.5 on the probability), plus the ranking view an A&R user
cares about: ``precision@10%`` (share of hits among the 10% best-scored songs) and nDCG@10%
with 0/1 gains. Kendall / Spearman inside the true top 10% are undefined for 0/1 labels (all
tied) and are not reported for classifiers.

Regression (log streams): MAE and MSE on the model's target scale, Spearman over all songs,
and the core's nDCG / Kendall / Spearman on the true top 10% (:func:`hitrank.metrics.ranking_metrics`).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ..errors import HitrankError
from ..metrics import n_top, ranking_metrics

CLASSIFY_METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "f1", "precision",
                    "precision@10%", "ndcg@10%")
REGRESS_METRICS = ("mae", "mse", "spearman_all", "ndcg@10%", "kendall@10%", "spearman@10%")


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


def baselines(task: str, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray) -> dict:
    """Predictions of the majority / mean baseline and of a (logistic) linear model.

    ``X`` are standardised, NaN-free 2-D inputs; returns ``{"majority"|"mean": (n,),
    "logistic"|"linear": (n,)}`` (probabilities for classify, target-scale values for regress).
    """
    sklearn()
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "classify":
        lr = LogisticRegression(max_iter=2000).fit(Xtr, ytr.astype(int))
        return {"majority": np.full(len(Xte), float(np.mean(ytr))),
                "logistic": lr.predict_proba(Xte)[:, 1]}
    ridge = Ridge(alpha=1.0).fit(Xtr, ytr)
    return {"mean": np.full(len(Xte), float(np.mean(ytr))), "linear": ridge.predict(Xte)}
