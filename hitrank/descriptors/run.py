"""Training, cross-validation, prediction and permutation importance for descriptor models.

One fold: the training rows are split into train / validation (stratified for classifiers);
medians (for missing cells), means and standard deviations come from the training part only;
SMOTE, down-sampling and class weights touch the training part only; early stopping and
calibration use the validation part; the test rows are scored once. Baselines (majority /
mean and a logistic / ridge model) see exactly the same rows and inputs.
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
from ..runinfo import write_run_info
from .config import DescriptorConfig, config_from_dict
from .evaluate import (
    CLASSIFY_METRICS,
    REGRESS_METRICS,
    baselines,
    classification_metrics,
    regression_metrics,
    sklearn,
)
from .history import history_features, history_sequences
from .table import DESCRIPTORS, DescriptorTable, numeric_column, require_columns, target_values

log = logging.getLogger(__name__)


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
    return cols + extra


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
    if d.keep_hits < 1 and need_target:
        rng = np.random.default_rng(cfg.train.seed)
        hits = rows[y[rows] == 1]
        drop = rng.choice(hits, size=len(hits) - int(round(d.keep_hits * len(hits))), replace=False)
        rows = np.setdiff1d(rows, drop)
    prep = Prepared(X[rows], list(columns), y[rows], raw[rows], rows, table.ids[rows],
                    table.artists[rows], order[rows])
    if d.history:
        H, hnames = history_features(prep.X, np.nan_to_num(prep.y), prep.artists, prep.order)
        prep.history = (H, hnames + [f"earlier_{c}" for c in prep.names])
    if need_target and len(prep.y) < 10:
        raise LabelsError(f"{table.sources[0]!r}: only {len(prep.y)} usable rows; need at least 10")
    return prep, problems


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
        return history_sequences(Z, ys, prep.artists, prep.order, cfg.data.history_len)
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
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else 0.0
    if cfg.model.name == "siamese_mlp" and cfg.train.w == 1:
        return float(spearmanr(y, s)[0]) if np.ptp(s) > 0 else 0.0
    return -float(np.mean((s - y) ** 2))


def _scores(model, Z: np.ndarray, batch: int = 4096) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(Z[i:i + batch]))).numpy()
                               for i in range(0, len(Z), batch)]).astype(np.float64)


def fit_model(cfg: DescriptorConfig, Ztr, ytr, Zva, yva, seed: int) -> tuple[dict, list]:
    """Train one network with early stopping on the validation part (the shared loop driver,
    :class:`hitrank.loop.EpochLoop`, monitoring the validation score of :func:`_val_score`).

    Returns ``(parts, curve)`` where ``parts`` holds ``name``, ``kwargs``, ``model`` (best
    epoch) and ``calib`` ``(a, b)`` (score -> logit or target); ``curve`` is per-epoch.
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
        score = _val_score(cfg, _scores(model, Zva), yva)
        return score, {"val_score": score}, None

    loop = EpochLoop(model, opt, epochs=t.epochs, patience=t.patience, mode="max", generators=(gen,))
    res = run_loop(loop, train_epoch, validate)
    model.eval()
    return {"name": name, "kwargs": kwargs, "model": model,
            "calib": _calibrate(cfg, _scores(model, Zva), yva)}, res.curves


def _calibrate(cfg: DescriptorConfig, s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Map ranking-only scores to a logit (Platt) or to the target (least squares)."""
    if cfg.model.name != "siamese_mlp" or cfg.train.w < 1:
        return 1.0, 0.0
    if cfg.data.task == "classify":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression().fit(s[:, None], y.astype(int))
        return float(lr.coef_[0, 0]), float(lr.intercept_[0])
    a, b = np.polyfit(s, y, 1) if np.ptp(s) > 0 else (0.0, float(np.mean(y)))
    return float(a), float(b)


# ----------------------------------------------------------------------------- a fitted model
class DescriptorModel:
    """A trained descriptor model: preprocessing + network + calibration (one checkpoint)."""

    def __init__(self, cfg: DescriptorConfig, columns: list, scaler: Scaler, y_std: tuple, parts: dict):
        self.cfg, self.columns, self.scaler, self.y_std, self.parts = cfg, columns, scaler, y_std, parts

    def predict(self, prep: Prepared) -> np.ndarray:
        """Hit probability (classify) or predicted target on its scale (regress), (n,)."""
        s = _scores(self.parts["model"], _model_inputs(self.cfg, prep, self.scaler, self.y_std))
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
def _split_val(cfg: DescriptorConfig, idx: np.ndarray, y: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    if cfg.data.task == "classify":
        va = np.concatenate([rng.choice(part, max(1, int(round(cfg.cv.val_fraction * len(part)))), replace=False)
                             for part in (idx[y[idx] == 1], idx[y[idx] == 0]) if len(part)])
    else:
        va = rng.choice(idx, max(2, int(round(cfg.cv.val_fraction * len(idx)))), replace=False)
    return np.setdiff1d(idx, va), np.sort(va)


def train_one(cfg: DescriptorConfig, prep: Prepared, train_idx: np.ndarray, seed: int):
    """Fit scaler, network and calibration on ``train_idx``; returns (model, curve, val_idx)."""
    tr, va = _split_val(cfg, train_idx, prep.y, seed)
    X_all, _ = _with_history(cfg, prep) if cfg.model.name != "history_lstm" else (prep.X, None)
    scaler = Scaler.fit(X_all[tr])
    y_std = (0.0, 1.0)
    if cfg.data.task == "regress":
        y_std = (float(np.mean(prep.y[tr])), float(np.std(prep.y[tr]) or 1.0))
    Z = _model_inputs(cfg, prep, scaler, y_std)
    yz = (prep.y - y_std[0]) / y_std[1]
    parts, curve = fit_model(cfg, Z[tr], yz[tr], Z[va], yz[va], seed)
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
            return _scores(model.parts["model"], model.scaler.transform(X))

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
    fold_rows, pred_rows, importances = [], [], []
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
        "inputs": names, "sources": table.sources,
        "results": {m: {k: {"mean": float(table_.loc[m, (k, "mean")]),
                            "std": float(np.nan_to_num(table_.loc[m, (k, "std")]))}
                        for k in metric_names} for m in table_.index},
    }
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
    seen = np.concatenate([tr, va])
    for k, v in baselines(cfg.data.task, Zflat[seen], prep.y[seen], Zflat[te]).items():
        metrics[k] = _metrics(cfg, prep.y[te], v, prep.raw[te])
    if out is not None:
        model.save(out / f"fold_{f:02d}.pt", {"fold": f, "n_train": len(tr), "n_val": len(va),
                                             "n_test": len(te), "curve": curve})
    imp = _importance(cfg, model, prep, te, seed)
    return {
        "metrics": metrics, "epochs": len(curve),
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
            "epochs": len(curve), "curve": curve, "sources": table.sources}
    model.save(out / "model.pt", info)
    atomic_write_text(out / "train.json", json.dumps(info, indent=1))
    return info


def _load_checked(config, overrides) -> DescriptorConfig:
    from .config import is_descriptor_config, load_descriptor_config

    if not is_descriptor_config(config):
        raise HitrankError(f"--data needs a descriptor config (branch: descriptors, see "
                           f"configs/descriptors/); {str(config)!r} is not one")
    return load_descriptor_config(config, overrides)


def cv_command(config, overrides=(), *, data, out: str | os.PathLike, progress: bool = False) -> dict:
    """``hitrank cv --data TABLE`` with a descriptor config; returns ``{"kind", "summary"}``."""
    from .table import read_table

    cfg = _load_checked(config, overrides)
    return {"kind": "descriptor", "summary": run_cv(cfg, read_table(data), out, progress=progress)}


def train_command(config, overrides=(), *, data, out: str | os.PathLike) -> dict:
    """``hitrank train --data TABLE`` with a descriptor config; returns ``{"kind", "info"}``."""
    from .table import read_table

    cfg = _load_checked(config, overrides)
    return {"kind": "descriptor", "info": train_table(cfg, read_table(data), out)}
