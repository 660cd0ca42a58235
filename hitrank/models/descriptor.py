"""Descriptor-branch models: an MLP over song descriptors, an LSTM over an artist's songs,
gradient-boosted trees stored as tensors, and a weighted blend of them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .layers import mlp
from .registry import build, register


@register("descriptor_mlp", role="descriptor")
class DescriptorMLP(nn.Module):
    """Fully connected score network: ``n_in -> hidden... -> 1`` with ReLU and dropout.

    Topify's MLP is ``hidden=(128, 128, 128), dropout=0.5``; the log-streams MLP
    ``hidden=(64, 32), dropout=0.2``; the balanced MLP ``hidden=(30, 10)``. A Siamese MLP is
    this network applied to both songs of a pair (shared weights).

    Input ``(B, n_in)``, output ``(B,)`` (a logit for classifiers, a score otherwise).
    """

    def __init__(self, n_in: int, hidden: tuple = (128, 128, 128), dropout: float = 0.5):
        super().__init__()
        self.net = mlp(n_in, hidden, nn.ReLU, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@register("history_lstm", role="descriptor")
class HistoryLSTM(nn.Module):
    """LSTM over an artist's earlier songs followed by the song itself (Niggli's Model V).

    Input ``(B, L, n_in)``: ``L - 1`` earlier songs, oldest first, zero-padded at the front,
    then the song to score; output ``(B,)`` from the last step's hidden state.
    """

    def __init__(self, n_in: int, hidden: int = 10):
        super().__init__()
        self.lstm = nn.LSTM(n_in, int(hidden), batch_first=True)
        self.head = nn.Linear(int(hidden), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


#: ``nodes`` fields of a fitted scikit-learn HistGradientBoosting tree that prediction needs
_HGB_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right",
               "is_leaf", "is_categorical", "depth")


def hgb_tree_arrays(estimator, n_trees: int | None = None) -> dict:
    """The first ``n_trees`` trees of a fitted scikit-learn ``HistGradientBoosting*`` model
    as plain arrays (no pickle): what :class:`TreeEnsemble` stores.

    scikit-learn keeps each tree as a structured array of nodes (``_predictors``); a
    single-output model (binary classifier or regressor) has one tree per iteration.

    Returns
    -------
    dict with ``feature`` (T, N) int64, ``threshold`` (T, N) float64, ``left`` / ``right``
    (T, N) int64 (a leaf points at itself), ``missing_left`` (T, N) bool, ``value`` (T, N)
    float64 (shrinkage included), ``baseline`` float, ``depth`` int (longest root-to-leaf path);
    N is the largest tree's node count (padding: leaves of value 0).
    """
    preds = getattr(estimator, "_predictors", None)
    base = getattr(estimator, "_baseline_prediction", None)
    if preds is None or base is None or any(len(p) != 1 for p in preds):
        raise TypeError("expected a fitted single-output HistGradientBoosting model "
                        "(binary classifier or regressor) of scikit-learn")
    preds = preds[: len(preds) if n_trees is None else int(n_trees)]
    nodes = [p[0].nodes for p in preds]
    if nodes and any(name not in nodes[0].dtype.names for name in _HGB_FIELDS):
        raise TypeError(f"this scikit-learn's tree nodes lack {_HGB_FIELDS}: unsupported version")
    if any(n["is_categorical"].any() for n in nodes):
        raise TypeError("categorical splits are not supported (descriptors are numeric)")
    t, width = len(nodes), max([len(n) for n in nodes] + [1])
    out = {"feature": np.zeros((t, width), np.int64), "threshold": np.zeros((t, width)),
           "left": np.tile(np.arange(width, dtype=np.int64), (t, 1)),
           "right": np.tile(np.arange(width, dtype=np.int64), (t, 1)),
           "missing_left": np.zeros((t, width), bool), "value": np.zeros((t, width))}
    depth = 0
    for i, n in enumerate(nodes):
        k = len(n)
        split = ~n["is_leaf"].astype(bool)
        out["feature"][i, :k] = n["feature_idx"]
        out["threshold"][i, :k] = n["num_threshold"]
        out["left"][i, :k] = np.where(split, n["left"], np.arange(k))
        out["right"][i, :k] = np.where(split, n["right"], np.arange(k))
        out["missing_left"][i, :k] = n["missing_go_to_left"].astype(bool)
        out["value"][i, :k] = np.where(split, 0.0, n["value"])
        depth = max(depth, int(n["depth"].max()))
    out["baseline"] = float(np.ravel(base)[0])
    out["depth"] = depth
    return out


@register("gbdt_trees", role="descriptor")
class TreeEnsemble(nn.Module):
    """Gradient-boosted decision trees as tensors: ``baseline + sum_t value_t(leaf of x)``.

    Trained with scikit-learn's ``HistGradientBoosting*`` and stored as node arrays (see
    :func:`hgb_tree_arrays`), so a checkpoint holds plain tensors (``weights_only=True``),
    never a pickled estimator. A split sends ``x[feature] <= threshold`` left and a missing
    value (NaN) the way scikit-learn learnt; leaves point at themselves, so ``depth`` steps
    reach every leaf. Prediction equals scikit-learn's ``decision_function`` /
    ``predict`` (same float64 arithmetic, trees added in order).

    Input ``(B, n_in)`` (float32 or float64), output ``(B,)`` float64: a logit for
    classifiers, the target (on the training scale) for regressors.
    """

    def __init__(self, n_in: int, n_trees: int, n_nodes: int, depth: int):
        super().__init__()
        self.n_in, self.depth = int(n_in), int(depth)
        t, w = int(n_trees), max(1, int(n_nodes))
        self.register_buffer("feature", torch.zeros((t, w), dtype=torch.long))
        self.register_buffer("threshold", torch.zeros((t, w), dtype=torch.float64))
        self.register_buffer("left", torch.zeros((t, w), dtype=torch.long))
        self.register_buffer("right", torch.zeros((t, w), dtype=torch.long))
        self.register_buffer("missing_left", torch.zeros((t, w), dtype=torch.bool))
        self.register_buffer("value", torch.zeros((t, w), dtype=torch.float64))
        self.register_buffer("baseline", torch.zeros((), dtype=torch.float64))

    @classmethod
    def from_arrays(cls, arrays: dict, n_in: int) -> tuple[dict, TreeEnsemble]:
        """``(kwargs, model)`` from :func:`hgb_tree_arrays` output."""
        t, w = arrays["feature"].shape
        kwargs = {"n_in": int(n_in), "n_trees": int(t), "n_nodes": int(w), "depth": int(arrays["depth"])}
        model = cls(**kwargs)
        with torch.no_grad():
            for name in ("feature", "threshold", "left", "right", "missing_left", "value"):
                getattr(model, name).copy_(torch.from_numpy(np.asarray(arrays[name])))
            model.baseline.fill_(float(arrays["baseline"]))
        return kwargs, model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one tree at a time over all rows (numpy): 2-3x faster than scikit-learn's own
        # predictor on one core, and the same float64 comparisons and sums
        X = x.detach().cpu().to(torch.float64).numpy()
        feature, threshold, left, right, missing_left, value = (
            getattr(self, k).cpu().numpy() for k in ("feature", "threshold", "left", "right",
                                                     "missing_left", "value"))
        rows = np.arange(len(X))
        out = np.zeros(len(X)) + float(self.baseline)
        for t in range(feature.shape[0]):
            node = np.zeros(len(X), np.int64)
            for _ in range(self.depth):
                v = X[rows, feature[t, node]]
                go_left = np.where(np.isnan(v), missing_left[t, node], v <= threshold[t, node])
                step = np.where(go_left, left[t, node], right[t, node])
                if np.array_equal(step, node):  # every row is at a leaf
                    break
                node = step
            out = out + value[t, node]  # trees added in order, as scikit-learn does
        return torch.from_numpy(out).to(x.device)


@register("descriptor_blend", role="descriptor")
class DescriptorBlend(nn.Module):
    """A weighted sum of descriptor models' outputs (logits or standardised targets).

    ``members`` are ``{"name", "kwargs"}`` of registered descriptor models (e.g. several
    seeds of :class:`DescriptorMLP` and one :class:`TreeEnsemble`), ``weights`` their
    weights (chosen on the validation part). Input ``(B, n_in)``, output ``(B,)`` float64.
    """

    def __init__(self, members: list, weights: list):
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError(f"{len(members)} members but {len(weights)} weights")
        self.members = nn.ModuleList(build(m["name"], **m["kwargs"]) for m in members)
        self.weights = [float(w) for w in weights]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(w * m(x).to(torch.float64) for w, m in zip(self.weights, self.members, strict=True))
