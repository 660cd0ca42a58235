"""Small-data learners on song embeddings, as a registry of learner specs.

Each learner fits a standardised target ``z`` (n,) from embeddings ``X`` (n, d), optionally
with sample weights ``weight`` (n,) (``train.weight``: e.g. each song's number of raters; a
song of weight 0 is left out of the fit, equal weights fit exactly as no weights), and returns
its state as a dict of numpy arrays (saved as tensors in a checkpoint: nothing is pickled);
``predict(state, X)`` scores new songs from that state alone (numpy).

``ridge``
    Ridge regression on standardised embeddings; the penalty is chosen from
    ``model.ridge.alphas`` by exact leave-one-out error on the training songs (one SVD).
    Weighted: weighted least squares (weighted standardisation and intercept), the penalty
    by the weighted leave-one-out error.
``gbdt``
    Gradient-boosted regression trees (scikit-learn's ``GradientBoostingRegressor``: shallow
    trees, row subsampling, a share of the dimensions per split); the trees are kept as arrays.
    Weighted: scikit-learn's ``sample_weight``.
``mlp_rank``
    The Siamese idea on embeddings: a one-hidden-layer network trained with the paper's
    multi-objective loss ``(1 - w) MSE + w * pairwise hinge`` on A/B pairs (a song above the
    training mean against one at or below it, drawn anew every epoch), several seeds averaged.
    Weighted: each song's squared error by its weight, each pair's hinge by the product of
    its two songs' weights (weighted means; the pairs are drawn as without weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..losses import multi_loss
from ..runtime import single_thread

STD_FLOOR = 1e-6  # embedding dimensions with a smaller spread are not scaled up


@dataclass(frozen=True)
class Learner:
    """A registered learner: ``fit(X, z, cfg, seed, weight=None) -> state``,
    ``predict(state, X) -> (n,)``.

    ``cfg`` is the whole ``model`` section (:class:`hitrank.transfer.config.TransferModel`);
    each learner reads its own subsection.
    """

    name: str
    fit: Callable
    predict: Callable
    about: str


LEARNERS: dict[str, Learner] = {}


def register(learner: Learner) -> Learner:
    LEARNERS[learner.name] = learner
    return learner


def get(name: str) -> Learner:
    if name not in LEARNERS:
        raise ParameterError(f"learner {name!r} is not registered; known: {list(LEARNERS)}")
    return LEARNERS[name]


def _check(X: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise ParameterError(f"embeddings must be a finite (n, d) array, got shape {X.shape}")
    if z is not None and (np.shape(z) != (len(X),) or not np.isfinite(z).all()):
        raise ParameterError(f"targets must be finite with shape ({len(X)},), got {np.shape(z)}")
    return X


def sample_weights(weight, n: int) -> np.ndarray | None:
    """Checked sample weights ``(n,)``, rescaled to mean 1 over the songs of positive weight
    (so the ridge penalties keep their meaning and a song of weight 0 is exactly a song left
    out), or None when there are none or all are equal (the unweighted fit, exactly).

    Raises ParameterError for weights that are not finite, negative, or all zero.
    """
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
        raise ParameterError(f"sample weights must be finite and >= 0 with shape ({n},), got shape "
                             f"{w.shape}, min {np.nanmin(w) if w.size else float('nan')}")
    if not (w > 0).any():
        raise ParameterError(f"all {n} sample weights are 0: nothing to fit")
    if (w == w[0]).all():
        return None
    w = w / w.max()  # first: a sum of weights near 1e308 would overflow to inf
    return w * ((w > 0).sum() / w.sum())


def _scaler(X: np.ndarray, w: np.ndarray | None = None) -> dict:
    if w is None:
        return {"mean": X.mean(axis=0), "std": np.maximum(X.std(axis=0), STD_FLOOR)}
    mean = np.average(X, axis=0, weights=w)
    return {"mean": mean, "std": np.maximum(np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w)), STD_FLOOR)}


def _scale(state: dict, X: np.ndarray) -> np.ndarray:
    return (X - state["mean"]) / state["std"]


# ----------------------------------------------------------------------------- ridge
def fit_ridge(X, z, cfg, seed: int = 0, weight=None) -> dict:
    """Ridge on standardised ``X`` (n, d); the penalty minimises the leave-one-out error.

    With ``weight`` (n,): weighted least squares ``sum_i w_i (z_i - b - x_i . coef)^2 +
    alpha |coef|^2`` on a weighted standardisation, the penalty by the weighted mean of the
    squared leave-one-out residuals (the exact formula for the weighted hat matrix).
    """
    X = _check(X, z)
    z = np.asarray(z, dtype=np.float64)
    w = sample_weights(weight, len(X))
    sc = _scaler(X, w)
    Xs = _scale(sc, X)
    z_mean = z.mean() if w is None else np.average(z, weights=w)
    zc = z - z_mean
    root = np.ones(len(X)) if w is None else np.sqrt(w)  # rows scaled by sqrt(w): plain least squares
    U, S, Vt = np.linalg.svd(root[:, None] * Xs, full_matrices=False)
    Uz = U.T @ (root * zc)
    lever = 1.0 / len(X) if w is None else w / w.sum()  # the intercept's leverage
    best = None
    for alpha in cfg.ridge.alphas:
        shrink = S ** 2 / (S ** 2 + alpha)
        fitted = U @ (shrink * Uz)  # sqrt(w) * fitted values
        hat = (U ** 2 * shrink).sum(axis=1) + lever
        loo_res = (root * zc - fitted) / np.maximum(1 - hat, 1e-9)  # sqrt(w) * leave-one-out residual
        loo = np.mean(loo_res ** 2) if w is None else np.sum(loo_res ** 2) / w.sum()
        if best is None or loo < best[0]:
            best = (loo, alpha)
    alpha = best[1]
    coef = Vt.T @ (S / (S ** 2 + alpha) * Uz)
    return {**sc, "coef": coef, "intercept": np.array(z_mean), "alpha": np.array(alpha)}


def predict_ridge(state: dict, X) -> np.ndarray:
    return _scale(state, _check(X)) @ state["coef"] + float(state["intercept"])


# ----------------------------------------------------------------------------- gbdt
def fit_gbdt(X, z, cfg, seed: int = 0, weight=None) -> dict:
    """Boosted shallow trees (``weight`` (n,): scikit-learn's ``sample_weight``); the fitted
    trees are exported as flat arrays."""
    from sklearn.ensemble import GradientBoostingRegressor  # scikit-learn: only when fitting

    X = _check(X, z)
    g = cfg.gbdt
    model = GradientBoostingRegressor(
        n_estimators=g.n_estimators, learning_rate=g.learning_rate, max_depth=g.max_depth,
        min_samples_leaf=g.min_samples_leaf, subsample=g.subsample, max_features=g.max_features,
        random_state=seed)
    w = sample_weights(weight, len(X))
    keep = np.ones(len(X), dtype=bool) if w is None else w > 0  # weight 0: left out (a subsample of only
    # such songs would leave scikit-learn's out-of-bag loss nothing to weigh)
    if keep.sum() < 2:  # one song: a subsample of it leaves no song out of the bag to weigh
        model.set_params(subsample=1.0)
    model.fit(np.asarray(X)[keep], np.asarray(z, dtype=np.float64)[keep], sample_weight=None if w is None else w[keep])
    trees = [e[0].tree_ for e in model.estimators_]
    offsets = np.cumsum([0] + [t.node_count for t in trees])
    cat = np.concatenate

    def shifted(children, off):
        return np.where(children >= 0, children + off, -1)

    return {
        "left": cat([shifted(t.children_left, o) for t, o in zip(trees, offsets, strict=False)]),
        "right": cat([shifted(t.children_right, o) for t, o in zip(trees, offsets, strict=False)]),
        "feature": cat([t.feature for t in trees]), "threshold": cat([t.threshold for t in trees]),
        "value": cat([t.value[:, 0, 0] for t in trees]), "roots": offsets[:-1],
        "learning_rate": np.array(g.learning_rate),
        "base": np.array(float(np.ravel(model.init_.constant_)[0])),
    }


def predict_gbdt(state: dict, X) -> np.ndarray:
    X = _check(X)
    left, right = state["left"].astype(np.int64), state["right"].astype(np.int64)
    feature, threshold, value = state["feature"].astype(np.int64), state["threshold"], state["value"]
    rows = np.arange(len(X))
    total = np.zeros(len(X))
    for root in state["roots"]:
        node = np.full(len(X), int(root))
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = X[rows, np.maximum(feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        total += value[node]
    return float(state["base"]) + float(state["learning_rate"]) * total


# ----------------------------------------------------------------------------- mlp_rank
def fit_mlp_rank(X, z, cfg, seed: int = 0, weight=None) -> dict:
    """One-hidden-layer networks trained on (1 - w) MSE + w hinge over A/B pairs, averaged
    (``weight`` (n,): weighted squared errors and pair hinges, see the module docstring)."""
    import torch  # lazily: ridge and trees need no torch

    X = _check(X, z)
    z = np.asarray(z, dtype=np.float64)
    w = sample_weights(weight, len(X))
    p = cfg.mlp_rank
    sc = _scaler(X, w)
    Xt = torch.from_numpy(_scale(sc, X)).float()
    zt = torch.from_numpy(z).float()
    wt = None if w is None else torch.from_numpy(w).float()
    z_mean = z.mean() if w is None else np.average(z, weights=w)
    keep = np.ones(len(z), dtype=bool) if w is None else w > 0  # weight 0: in no pair
    above = np.flatnonzero((z > z_mean) & keep)
    below = np.flatnonzero((z <= z_mean) & keep)
    if len(above) == 0:
        raise ParameterError("mlp_rank: every training song has the same score; nothing to rank")
    n_pairs = p.pairs_per_song * len(X)
    weights = {"w1": [], "b1": [], "w2": [], "b2": []}
    with single_thread():  # tiny matrices: one thread is fastest and gives the same numbers anywhere
        for s in range(p.seeds):
            _fit_member(Xt, zt, wt, above, below, n_pairs, p, seed, s, weights)
    return {**sc, **{k: np.array(v) for k, v in weights.items()}}


def _weighted_multi_loss(fi, fj, zi, zj, wi, wj, w: float, margin: float):
    """:func:`hitrank.losses.multi_loss` with song weights: weighted mean squared error over
    both songs of each pair, weighted mean hinge with pair weight ``wi * wj``; (P,) -> scalar."""
    import torch

    sw = torch.cat([wi, wj])
    rate = (sw * (torch.cat([fi, fj]) - torch.cat([zi, zj])) ** 2).sum() / sw.sum()
    if w == 0:
        return rate
    delta = torch.where(zi >= zj, 1.0, -1.0).to(fi.dtype)
    pw = wi * wj
    hinge = (pw * torch.clamp(margin - delta * (fi - fj), min=0)).sum() / pw.sum()
    return (1 - w) * rate + w * hinge


def _fit_member(Xt, zt, wt, above, below, n_pairs: int, p, seed: int, s: int, weights: dict) -> None:
    """One network of the mlp_rank ensemble; its weights are appended to ``weights``."""
    import torch

    torch.manual_seed(seed * 1000 + s)
    rng = np.random.default_rng([seed, s])
    net = torch.nn.Sequential(torch.nn.Linear(Xt.shape[1], p.hidden), torch.nn.ReLU(),
                              torch.nn.Dropout(p.dropout), torch.nn.Linear(p.hidden, 1))
    opt = torch.optim.Adam(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    for _ in range(p.epochs):
        # A/B pairs: a song above the training mean against one at or below it, drawn
        # uniformly (with replacement: cheap, and as the paper's sampler draws them)
        i = torch.from_numpy(rng.choice(above, n_pairs))
        j = torch.from_numpy(rng.choice(below, n_pairs))
        out = net(Xt).squeeze(-1)
        if wt is None:
            loss = multi_loss(out[i], out[j], zt[i], zt[j], p.w, p.margin)
        else:
            loss = _weighted_multi_loss(out[i], out[j], zt[i], zt[j], wt[i], wt[j], p.w, p.margin)
        opt.zero_grad()
        loss.backward()
        opt.step()
    lin1, lin2 = net[0], net[3]
    weights["w1"].append(lin1.weight.detach().numpy().astype(np.float64))
    weights["b1"].append(lin1.bias.detach().numpy().astype(np.float64))
    weights["w2"].append(lin2.weight.detach().numpy()[0].astype(np.float64))
    weights["b2"].append(float(lin2.bias.detach()))


def predict_mlp_rank(state: dict, X) -> np.ndarray:
    Xs = _scale(state, _check(X))
    hidden = np.maximum(np.einsum("nd,shd->snh", Xs, state["w1"]) + state["b1"][:, None, :], 0.0)
    return (np.einsum("snh,sh->sn", hidden, state["w2"]) + state["b2"][:, None]).mean(axis=0)


register(Learner("ridge", fit_ridge, predict_ridge, "ridge regression, penalty by leave-one-out"))
register(Learner("gbdt", fit_gbdt, predict_gbdt, "gradient-boosted shallow trees"))
register(Learner("mlp_rank", fit_mlp_rank, predict_mlp_rank,
                 "MLP with the paper's multi-objective loss on A/B pairs (the Siamese idea)"))
