"""Learning curves: how many labelled songs a user needs.

For each training size ``m`` the config's cross-validation is rerun with every outer fold's
training songs cut down to ``m`` (a random subset, the same seed for every size so that the
subsets grow), the test folds unchanged: every song is still scored once, by a model that saw
``m`` other songs. The pooled out-of-fold Spearman and nDCG@top, and with ``cv.within`` the
within-stratum Spearman, come with bootstrap intervals over songs, or over whole groups with
``cv.group_by`` (:mod:`hitrank.strata`).
A size between the smallest and the largest fold's training set is cut to each fold's
training set (``train_songs``, the mean per fold, says so). Sizes larger than the largest
fold's training set are run once, as one last row whose ``size`` is ``all`` (every fold trains
on all its training songs; none when that number is itself one of the sizes), with a warning
naming the sizes and that number: a learning curve cannot go past the songs there are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import strata
from ..data import check_fold_sizes, make_folds
from ..errors import ConfigError, ParameterError
from ..fileio import atomic_write_text, output_folder
from .config import TransferConfig, load_transfer_config
from .protocol import (
    Data,
    choose,
    fit_one,
    groups_of,
    is_transfer_config,
    load_data,
    predict_one,
    strata_of,
)

log = logging.getLogger(__name__)

ALL = "all"  # the size of the row whose folds train on all their training songs
CURVE_COLUMNS = ("size", "train_songs", "spearman", "spearman_lo", "spearman_hi", "ndcg", "ndcg_lo",
                 "ndcg_hi", "within_spearman", "within_lo", "within_hi", "within_thin", "learners")


def parse_sizes(text: str) -> list[int]:
    """``"50,100,150"`` -> [50, 100, 150] (positive, increasing); ParameterError otherwise."""
    try:
        sizes = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"--sizes {text!r}: expected comma-separated song counts, e.g. 50,100,150") from None
    if not sizes or min(sizes) < 5 or sizes != sorted(set(sizes)):
        raise ParameterError(f"--sizes {text!r}: expected increasing counts of at least 5 songs")
    return sizes


def curve_sizes(sizes: list[int], largest: int, songs: int, folds: int) -> list[tuple[int | str, int]]:
    """The rows a learning curve runs: ``(size label, songs per fold)``.

    Each size up to ``largest`` (the largest fold's training songs) is a row of its own; the
    sizes above it are run once, as a last row ``(ALL, largest)`` (none when ``largest`` is
    itself one of the sizes: that row already trains on all), and a warning names them and
    ``largest`` (of ``songs`` songs in ``folds`` folds).
    """
    rows = [(m, m) for m in sizes if m <= largest]
    over = [m for m in sizes if m > largest]
    if over:
        row = f"the row of size {largest}" if largest in sizes else f"one row of size '{ALL}'"
        log.warning("--sizes %s: with %d songs in %d folds a fold has at most %d training songs, so "
                    "a larger size trains on all of them: run once, as %s; label more songs or give "
                    "sizes up to %d", ",".join(map(str, over)), songs, folds, largest, row, largest)
        if largest not in sizes:
            rows.append((ALL, largest))
    return rows


def learning_curve(cfg: TransferConfig, data: Data, sizes: list[int], progress: bool = True) -> pd.DataFrame:
    """Metrics against the number of training songs (see the module docstring).

    Returns a DataFrame with columns :data:`CURVE_COLUMNS`, one row per size (``train_songs``:
    the mean number of training songs actually used per fold); the sizes above the largest
    fold's training set make one last row of size :data:`ALL` (:func:`curve_sizes`, with a
    warning). The within-stratum warnings of :func:`hitrank.strata.within_warnings`
    (the same folds and strata for every size) are logged once; ``within_thin`` names the
    strata whose songs mostly sit in fold x stratum cells too small to rank in (';'-joined:
    their within-stratum figures carry little information).
    """
    from tqdm import tqdm

    groups, s = groups_of(cfg, data), strata_of(cfg, data)
    n = len(data.y)
    splits = check_fold_sizes(make_folds(n, cfg.cv.folds, cfg.cv.fold_seed, groups=groups, ids=data.ids))
    rng = np.random.default_rng([cfg.train.seed, 31])
    orders = [rng.permutation(np.concatenate([tr, va])) for tr, va, _ in splits]  # one order per fold
    plan = curve_sizes(sizes, max(len(o) for o in orders), n, len(splits))
    rows = []
    bar = tqdm(total=len(plan) * len(splits), desc="learning curve", unit="fit", disable=not progress)
    for label, m in plan:
        pred, folds, used, learners = np.empty(n), np.empty(n, dtype=int), [], []
        for f, ((_, _, te), order) in enumerate(zip(splits, orders, strict=True)):
            train = np.sort(order[:m])
            used.append(len(train))
            name, *_ = choose(cfg, data.X[train], data.y[train], data.ids[train],
                                None if groups is None else groups[train],
                                None if s is None else s[train], cfg.train.seed + f,
                                None if data.weight is None else data.weight[train])
            learners.append(name)
            model = fit_one(cfg, name, data.X[train], data.y[train], data.ids[train], cfg.train.seed + f,
                            None if data.weight is None else data.weight[train])
            pred[te], folds[te] = predict_one(model, data.X[te]), f
            bar.update()
        ev = strata.evaluate(data.y, pred, folds, s, cfg.cv.top_fraction, groups=groups, ids=data.ids)
        if not rows:
            for warning in strata.within_warnings(ev["within"], cfg.cv.within or "stratum"):
                log.warning("%s: %s", cfg.name, warning)
        p, w = ev["pooled"], (ev["within"] or {}).get("mean", {})
        rows.append({"size": label, "train_songs": float(np.mean(used)), "spearman": p["spearman"],
                     "spearman_lo": p["spearman_ci"][0], "spearman_hi": p["spearman_ci"][1],
                     "ndcg": p["ndcg"], "ndcg_lo": p["ndcg_ci"][0], "ndcg_hi": p["ndcg_ci"][1],
                     "within_spearman": w.get("spearman", np.nan),
                     "within_lo": (w.get("spearman_ci") or [np.nan])[0],
                     "within_hi": (w.get("spearman_ci") or [np.nan, np.nan])[1],
                     "within_thin": ";".join(sorted((ev["within"] or {}).get("thin", {}))),
                     "learners": ";".join(sorted(set(learners)))})
        log.info("size %s (%.1f training songs per fold): Spearman %+.3f [%+.3f, %+.3f]", label,
                 float(np.mean(used)), p["spearman"], *p["spearman_ci"])
    bar.close()
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def write_curve(table: pd.DataFrame, out: str | os.PathLike, title: str = "") -> dict:
    """``out/learning_curve.csv`` and, with matplotlib installed, ``out/learning_curve.png``.

    Returns ``{"csv": path, "png": path or None, "note": why no plot}``.
    """
    out = output_folder(out, "a learning curve", ConfigError)
    atomic_write_text(out / "learning_curve.csv", table.to_csv(index=False))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {"csv": out / "learning_curve.csv", "png": None,
                "note": "no plot: matplotlib is not installed (pip install 'hitrank[plot]')"}
    fig, ax = plt.subplots(figsize=(6, 4))
    x = table["train_songs"]
    ax.errorbar(x, table["spearman"], yerr=[table["spearman"] - table["spearman_lo"],
                                            table["spearman_hi"] - table["spearman"]],
                marker="o", capsize=3, label="Spearman, all songs")
    if table["within_spearman"].notna().any():
        ax.errorbar(x + 1, table["within_spearman"], yerr=[table["within_spearman"] - table["within_lo"],
                                                           table["within_hi"] - table["within_spearman"]],
                    marker="s", capsize=3, label="Spearman within stratum")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("labelled training songs per fold")
    ax.set_ylabel("out-of-fold Spearman (95% interval)")
    ax.set_title(title or "learning curve")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)
    plt.close(fig)
    return {"csv": out / "learning_curve.csv", "png": out / "learning_curve.png", "note": ""}


def learning_curve_command(config, overrides=(), *, labels, sizes, out, store=None, workers: int = 1,
                           progress: bool = True) -> dict:
    """``hitrank learning-curve``: the table (also ``out/learning_curve.csv``) and the plot.

    Returns ``{"table": DataFrame, "csv", "png", "note", "songs", "failures", "left_out"}``
    (``failures``: (song_id, path, reason) of audio that could not be embedded; ``left_out``:
    (song_id, reason) of songs with no usable score or features).
    """
    if not is_transfer_config(config):
        raise ConfigError(f"{str(config)!r}: learning-curve runs transfer configs (branch: transfer, "
                          "e.g. --config real/auto); a spectrogram CNN needs thousands of songs")
    cfg = load_transfer_config(config, overrides)
    sizes = parse_sizes(sizes) if isinstance(sizes, str) else list(sizes)
    output_folder(out, "a learning curve", ConfigError, create=False)  # before any audio is decoded
    if (Path(out) / "run.json").exists():
        raise ConfigError(f"--out {str(out)!r} holds a run of `hitrank cv` or `train`: the learning curve's files "
                          "would be mixed into it; use another --out")
    data = load_data(cfg, labels, store, workers=workers, progress=progress)
    table = learning_curve(cfg, data, sizes, progress)
    files = write_curve(table, out, f"{cfg.name}: {len(data.y)} songs, {cfg.cv.folds} folds")
    return {"table": table, **files, "songs": len(data.y), "failures": data.failures,
            "left_out": [list(p) for p in data.problems]}
