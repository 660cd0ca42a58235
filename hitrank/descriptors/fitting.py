"""Fitting descriptor learners on arrays: networks, trees and blends (see :mod:`.learners`).

Every function here takes model-ready arrays (:func:`hitrank.descriptors.prepare.network_inputs`)
of a training part and a validation part, and returns ``parts``: ``name`` and ``kwargs`` of the
fitted torch module (:mod:`hitrank.models.descriptor`), the ``model``, ``calib`` ``(a, b)``
(score -> logit or target) and what validation chose. SMOTE, down-sampling and class weights
touch the training part only; early stopping, the boosting rounds, the blend weight and
calibration use the validation part. What is trained is decided by the learner's spec
(:func:`hitrank.descriptors.learners.learner` of ``model.name``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from ..errors import HitrankError
from ..loop import EpochLoop, run_loop
from ..losses import ranking_loss
from ..models import build
from ..models.descriptor import TreeEnsemble, hgb_tree_arrays
from .config import DescriptorConfig
from .evaluate import one_tree_thread, roc_auc
from .learners import learner

#: seeds of the networks of an ensemble: member i trains with ``seed + SEED_STRIDE * i``
SEED_STRIDE = 7919
#: blend: weights of the trees tried on the validation part (the networks get the rest)
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
#: the kinds of member a fitted model is made of (``parts["recipe"]``)
NET, TREES = "net", "gbdt"


def network_scores(model, Z: np.ndarray, batch: int = 4096) -> np.ndarray:
    """A descriptor network's raw scores of inputs ``Z`` (n, F) (or (n, L, F)): (n,) float64."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(Z[i:i + batch]))).numpy()
                               for i in range(0, len(Z), batch)]).astype(np.float64)


def ranks_only(cfg: DescriptorConfig) -> bool:
    """Whether the scores only rank (a pairwise learner at ``train.w = 1``): validated by a
    ranking score and calibrated on the validation part."""
    return learner(cfg.model.name).pairwise and cfg.train.w == 1


def _build_network(cfg: DescriptorConfig, n_in: int) -> tuple[str, dict, torch.nn.Module]:
    spec = learner(cfg.model.name)
    kwargs = spec.network_kwargs(n_in, cfg.model.hidden, cfg.model.dropout)
    return spec.network, kwargs, build(spec.network, **kwargs)


def _balance(cfg: DescriptorConfig, Z: np.ndarray, y: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """SMOTE or down-sampling of the training part (classify only)."""
    method = cfg.balance.method
    if cfg.data.task != "classify" or method == "none":
        return Z, y
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if method == "downsample":
        n_neg = min(len(neg), int(cfg.balance.max_ratio * len(pos)))
        keep = np.sort(np.concatenate([pos, rng.choice(neg, n_neg, replace=False)]))
        return Z[keep], y[keep]
    try:
        from imblearn.over_sampling import SMOTE
    except ImportError:
        raise HitrankError("balance.method='smote' needs imbalanced-learn: "
                           "pip install 'hitrank[descriptors]'") from None
    if min(len(pos), len(neg)) < 6:
        raise HitrankError(f"SMOTE needs at least 6 songs of each class in a training fold "
                           f"(have {len(pos)} hits, {len(neg)} non-hits)")
    shape = Z.shape
    Zs, ys = SMOTE(random_state=int(rng.integers(2**31))).fit_resample(Z.reshape(len(Z), -1), y.astype(int))
    return Zs.reshape((-1,) + shape[1:]).astype(np.float32), ys.astype(np.float64)


def _loss(cfg: DescriptorConfig, out, target, pos_weight, gen):
    """(1 - w) * pointwise loss + w * pairwise ranking hinge (a pairwise learner); pointwise
    otherwise."""
    if cfg.data.task == "classify":
        point = torch.nn.functional.binary_cross_entropy_with_logits(out, target, pos_weight=pos_weight)
    else:
        point = torch.mean((out - target) ** 2)
    if not learner(cfg.model.name).pairwise or cfg.train.w == 0:
        return point
    perm = torch.randperm(len(out), generator=gen)
    differ = target != target[perm]
    if not differ.any():
        return (1 - cfg.train.w) * point
    rank = ranking_loss(out[differ], out[perm][differ], target[differ], target[perm][differ],
                        cfg.train.margin)
    return (1 - cfg.train.w) * point + cfg.train.w * rank


def val_score(cfg: DescriptorConfig, s: np.ndarray, y: np.ndarray) -> float:
    """Higher is better: ROC-AUC for classifiers, Spearman when the scores only rank
    (:func:`ranks_only`), -MSE otherwise."""
    if cfg.data.task == "classify":
        auc = roc_auc(y, s)
        return auc if np.isfinite(auc) else 0.0
    if ranks_only(cfg):
        return float(spearmanr(y, s)[0]) if np.ptp(s) > 0 else 0.0
    return -float(np.mean((s - y) ** 2))


def fit_network(cfg: DescriptorConfig, Ztr, ytr, Zva, yva, seed: int,
                epochs: int | None = None) -> tuple[dict, list]:
    """Train one network with early stopping on the validation part (the shared loop driver,
    :class:`hitrank.loop.EpochLoop`, monitoring the validation score of :func:`val_score`).

    Returns ``(parts, curve)`` where ``parts`` holds ``name``, ``kwargs``, ``model`` (best
    epoch), ``best_epoch`` and ``calib`` ``(a, b)`` (score -> logit or target); ``curve`` is
    per-epoch. With ``epochs`` (a refit) it trains exactly that many epochs and keeps the
    last; there is no validation part (``Zva`` unused) and ``calib`` is ``(1, 0)``.
    """
    t = cfg.train
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    Ztr, ytr = _balance(cfg, Ztr, ytr, rng)
    name, kwargs, model = _build_network(cfg, Ztr.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    pos_weight = None
    if cfg.data.task == "classify" and cfg.balance.class_weight:
        pos_weight = torch.tensor(float((ytr == 0).sum()) / max(1.0, float((ytr == 1).sum())))
    Zt, yt = torch.from_numpy(np.ascontiguousarray(Ztr, dtype=np.float32)), torch.from_numpy(ytr.astype(np.float32))

    def train_epoch(epoch: int) -> dict:
        model.train()
        order = torch.randperm(len(Zt), generator=gen)
        total = 0.0
        for i in range(0, len(order), t.batch_size):
            b = order[i:i + t.batch_size]
            if len(b) < 2:
                continue
            loss = _loss(cfg, model(Zt[b]), yt[b], pos_weight, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        return {"train_loss": total / len(order)}

    def validate(epoch: int) -> tuple:
        if epochs is not None:  # refit: every epoch "improves", so the last one is kept
            return float(epoch), {}, None
        score = val_score(cfg, network_scores(model, Zva), yva)
        return score, {"val_score": score}, None

    loop = EpochLoop(model, opt, epochs=epochs or t.epochs, patience=None if epochs else t.patience,
                     mode="max", generators=(gen,))
    res = run_loop(loop, train_epoch, validate)
    model.eval()
    calib = (1.0, 0.0) if epochs is not None else _calibrate(cfg, network_scores(model, Zva), yva)
    return {"name": name, "kwargs": kwargs, "model": model, "best_epoch": res.best_epoch,
            "calib": calib}, res.curves


def _calibrate(cfg: DescriptorConfig, s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Map ranking-only scores to a logit (Platt) or to the target (least squares)."""
    if not ranks_only(cfg):
        return 1.0, 0.0
    if cfg.data.task == "classify":
        return _platt(s, y)
    a, b = np.polyfit(s, y, 1) if np.ptp(s) > 0 else (0.0, float(np.mean(y)))
    return float(a), float(b)


def _platt(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: ``(a, b)`` with ``sigmoid(a * s + b)`` fitted to the 0/1 labels ``y``."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression().fit(s[:, None], y.astype(int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def fit_gbdt(cfg: DescriptorConfig, Ztr, ytr, Zva, yva, seed: int,
             rounds: int | None = None) -> tuple[dict, list]:
    """Gradient-boosted trees (scikit-learn ``HistGradientBoosting*``, settings ``model.gbdt``).

    Boosting stops when the validation loss has not improved for ``gbdt.patience`` rounds;
    the round with the best validation score (:func:`val_score`: ROC-AUC or -MSE) is kept.
    The trees are stored as tensors (:class:`hitrank.models.descriptor.TreeEnsemble`), never
    pickled. Balancing as for the networks: SMOTE / down-sampling of the training part, class
    weights as sample weights. Returns ``(parts, curve)`` like :func:`fit_network`, ``parts``
    with ``rounds`` (rounds kept). With ``rounds`` (a refit): exactly that many, no validation.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    g, classify = cfg.model.gbdt, cfg.data.task == "classify"
    Ztr, ytr = _balance(cfg, Ztr, ytr, np.random.default_rng(seed))
    weight = None
    if classify and cfg.balance.class_weight:
        weight = np.where(ytr == 1, float((ytr == 0).sum()) / max(1.0, float((ytr == 1).sum())), 1.0)
    est = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(
        learning_rate=g.learning_rate, max_iter=rounds or g.max_iter, max_leaf_nodes=g.max_leaf_nodes,
        min_samples_leaf=g.min_samples_leaf, l2_regularization=g.l2_regularization,
        early_stopping=rounds is None, scoring="loss", n_iter_no_change=g.patience, random_state=seed)
    cast = (lambda v: v.astype(int)) if classify else (lambda v: v)
    if rounds is not None:
        with one_tree_thread():
            est.fit(Ztr, cast(ytr), sample_weight=weight)
        kwargs, model = TreeEnsemble.from_arrays(hgb_tree_arrays(est), Ztr.shape[-1])
        return {"name": "gbdt_trees", "kwargs": kwargs, "model": model.eval(), "calib": (1.0, 0.0),
                "rounds": est.n_iter_}, []
    with one_tree_thread():
        est.fit(Ztr, cast(ytr), sample_weight=weight, X_val=Zva, y_val=cast(yva))
        staged = est.staged_decision_function(Zva) if classify else est.staged_predict(Zva)
        curve = [{"round": i + 1, "val_score": val_score(cfg, np.ravel(v).astype(np.float64), yva)}
                 for i, v in enumerate(staged)]
    rounds = 1 + int(np.argmax([c["val_score"] for c in curve]))
    kwargs, model = TreeEnsemble.from_arrays(hgb_tree_arrays(est, rounds), Ztr.shape[-1])
    return {"name": "gbdt_trees", "kwargs": kwargs, "model": model.eval(), "calib": (1.0, 0.0),
            "rounds": rounds}, curve


def _blend_parts(parts: list[dict], weights: list[float]) -> dict:
    """One :class:`~hitrank.models.descriptor.DescriptorBlend` of fitted members (zero
    weights dropped)."""
    keep = [(p, w) for p, w in zip(parts, weights, strict=True) if w > 0]
    kwargs = {"members": [{"name": p["name"], "kwargs": p["kwargs"]} for p, _ in keep],
              "weights": [float(w) for _, w in keep]}
    model = build("descriptor_blend", **kwargs)
    for member, (p, _) in zip(model.members, keep, strict=True):
        member.load_state_dict(p["model"].state_dict())
    return {"name": "descriptor_blend", "kwargs": kwargs, "model": model.eval(), "calib": (1.0, 0.0)}


def _kinds(cfg: DescriptorConfig) -> list[str]:
    """The members the learner trains: ``model.seeds`` networks, then the trees."""
    spec = learner(cfg.model.name)
    return [NET] * (cfg.model.seeds if spec.networks else 0) + ([TREES] if spec.trees else [])


def _member(cfg: DescriptorConfig, kind: str, Ztr, ytr, Zva, yva, seed: int, n: int | None = None):
    """One fitted member of ``kind`` (:data:`NET`: :func:`fit_network`; :data:`TREES`:
    :func:`fit_gbdt`), early-stopped on validation, or with ``n`` epochs / rounds (a refit).
    Returns ``(parts, curve, n_used)``."""
    fit, used = {NET: (fit_network, "best_epoch"), TREES: (fit_gbdt, "rounds")}[kind]
    parts, curve = fit(cfg, Ztr, ytr, Zva, yva, seed, n)
    return parts, curve, parts[used]


def fit_any(cfg: DescriptorConfig, Ztr, ytr, Zva, yva, seed: int) -> tuple[dict, list]:
    """Fit the learner ``model.name``: networks (:func:`fit_network`, ``model.seeds`` averaged),
    trees (:func:`fit_gbdt`) or a blend of both whose tree weight (``BLEND_GRID``) is the
    best on the validation part (a mixed classifier score is then Platt-scaled on the same
    part). ``parts["choice"]`` says what validation chose; ``parts["recipe"]`` lists the
    members (kind, seed, epochs or rounds, weight) for :func:`refit_any`."""
    kinds = _kinds(cfg)
    fitted, curve = [], []
    for i, kind in enumerate(kinds):
        s = seed + SEED_STRIDE * i if kind == NET else seed
        parts, c, n = _member(cfg, kind, Ztr, ytr, Zva, yva, s)
        fitted.append((kind, s, n, parts))
        tag = "gbdt" if kind == TREES else f"mlp{i}"
        curve += c if len(kinds) == 1 else [{"member": tag, **row} for row in c]
    if len(fitted) == 1:
        kind, s, n, parts = fitted[0]
        parts["recipe"] = [{"kind": kind, "seed": s, "n": n, "weight": 1.0}]
        if kind == TREES:
            parts["choice"] = {"gbdt_rounds": n, "val_score": curve[n - 1]["val_score"]}
        return parts, curve
    nets = [p for k, _, _, p in fitted if k == NET]
    s_net = np.mean([network_scores(p["model"], Zva) for p in nets], axis=0)
    choice = {"val_score_mlp": val_score(cfg, s_net, yva)}
    weights, calib = [1.0 / len(nets)] * len(nets), (1.0, 0.0)
    if learner(cfg.model.name).trees:  # networks and trees: a blend
        trees = fitted[-1][3]
        s_tree = network_scores(trees["model"], Zva)
        # classifiers: each score in units of its spread on validation, so the weight is a share
        # of influence (a barely trained network's tiny logits must not hide behind a small weight)
        u_net, u_tree = ((float(np.std(s_net)) or 1.0, float(np.std(s_tree)) or 1.0)
                         if cfg.data.task == "classify" else (1.0, 1.0))
        scores = [val_score(cfg, w * s_tree / u_tree + (1 - w) * s_net / u_net, yva) for w in BLEND_GRID]
        w = float(BLEND_GRID[int(np.argmax(scores))])
        choice.update({"val_score_gbdt": scores[-1], "gbdt_weight": w, "val_score": max(scores),
                       "gbdt_rounds": trees["rounds"]})
        if w in (0.0, 1.0):  # one kind only: its own outputs, already logits or targets
            u_net = u_tree = 1.0
        weights = [(1 - w) / (u_net * len(nets))] * len(nets) + [w / u_tree]
        if cfg.data.task == "classify" and 0 < w < 1:
            # a mix of scaled logits is a ranking score, not a logit: Platt-scale it on validation
            calib = _platt(w * s_tree / u_tree + (1 - w) * s_net / u_net, yva)
    choice["epochs"] = [n for k, _, n, _ in fitted if k == NET]
    parts = {**_blend_parts([p for *_, p in fitted], weights), "calib": calib, "choice": choice}
    parts["recipe"] = [{"kind": k, "seed": s, "n": n, "weight": wt}
                       for (k, s, n, _), wt in zip(fitted, weights, strict=True) if wt > 0]
    return parts, curve


def refit_any(cfg: DescriptorConfig, parts: dict, Z, y) -> dict:
    """Train the members of a fitted model (``parts["recipe"]``) again on ``Z, y`` (training
    *and* validation rows) with the epochs, rounds, weights and calibration validation chose."""
    recipe = parts["recipe"]
    members = [_member(cfg, r["kind"], Z, y, None, None, r["seed"], n=max(1, int(r["n"])))[0]
               for r in recipe]
    if len(_kinds(cfg)) > 1:  # fitted as a blend (see fit_any), even with one weight left
        new = _blend_parts(members, [r["weight"] for r in recipe])
    else:
        new = members[0]
    return {**new, "calib": parts["calib"], "recipe": recipe,
            "choice": {**(parts.get("choice") or {}), "refit_rows": int(len(y))}}
