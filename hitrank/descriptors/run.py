"""Training, cross-validation, prediction and permutation importance for descriptor models.

Before any split, copies of a song (the same URI, or the same artist + title + duration) are
reduced to one row, the earliest, so no song is on both sides of a split (:func:`prepare`).
One fold: the training rows are split into train / validation (stratified for classifiers);
medians (for missing cells), means and standard deviations come from the training part only;
SMOTE, down-sampling and class weights touch the training part only; early stopping, the
boosting rounds, the blend weight and calibration use the validation part; the test rows are
scored once. Baselines (majority / mean, logistic / ridge, histogram gradient boosting and a
random forest) see exactly the same rows and inputs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..checkpoint import build_model, find_checkpoints, load_payload, model_state, save_payload
from ..errors import HitrankError, LabelsError
from ..fileio import atomic_write_text
from ..loop import EpochLoop, run_loop
from ..losses import ranking_loss
from ..models import build
from ..models.descriptor import TreeEnsemble, hgb_tree_arrays
from ..runinfo import write_run_info
from .config import DescriptorConfig, config_from_dict
from .evaluate import (
    CLASSIFY_METRICS,
    REGRESS_METRICS,
    baselines,
    classification_metrics,
    one_tree_thread,
    regression_metrics,
    roc_auc,
    sklearn,
)
from .history import history_features, history_sequences
from .table import (
    DESCRIPTORS,
    DescriptorTable,
    numeric_column,
    require_columns,
    song_keys,
    target_values,
)

log = logging.getLogger(__name__)

#: seeds of the networks of an ensemble: member i trains with ``seed + SEED_STRIDE * i``
SEED_STRIDE = 7919
#: blend: weights of the trees tried on the validation part (the networks get the rest)
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


# ----------------------------------------------------------------------------- inputs
@dataclass
class Prepared:
    """Model-ready rows of a table.

    Attributes
    ----------
    X : (n, F) float, descriptor and extra columns (NaN where missing)
    names : F column names
    y : (n,) target on the model's scale (0/1 for classify; raw or log1p for regress); NaN
        when the table has no target (prediction)
    raw : (n,) the target before transform (nDCG gains)
    rows : (n,) row numbers in the table
    history : (n, 3 + F) artist-history columns and their names, computed once by
        :func:`prepare` when ``data.history`` (they do not depend on the fold); else None
    songs : (n,) int song keys (equal = copies of one song, :func:`song_keys`), or None
    dedup : what de-duplication removed (:func:`_dedup`), or None (prediction, ``none``)
    """

    X: np.ndarray
    names: list
    y: np.ndarray
    raw: np.ndarray
    rows: np.ndarray
    ids: np.ndarray
    artists: np.ndarray
    order: np.ndarray
    history: tuple | None = None
    songs: np.ndarray | None = None
    dedup: dict | None = None


def input_columns(cfg: DescriptorConfig, table: DescriptorTable) -> list[str]:
    d = cfg.data
    if d.features == ("all",):
        cols = [c for c in table.present() if c != d.target]
        if not cols:
            raise LabelsError(f"{table.sources[0]!r}: no descriptor column has a valid value")
    else:
        unknown = [c for c in d.features if c not in DESCRIPTORS]
        if unknown:
            raise HitrankError(f"data.features: {unknown} are not descriptors; "
                               f"allowed: {list(DESCRIPTORS)} or ['all']")
        cols = list(d.features)
    extra = [] if d.extra == ("none",) else list(d.extra)
    require_columns(table, cols + extra, f"config {cfg.name!r}")
    optional = [] if d.optional == ("none",) else [
        c for c in d.optional if c in table.frame and c not in cols + extra
        and numeric_column(table.frame[c]).notna().any()]
    return cols + extra + optional


def prepare(cfg: DescriptorConfig, table: DescriptorTable, columns: list[str] | None = None,
            need_target: bool = True) -> tuple[Prepared, list[str]]:
    """Select inputs and target; drop rows whose target is bad (returned as messages)."""
    d = cfg.data
    columns = columns or input_columns(cfg, table)
    require_columns(table, columns, f"model {cfg.name!r}")
    X = np.column_stack([numeric_column(table.frame[c]).to_numpy(float) for c in columns])
    problems: list[str] = []
    has_target = d.target in table.frame
    if d.history and not has_target:
        raise LabelsError(f"{table.sources[0]!r}: model {cfg.name!r} uses artist history, which needs "
                          f"the {d.target!r} column of the artists' earlier songs")
    if need_target or d.history:
        raw, problems = target_values(table, d.target)
    else:
        raw = np.full(len(table), np.nan)
    keep = np.isfinite(raw) if need_target else np.ones(len(table), bool)
    if d.task == "regress" and need_target:
        neg = keep & (raw < 0)
        problems += [f"line {i + 2} ({table.ids[i]!r}): {d.target}={raw[i]} is negative"
                     for i in np.flatnonzero(neg)]
        keep &= ~neg
    if d.task == "classify":
        y = raw >= d.hit_threshold if d.hit_threshold >= 0 else raw
        if d.hit_threshold < 0 and need_target:
            bad = keep & ~np.isin(raw, (0.0, 1.0))
            problems += [f"line {i + 2} ({table.ids[i]!r}): {d.target}={raw[i]} is not 0 or 1 "
                         "(set data.hit_threshold to classify a numeric column)"
                         for i in np.flatnonzero(bad)]
            keep &= ~bad
        y = np.where(np.isfinite(raw), y.astype(float), np.nan)
    else:
        y = {"log1p": lambda r: np.log1p(np.clip(r, 0, None)),
             "log": lambda r: np.log(np.clip(r, 1e-12, None)),
             "none": np.copy}[d.transform](raw)
    order = (numeric_column(table.frame[d.order_column]).to_numpy(float) if d.order_column in table.frame
             else np.full(len(table), np.nan))
    if d.history and d.order_column not in table.frame:
        raise LabelsError(f"{table.sources[0]!r}: data.history needs the order column "
                          f"{d.order_column!r} (set data.order_column)")
    rows = np.flatnonzero(keep)
    songs, dedup = None, None
    if need_target or d.history:
        songs, found = song_keys(table, d.dedup)
    if need_target and d.dedup != "none":
        rows, dedup = _dedup(rows, songs, order, y if d.task == "classify" else raw, found)
        if dedup["rows_removed"]:
            log.info("%d duplicate row(s) of %d song(s) removed before splitting (same %s; the "
                     "earliest copy kept); copies agree on the target for %.1f%% of those songs",
                     dedup["rows_removed"], dedup["songs_with_copies"], dedup["by"],
                     100 * dedup["copies_agree_on_target"])
    if d.keep_hits < 1 and need_target:
        rng = np.random.default_rng(cfg.train.seed)
        hits = rows[y[rows] == 1]
        drop = rng.choice(hits, size=len(hits) - int(round(d.keep_hits * len(hits))), replace=False)
        rows = np.setdiff1d(rows, drop)
    prep = Prepared(X[rows], list(columns), y[rows], raw[rows], rows, table.ids[rows],
                    table.artists[rows], order[rows], songs=None if songs is None else songs[rows],
                    dedup=dedup)
    if d.history:
        H, hnames = history_features(prep.X, np.nan_to_num(prep.y), prep.artists, prep.order,
                                     prep.songs)
        prep.history = (H, hnames + [f"earlier_{c}" for c in prep.names])
    if need_target and len(prep.y) < 10:
        raise LabelsError(f"{table.sources[0]!r}: only {len(prep.y)} usable rows; need at least 10")
    return prep, problems


def _dedup(rows: np.ndarray, songs: np.ndarray, order: np.ndarray, target: np.ndarray,
           found: dict) -> tuple[np.ndarray, dict]:
    """One row per song among ``rows``: the earliest by ``order`` (NaN last), then the first.

    Returns the kept rows (sorted) and a report: ``by`` (the keys used), ``rows_removed``,
    ``songs_with_copies``, ``copies_agree_on_target`` (share of those songs whose copies all
    have the same target) and ``copies_disagree`` (their number).
    """
    key = songs[rows]
    when = np.where(np.isfinite(order[rows]), order[rows], np.inf)
    srt = np.lexsort((rows, when, key))
    first = np.r_[True, key[srt][1:] != key[srt][:-1]]
    kept = np.sort(rows[srt[first]])
    uniq, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    lo, hi = np.full(len(uniq), np.inf), np.full(len(uniq), -np.inf)
    np.minimum.at(lo, inv, target[rows])
    np.maximum.at(hi, inv, target[rows])
    multi = counts > 1
    agree = (lo == hi)[multi]
    title = "artist + title + duration" if found.get("duration") else "artist + title"
    by = " or ".join(w for w, ok in (("URI", found["uri"]), (title, found["title"])) if ok)
    return kept, {"by": by or "nothing (no URI or title column)", "rows_removed": int(len(rows) - len(kept)),
                  "songs_with_copies": int(multi.sum()),
                  "copies_agree_on_target": float(agree.mean()) if len(agree) else 1.0,
                  "copies_disagree": int((~agree).sum())}


class Scaler:
    """Median imputation + standardisation, fitted on training rows only."""

    def __init__(self, median, mean, std):
        self.median, self.mean, self.std = (np.asarray(v, dtype=np.float64) for v in (median, mean, std))

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        with np.errstate(all="ignore"):
            median = np.nan_to_num(np.nanmedian(X, axis=0))
        filled = np.where(np.isnan(X), median, X)
        std = filled.std(axis=0)
        return cls(median, filled.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(X), self.median, X)
        return ((filled - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"median": self.median.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist()}


def _with_history(cfg: DescriptorConfig, prep: Prepared) -> tuple[np.ndarray, list[str]]:
    """Descriptors plus artist-history summary columns (mlp / siamese_mlp)."""
    if prep.history is None:
        return prep.X, prep.names
    H, hnames = prep.history
    return np.hstack([prep.X, H]), prep.names + hnames


def _model_inputs(cfg: DescriptorConfig, prep: Prepared, scaler: Scaler, y_std: tuple) -> np.ndarray:
    """Network input: (n, F') for MLPs, (n, k+1, F+2) for the history LSTM."""
    X, _ = _with_history(cfg, prep) if cfg.model.name != "history_lstm" else (prep.X, None)
    Z = scaler.transform(X)
    if cfg.model.name == "history_lstm":
        ys = np.nan_to_num((prep.y - y_std[0]) / y_std[1]) if cfg.data.task == "regress" else np.nan_to_num(prep.y)
        return history_sequences(Z, ys, prep.artists, prep.order, cfg.data.history_len, prep.songs)
    return Z


# ----------------------------------------------------------------------------- training
def _build_model(cfg: DescriptorConfig, n_in: int) -> tuple[str, dict, torch.nn.Module]:
    if cfg.model.name == "history_lstm":
        kwargs = {"n_in": n_in, "hidden": int(cfg.model.hidden[0])}
        name = "history_lstm"
    else:
        kwargs = {"n_in": n_in, "hidden": [int(h) for h in cfg.model.hidden], "dropout": cfg.model.dropout}
        name = "descriptor_mlp"
    return name, kwargs, build(name, **kwargs)


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
    """(1 - w) * pointwise loss + w * pairwise ranking hinge (siamese_mlp); pointwise otherwise."""
    if cfg.data.task == "classify":
        point = torch.nn.functional.binary_cross_entropy_with_logits(out, target, pos_weight=pos_weight)
    else:
        point = torch.mean((out - target) ** 2)
    if cfg.model.name != "siamese_mlp" or cfg.train.w == 0:
        return point
    perm = torch.randperm(len(out), generator=gen)
    differ = target != target[perm]
    if not differ.any():
        return (1 - cfg.train.w) * point
    rank = ranking_loss(out[differ], out[perm][differ], target[differ], target[perm][differ],
                        cfg.train.margin)
    return (1 - cfg.train.w) * point + cfg.train.w * rank


def _val_score(cfg: DescriptorConfig, s: np.ndarray, y: np.ndarray) -> float:
    """Higher is better: ROC-AUC for classifiers, Spearman for ranking-only, -MSE otherwise."""
    from scipy.stats import spearmanr

    if cfg.data.task == "classify":
        auc = roc_auc(y, s)
        return auc if np.isfinite(auc) else 0.0
    if cfg.model.name == "siamese_mlp" and cfg.train.w == 1:
        return float(spearmanr(y, s)[0]) if np.ptp(s) > 0 else 0.0
    return -float(np.mean((s - y) ** 2))


def network_scores(model, Z: np.ndarray, batch: int = 4096) -> np.ndarray:
    """A descriptor network's raw scores of inputs ``Z`` (n, F) (or (n, L, F)): (n,) float64."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(Z[i:i + batch]))).numpy()
                               for i in range(0, len(Z), batch)]).astype(np.float64)


def fit_model(cfg: DescriptorConfig, Ztr, ytr, Zva, yva, seed: int,
              epochs: int | None = None) -> tuple[dict, list]:
    """Train one network with early stopping on the validation part (the shared loop driver,
    :class:`hitrank.loop.EpochLoop`, monitoring the validation score of :func:`_val_score`).

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
    name, kwargs, model = _build_model(cfg, Ztr.shape[-1])
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
        score = _val_score(cfg, network_scores(model, Zva), yva)
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
    if cfg.model.name != "siamese_mlp" or cfg.train.w < 1:
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
    the round with the best validation score (:func:`_val_score`: ROC-AUC or -MSE) is kept.
    The trees are stored as tensors (:class:`hitrank.models.descriptor.TreeEnsemble`), never
    pickled. Balancing as for the networks: SMOTE / down-sampling of the training part, class
    weights as sample weights. Returns ``(parts, curve)`` like :func:`fit_model`, ``parts``
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
        curve = [{"round": i + 1, "val_score": _val_score(cfg, np.ravel(v).astype(np.float64), yva)}
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


def _member(cfg: DescriptorConfig, kind: str, Ztr, ytr, Zva, yva, seed: int, n: int | None = None):
    """One fitted model of ``kind`` ``net`` (:func:`fit_model`) or ``gbdt`` (:func:`fit_gbdt`),
    early-stopped on validation, or with ``n`` epochs / rounds (a refit). Returns
    ``(parts, curve, n_used)``."""
    if kind == "gbdt":
        parts, curve = fit_gbdt(cfg, Ztr, ytr, Zva, yva, seed, rounds=n)
        return parts, curve, parts["rounds"]
    parts, curve = fit_model(cfg, Ztr, ytr, Zva, yva, seed, epochs=n)
    return parts, curve, parts["best_epoch"]


def fit_any(cfg: DescriptorConfig, Ztr, ytr, Zva, yva, seed: int) -> tuple[dict, list]:
    """Fit ``model.name``: networks (:func:`fit_model`, ``model.seeds`` of them averaged),
    trees (:func:`fit_gbdt`) or a blend of both whose tree weight (``BLEND_GRID``) is the
    best on the validation part (a mixed classifier score is then Platt-scaled on the same
    part). ``parts["choice"]`` says what validation chose; ``parts["recipe"]`` lists the
    members (kind, seed, epochs or rounds, weight) for :func:`refit_any`."""
    m = cfg.model
    n_nets = 0 if m.name == "gbdt" else m.seeds
    kinds = [("net", seed + SEED_STRIDE * i) for i in range(n_nets)]
    if m.name in ("gbdt", "blend"):
        kinds.append(("gbdt", seed))
    fitted, curve = [], []
    for i, (kind, s) in enumerate(kinds):
        parts, c, n = _member(cfg, kind, Ztr, ytr, Zva, yva, s)
        fitted.append((kind, s, n, parts))
        tag = "gbdt" if kind == "gbdt" else f"mlp{i}"
        curve += c if len(kinds) == 1 else [{"member": tag, **row} for row in c]
    if len(fitted) == 1:
        kind, s, n, parts = fitted[0]
        parts["recipe"] = [{"kind": kind, "seed": s, "n": n, "weight": 1.0}]
        if kind == "gbdt":
            parts["choice"] = {"gbdt_rounds": n, "val_score": curve[n - 1]["val_score"]}
        return parts, curve
    nets = [p for k, _, _, p in fitted if k == "net"]
    s_net = np.mean([network_scores(p["model"], Zva) for p in nets], axis=0)
    choice = {"val_score_mlp": _val_score(cfg, s_net, yva)}
    weights, calib = [1.0 / len(nets)] * len(nets), (1.0, 0.0)
    if m.name == "blend":
        trees = fitted[-1][3]
        s_tree = network_scores(trees["model"], Zva)
        # classifiers: each score in units of its spread on validation, so the weight is a share
        # of influence (a barely trained network's tiny logits must not hide behind a small weight)
        u_net, u_tree = ((float(np.std(s_net)) or 1.0, float(np.std(s_tree)) or 1.0)
                         if cfg.data.task == "classify" else (1.0, 1.0))
        scores = [_val_score(cfg, w * s_tree / u_tree + (1 - w) * s_net / u_net, yva) for w in BLEND_GRID]
        w = float(BLEND_GRID[int(np.argmax(scores))])
        choice.update({"val_score_gbdt": scores[-1], "gbdt_weight": w, "val_score": max(scores),
                       "gbdt_rounds": trees["rounds"]})
        if w in (0.0, 1.0):  # one kind only: its own outputs, already logits or targets
            u_net = u_tree = 1.0
        weights = [(1 - w) / (u_net * len(nets))] * len(nets) + [w / u_tree]
        if cfg.data.task == "classify" and 0 < w < 1:
            # a mix of scaled logits is a ranking score, not a logit: Platt-scale it on validation
            calib = _platt(w * s_tree / u_tree + (1 - w) * s_net / u_net, yva)
    choice["epochs"] = [n for k, _, n, _ in fitted if k == "net"]
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
    if parts["name"] == "descriptor_blend":
        new = _blend_parts(members, [r["weight"] for r in recipe])
    else:
        new = members[0]
    return {**new, "calib": parts["calib"], "recipe": recipe,
            "choice": {**(parts.get("choice") or {}), "refit_rows": int(len(y))}}


# ----------------------------------------------------------------------------- a fitted model
class DescriptorModel:
    """A trained descriptor model: preprocessing + network + calibration (one checkpoint)."""

    def __init__(self, cfg: DescriptorConfig, columns: list, scaler: Scaler, y_std: tuple, parts: dict):
        self.cfg, self.columns, self.scaler, self.y_std, self.parts = cfg, columns, scaler, y_std, parts

    def predict(self, prep: Prepared) -> np.ndarray:
        """Hit probability (classify) or predicted target on its scale (regress), (n,)."""
        s = network_scores(self.parts["model"], _model_inputs(self.cfg, prep, self.scaler, self.y_std))
        a, b = self.parts["calib"]
        z = a * s + b
        if self.cfg.data.task == "classify":
            return 1.0 / (1.0 + np.exp(-z))
        return self.y_std[0] + self.y_std[1] * z

    def save(self, path: Path, info: dict) -> None:
        save_payload(path, "descriptor", {
            "config": self.cfg.to_dict(), "columns": list(self.columns),
            "scaler": self.scaler.to_dict(), "y_std": [float(v) for v in self.y_std],
            "model": self.parts["name"], "kwargs": self.parts["kwargs"],
            "calib": [float(v) for v in self.parts["calib"]],
            "state_dict": model_state(self.parts["model"]), "info": info,
        })

    @classmethod
    def from_payload(cls, payload: dict) -> DescriptorModel:
        from .audio import LEGACY_EXTRACTOR

        data = payload["config"].setdefault("data", {})
        data.setdefault("extractor", LEGACY_EXTRACTOR)  # models older than the extractor key
        model = build_model(payload["model"], payload["kwargs"], payload["state_dict"])
        sc = payload["scaler"]
        return cls(config_from_dict(payload["config"]), payload["columns"],
                   Scaler(sc["median"], sc["mean"], sc["std"]), tuple(payload["y_std"]),
                   {"name": payload["model"], "kwargs": payload["kwargs"], "model": model,
                    "calib": tuple(payload["calib"])})


def load_models(model: str | os.PathLike) -> list[DescriptorModel]:
    """Every descriptor checkpoint of a run folder (fold ensemble) or one ``.pt`` file."""
    return [DescriptorModel.from_payload(load_payload(path, "descriptor"))
            for path in find_checkpoints(model)]


# ----------------------------------------------------------------------------- one fold
def _val_how(cfg: DescriptorConfig) -> str:
    """``cv.val_split`` with ``auto`` resolved: latest for a holdout split, else random."""
    if cfg.cv.val_split == "auto":
        return "latest" if cfg.cv.split == "holdout" else "random"
    return cfg.cv.val_split


def _split_val(cfg: DescriptorConfig, idx: np.ndarray, y: np.ndarray, seed: int,
               order: np.ndarray | None = None):
    """Training part and validation part of ``idx``: a stratified random share, or
    (``cv.val_split='latest'``, or ``'auto'`` with a holdout split) the rows of the latest
    ``order`` value among ``idx``: a model meant for later songs is stopped and weighted on
    the latest songs it may see."""
    rng = np.random.default_rng(seed)
    if _val_how(cfg) == "latest":
        when = order[idx] if order is not None else np.full(len(idx), np.nan)
        if not np.isfinite(when).any() or np.nanmin(when) == np.nanmax(when):
            raise HitrankError(f"cv.val_split='latest' needs training rows of at least two values "
                               f"of data.order_column={cfg.data.order_column!r}")
        last = when == np.nanmax(when)
        return idx[~last], idx[last]
    if cfg.data.task == "classify":
        va = np.concatenate([rng.choice(part, max(1, int(round(cfg.cv.val_fraction * len(part)))), replace=False)
                             for part in (idx[y[idx] == 1], idx[y[idx] == 0]) if len(part)])
    else:
        va = rng.choice(idx, max(2, int(round(cfg.cv.val_fraction * len(idx)))), replace=False)
    return np.setdiff1d(idx, va), np.sort(va)


def train_one(cfg: DescriptorConfig, prep: Prepared, train_idx: np.ndarray, seed: int):
    """Fit scaler, network and calibration on ``train_idx``; returns (model, curve, val_idx)."""
    tr, va = _split_val(cfg, train_idx, prep.y, seed, prep.order)
    X_all, _ = _with_history(cfg, prep) if cfg.model.name != "history_lstm" else (prep.X, None)
    scaler = Scaler.fit(X_all[tr])
    y_std = (0.0, 1.0)
    if cfg.data.task == "regress":
        y_std = (float(np.mean(prep.y[tr])), float(np.std(prep.y[tr]) or 1.0))
    Z = _model_inputs(cfg, prep, scaler, y_std)
    yz = (prep.y - y_std[0]) / y_std[1]
    parts, curve = fit_any(cfg, Z[tr], yz[tr], Z[va], yz[va], seed)
    if _val_how(cfg) == "latest":  # chosen on the latest decade: now learn from it too
        both = np.sort(np.concatenate([tr, va]))
        parts = refit_any(cfg, parts, Z[both], yz[both])
    return DescriptorModel(cfg, prep.names, scaler, y_std, parts), curve, (tr, va, scaler, Z)


def _metrics(cfg, y, pred, raw):
    top = cfg.cv.top_fraction
    if cfg.data.task == "classify":
        return classification_metrics(y, pred, top)
    return regression_metrics(y, pred, raw, top)


def splits(cfg: DescriptorConfig, prep: Prepared, table: DescriptorTable) -> list[tuple]:
    """Test-row index arrays per fold (``kfold``) or the one holdout split."""
    n = len(prep.y)
    c = cfg.cv
    if c.split == "holdout":
        require_columns(table, [c.split_column], "cv.split='holdout'")
        col = numeric_column(table.frame[c.split_column]).to_numpy(float)[prep.rows]
        test = np.flatnonzero(np.isin(col, np.asarray(c.test_values, dtype=float)))
        if len(test) == 0 or len(test) == n:
            raise HitrankError(f"cv.test_values={list(c.test_values)} select {len(test)} of {n} rows "
                               f"by {c.split_column!r}; need some rows on each side")
        return [test]
    if c.folds > n:
        raise HitrankError(f"cv.folds={c.folds} but only {n} rows")
    sklearn()  # a clear error when scikit-learn is missing
    from sklearn.model_selection import KFold, StratifiedKFold

    if cfg.data.task == "classify":
        kf = StratifiedKFold(c.folds, shuffle=True, random_state=cfg.train.seed)
        return [te for _, te in kf.split(np.zeros(n), prep.y.astype(int))]
    kf = KFold(c.folds, shuffle=True, random_state=cfg.train.seed)
    return [te for _, te in kf.split(np.zeros(n))]


def _importance(cfg, model: DescriptorModel, prep: Prepared, idx, seed) -> np.ndarray | None:
    """Permutation importance (scikit-learn) of each input column on rows ``idx``.

    The importance of a column is the drop in the validation score (ROC-AUC, Spearman or
    -MSE, see :func:`_val_score`) when that column is shuffled. Not computed for the LSTM.
    """
    if cfg.model.name == "history_lstm":
        return None
    from sklearn.inspection import permutation_importance

    class _Frozen:  # the fitted network as scikit-learn sees it: raw columns in, scores out
        def fit(self, X, y):
            return self

        def predict(self, X):
            return network_scores(model.parts["model"], model.scaler.transform(X))

    X, _ = _with_history(cfg, prep)
    yz = (prep.y[idx] - model.y_std[0]) / model.y_std[1]
    res = permutation_importance(_Frozen(), X[idx], yz, n_repeats=3, random_state=seed,
                                 scoring=lambda est, Xs, ys: _val_score(cfg, est.predict(Xs), ys))
    return res.importances_mean


def run_cv(cfg: DescriptorConfig, table: DescriptorTable, out: str | os.PathLike,
           progress: bool = False, save_models: bool = True) -> dict:
    """Cross-validate (or hold out) a descriptor model; writes the run folder and returns the summary.

    Files: ``fold_XX.pt`` (checkpoints), ``folds.csv`` (model and baseline metrics per fold),
    ``predictions.csv``, ``importance.csv`` / ``importance.png``, ``summary.json``,
    ``config.yaml``. Folds already in the folder (``fold_XX.json``) are reused.
    """
    import yaml
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_run_info(out, "descriptor", "cv", name=cfg.name)
    t0 = time.perf_counter()
    prep, problems = prepare(cfg, table)
    for p in problems[:10]:
        log.warning("row left out: %s", p)
    if len(problems) > 10:
        log.warning("... %d more rows left out", len(problems) - 10)
    tests = splits(cfg, prep, table)
    n = len(prep.y)
    fold_rows, pred_rows, importances, choices = [], [], [], []
    names = _with_history(cfg, prep)[1] if cfg.model.name != "history_lstm" else prep.names
    for f, te in enumerate(tqdm(tests, desc=cfg.name, unit="fold", disable=not progress)):
        done = out / f"fold_{f:02d}.json"
        if done.is_file():
            rec = json.loads(done.read_text())
        else:
            rec = _run_fold(cfg, prep, te, f, out if save_models else None)
            atomic_write_text(done, json.dumps(rec))
        fold_rows += [{"fold": f, "model": k, **v} for k, v in rec["metrics"].items()]
        pred_rows += rec["predictions"]
        if rec.get("choice"):
            choices.append(rec["choice"])
        if rec.get("importance") is not None:
            importances.append(rec["importance"])
    folds = pd.DataFrame(fold_rows)
    folds.to_csv(out / "folds.csv", index=False)
    pd.DataFrame(pred_rows).to_csv(out / "predictions.csv", index=False)
    metric_names = CLASSIFY_METRICS if cfg.data.task == "classify" else REGRESS_METRICS
    table_ = folds.groupby("model", sort=False)[list(metric_names)].agg(["mean", "std"])
    summary = {
        "name": cfg.name, "task": cfg.data.task, "n_rows": n, "n_left_out": len(problems),
        "split": cfg.cv.split, "folds": len(tests), "seconds": round(time.perf_counter() - t0, 1),
        "prevalence": float(np.mean(prep.y)) if cfg.data.task == "classify" else None,
        "inputs": names, "sources": table.sources, "dedup": prep.dedup,
        "results": {m: {k: {"mean": float(table_.loc[m, (k, "mean")]),
                            "std": float(np.nan_to_num(table_.loc[m, (k, "std")]))}
                        for k in metric_names} for m in table_.index},
    }
    if choices:
        summary["choices"] = choices  # per fold: what the validation part chose
    if importances:
        imp = pd.DataFrame(importances, columns=names)
        frame = pd.DataFrame({"input": names, "importance_mean": imp.mean().to_numpy(),
                              "importance_std": imp.std().fillna(0).to_numpy()})
        frame = frame.sort_values("importance_mean", ascending=False)
        frame.to_csv(out / "importance.csv", index=False)
        summary["importance"] = frame.head(20).to_dict("records")
        _plot_importance(frame, out / "importance.png", cfg)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _run_fold(cfg: DescriptorConfig, prep: Prepared, te: np.ndarray, f: int, out: Path | None) -> dict:
    seed = cfg.train.seed * 1000 + f
    train_idx = np.setdiff1d(np.arange(len(prep.y)), te)
    model, curve, (tr, va, scaler, Z) = train_one(cfg, prep, train_idx, seed)
    pred = model.predict(prep)[te]  # inputs of all rows: history looks at earlier rows
    metrics = {cfg.name: _metrics(cfg, prep.y[te], pred, prep.raw[te])}
    Zflat = Z.reshape(len(Z), -1)
    # the trees read the same inputs unstandardised (NaN kept); the LSTM's are sequences
    R = Zflat if cfg.model.name == "history_lstm" else _with_history(cfg, prep)[0]
    seen = np.concatenate([tr, va])
    for k, v in baselines(cfg.data.task, Zflat[seen], prep.y[seen], Zflat[te],
                          raw=(R[seen], R[te]), seed=seed).items():
        metrics[k] = _metrics(cfg, prep.y[te], v, prep.raw[te])
    if out is not None:
        model.save(out / f"fold_{f:02d}.pt", {"fold": f, "n_train": len(tr), "n_val": len(va),
                                             "n_test": len(te), "curve": curve,
                                             "choice": model.parts.get("choice")})
    imp = _importance(cfg, model, prep, te, seed)
    return {
        "metrics": metrics, "epochs": len(curve), "choice": model.parts.get("choice"),
        "predictions": [{"fold": f, "row": int(prep.rows[i]) + 1, "id": str(prep.ids[i]),
                         "artist": str(prep.artists[i]), "target": float(prep.y[i]),
                         "prediction": float(p)} for i, p in zip(te, pred, strict=False)],
        "importance": None if imp is None else [float(v) for v in imp],
    }


def _plot_importance(frame: pd.DataFrame, path: Path, cfg: DescriptorConfig) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: importance.png not written")
        return
    top = frame.head(20).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
    ax.barh(top["input"], top["importance_mean"], xerr=top["importance_std"], color="#4c72b0")
    what = "ROC-AUC" if cfg.data.task == "classify" else "validation score"
    ax.set_xlabel(f"drop in {what} when the column is shuffled")
    ax.set_title(f"permutation importance: {cfg.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_table(cfg: DescriptorConfig, table: DescriptorTable, out: str | os.PathLike) -> dict:
    """Train one model on every usable row (a validation part stops training); writes
    ``out/model.pt`` and ``out/config.yaml``."""
    import yaml

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_run_info(out, "descriptor", "train", name=cfg.name)
    prep, problems = prepare(cfg, table)
    for p in problems[:10]:
        log.warning("row left out: %s", p)
    model, curve, (tr, va, _, _) = train_one(cfg, prep, np.arange(len(prep.y)), cfg.train.seed)
    info = {"name": cfg.name, "n_train": len(tr), "n_val": len(va), "n_left_out": len(problems),
            "epochs": len(curve), "curve": curve, "sources": table.sources, "dedup": prep.dedup,
            "choice": model.parts.get("choice")}
    model.save(out / "model.pt", info)
    atomic_write_text(out / "train.json", json.dumps(info, indent=1))
    return info


def _load_checked(config, overrides) -> DescriptorConfig:
    from .config import is_descriptor_config, load_descriptor_config

    if not is_descriptor_config(config):
        raise HitrankError(f"--data needs a descriptor config (branch: descriptors, see "
                           f"configs/descriptors/); {str(config)!r} is not one")
    return load_descriptor_config(config, overrides)


def check_extractor(cfg: DescriptorConfig, table: DescriptorTable) -> None:
    """Refuse a ``descriptors.csv`` computed with another extractor than the config's
    ``data.extractor`` (the model would meet other descriptors when it ranks audio)."""
    from .audio import LEGACY_EXTRACTOR

    for src in map(Path, table.sources):
        meta = src.parent / "descriptors.json"
        if src.name == "descriptors.csv" and meta.is_file():
            made = json.loads(meta.read_text()).get("extractor", LEGACY_EXTRACTOR)
            if made != cfg.data.extractor:
                raise HitrankError(f"{str(src)!r} was made by `hitrank descriptors --extractor {made}` "
                                   f"but the config says data.extractor={cfg.data.extractor!r}; "
                                   f"use --set data.extractor={made} or describe the audio again")


def cv_command(config, overrides=(), *, data, out: str | os.PathLike, progress: bool = False) -> dict:
    """``hitrank cv --data TABLE`` with a descriptor config; returns ``{"kind", "summary"}``."""
    from .table import read_table

    cfg = _load_checked(config, overrides)
    table = read_table(data)
    check_extractor(cfg, table)
    return {"kind": "descriptor", "summary": run_cv(cfg, table, out, progress=progress)}


def train_command(config, overrides=(), *, data, out: str | os.PathLike) -> dict:
    """``hitrank train --data TABLE`` with a descriptor config; returns ``{"kind", "info"}``."""
    from .table import read_table

    cfg = _load_checked(config, overrides)
    table = read_table(data)
    check_extractor(cfg, table)
    return {"kind": "descriptor", "info": train_table(cfg, table, out)}
