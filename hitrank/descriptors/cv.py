"""The descriptor CV protocol: folds (or one holdout split), one model per fold, baselines,
metrics, permutation importance and the run folder.

One fold: the training rows are split into train / validation (stratified for classifiers,
or the latest ``data.order_column`` value, :func:`split_val`); the scaler, the learner
(:mod:`.fitting`) and its calibration are fitted there; the test rows are scored once.
Baselines (majority / mean, logistic / ridge, histogram gradient boosting and a random forest,
:func:`hitrank.descriptors.evaluate.baselines`) see exactly the same rows and inputs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import HitrankError
from ..fileio import atomic_write_text, strict_json
from ..runinfo import check_reuse, write_run_info
from .config import DescriptorConfig
from .evaluate import (
    CLASSIFY_METRICS,
    REGRESS_METRICS,
    baselines,
    classification_metrics,
    regression_metrics,
    sklearn,
)
from .fitting import fit_any, network_scores, refit_any, val_score
from .learners import learner
from .model import DescriptorModel
from .prepare import Prepared, Scaler, log_left_out, model_columns, network_inputs, prepare
from .table import DescriptorTable, numeric_column, require_columns

log = logging.getLogger(__name__)


def start_run(cfg: DescriptorConfig, out: str | os.PathLike, command: str) -> Path:
    """Create the run folder ``out`` with its ``config.yaml`` and ``run.json``."""
    out = Path(out)
    check_reuse(out, "descriptor", command, cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_run_info(out, "descriptor", command, name=cfg.name)
    return out


def _val_how(cfg: DescriptorConfig) -> str:
    """``cv.val_split`` with ``auto`` resolved: latest for a holdout split, else random."""
    if cfg.cv.val_split == "auto":
        return "latest" if cfg.cv.split == "holdout" else "random"
    return cfg.cv.val_split


def split_val(cfg: DescriptorConfig, idx: np.ndarray, y: np.ndarray, seed: int,
              order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
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


def train_one(cfg: DescriptorConfig, prep: Prepared, train_idx: np.ndarray, seed: int,
              where: str = "the table"):
    """Fit scaler, learner and calibration on the rows ``train_idx`` (split by :func:`split_val`;
    refitted on both parts when validating on the latest rows). Returns ``(model, curve,
    (tr, va, scaler, Z))``: the :class:`DescriptorModel`, the per-epoch / per-round curve, the
    training and validation rows, the scaler and the network inputs of every row.

    Raises a HitrankError naming ``where`` (e.g. ``fold 2``) when a classifier's training part
    has no hits or no non-hits: nothing could be learnt or balanced from it.
    """
    tr, va = split_val(cfg, train_idx, prep.y, seed, prep.order)
    _check_training_part(cfg, prep.y[tr], prep.y[va], where)
    scaler = Scaler.fit(model_columns(cfg, prep)[0][tr])
    y_std = (0.0, 1.0)
    if cfg.data.task == "regress":
        y_std = (float(np.mean(prep.y[tr])), float(np.std(prep.y[tr]) or 1.0))
    Z = network_inputs(cfg, prep, scaler, y_std)
    yz = (prep.y - y_std[0]) / y_std[1]
    parts, curve = fit_any(cfg, Z[tr], yz[tr], Z[va], yz[va], seed)
    if _val_how(cfg) == "latest":  # chosen on the latest decade: now learn from it too
        both = np.sort(np.concatenate([tr, va]))
        parts = refit_any(cfg, parts, Z[both], yz[both])
    return DescriptorModel(cfg, prep.names, scaler, y_std, parts), curve, (tr, va, scaler, Z)


def _check_training_part(cfg: DescriptorConfig, ytr: np.ndarray, yva: np.ndarray, where: str) -> None:
    """A classifier's training part must hold hits and non-hits (the validation part took
    some of each first)."""
    if cfg.data.task != "classify":
        return
    n_hit, n_other = int(np.sum(ytr == 1)), int(np.sum(ytr == 0))
    if n_hit and n_other:
        return
    raise HitrankError(
        f"the training part of {where} has {n_hit} hit(s) and {n_other} non-hit(s) "
        f"({cfg.data.target!r}; the validation part took {int(np.sum(yva == 1))} hit(s)); a "
        "classifier needs both: give more rows"
        + (" or a higher data.keep_hits" if cfg.data.keep_hits < 1 else "")
        + " (in cross-validation: fewer folds, --folds / cv.folds)")


def _metrics(cfg: DescriptorConfig, y: np.ndarray, pred: np.ndarray, raw: np.ndarray) -> dict:
    """The task's metrics of predictions ``pred`` (n,) against ``y`` (n,) (``raw``: nDCG gains)."""
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


def _importance(cfg: DescriptorConfig, model: DescriptorModel, prep: Prepared, idx: np.ndarray,
                seed: int) -> np.ndarray | None:
    """Permutation importance (scikit-learn) of each input column on rows ``idx``.

    The importance of a column is the drop in the validation score (ROC-AUC, Spearman or
    -MSE, see :func:`hitrank.descriptors.fitting.val_score`) when that column is shuffled. Not
    computed for learners that read sequences.
    """
    if learner(cfg.model.name).sequences:
        return None
    from sklearn.inspection import permutation_importance

    class _Frozen:  # the fitted network as scikit-learn sees it: raw columns in, scores out
        def fit(self, X, y):
            return self

        def predict(self, X):
            return network_scores(model.parts["model"], model.scaler.transform(X))

    X, _ = model_columns(cfg, prep)
    yz = (prep.y[idx] - model.y_std[0]) / model.y_std[1]
    res = permutation_importance(_Frozen(), X[idx], yz, n_repeats=3, random_state=seed,
                                 scoring=lambda est, Xs, ys: val_score(cfg, est.predict(Xs), ys))
    return res.importances_mean


def run_cv(cfg: DescriptorConfig, table: DescriptorTable, out: str | os.PathLike,
           progress: bool = False, save_models: bool = True) -> dict:
    """Cross-validate (or hold out) a descriptor model; writes the run folder and returns the summary.

    Files: ``fold_XX.pt`` (checkpoints), ``folds.csv`` (model and baseline metrics per fold),
    ``predictions.csv``, ``importance.csv`` / ``importance.png``, ``summary.json``,
    ``config.yaml``. Folds already in the folder (``fold_XX.json``) are reused.
    """
    from tqdm import tqdm

    out = start_run(cfg, out, "cv")
    t0 = time.perf_counter()
    prep, problems = prepare(cfg, table)
    log_left_out(problems)
    tests = splits(cfg, prep, table)
    n = len(prep.y)
    fold_rows, pred_rows, importances, choices = [], [], [], []
    names = model_columns(cfg, prep)[1]
    for f, te in enumerate(tqdm(tests, desc=cfg.name, unit="fold", disable=not progress)):
        done = out / f"fold_{f:02d}.json"
        # a fold is done when its record (and its checkpoint, when models are saved) is there
        if done.is_file() and (not save_models or (out / f"fold_{f:02d}.pt").is_file()):
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
    atomic_write_text(out / "summary.json", strict_json(summary, indent=1))
    return summary


def _run_fold(cfg: DescriptorConfig, prep: Prepared, te: np.ndarray, f: int, out: Path | None) -> dict:
    """Train on every row but ``te``, test on ``te``; the fold's record (``fold_XX.json``)."""
    seed = cfg.train.seed * 1000 + f
    train_idx = np.setdiff1d(np.arange(len(prep.y)), te)
    model, curve, (tr, va, scaler, Z) = train_one(cfg, prep, train_idx, seed, where=f"fold {f}")
    pred = model.predict(prep)[te]  # inputs of all rows: history looks at earlier rows
    metrics = {cfg.name: _metrics(cfg, prep.y[te], pred, prep.raw[te])}
    Zflat = Z.reshape(len(Z), -1)
    # the trees read the same inputs unstandardised (NaN kept), or the flattened sequences
    R = Zflat if learner(cfg.model.name).sequences else model_columns(cfg, prep)[0]
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
    """``importance.png``: the 20 most important inputs, when matplotlib is installed."""
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
