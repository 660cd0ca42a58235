"""Cross-validation (paper protocol) and single-model training, from a config.

Per fold: the target transform is fitted on the training songs; every grid point (w, m) is
trained with early stopping on the validation chunk; the grid point (and, for A/B + artist,
the fusion weight) with the best validation ``cv.select_metric`` is kept; only then is the
test chunk scored. A run folder holds::

    config.yaml      the resolved config
    folds.csv        test metrics per fold (plus the chosen w, m, fusion weight)
    curves.csv       training curves (fold, member, grid point, epoch, losses, lr)
    predictions.csv  test-fold predictions of every song
    summary.json     mean and std of each metric over folds, time, corpus size
    fold_XX.pt       the chosen model of each fold (checkpoint)
    resume/          end-of-epoch training states of the fold in progress (deleted when done)

Finished folds are skipped when a run is restarted with the same config, and the fold that
was interrupted continues from its last finished epoch: the result equals an uninterrupted
run's (tested on CPU).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from . import ood
from .bank import FitJob, fit_many
from .checkpoint import save_checkpoint
from .config import Config, check_available, config_from_dict, dump_config
from .data import Dataset, check_fold_sizes, load_dataset, make_folds
from .distributed import SINGLE, Context, barrier, my_folds
from .engines import get_engine
from .errors import ConfigError, HitrankError, StaleRunError
from .features import FeatureParams
from .fileio import atomic_write_text, strict_json
from .metrics import METRICS
from .models import build
from .runinfo import check_reuse, read_run_info, rows_fingerprint, write_run_info
from .runtime import pick_device
from .store import FeatureStore
from .targets import Target, check_differ, check_scores
from .train import FitResult, predict_all, ranked_last, reduced_precision, scored
from .uncertainty import fold_summary, pooled_metrics
from .whole_song import whole_songs

log = logging.getLogger(__name__)

#: ``select_metric: val_loss`` compares grid points by their validation MSE: the training
#: losses of different w include different amounts of ranking hinge, so they are not comparable
SELECTION_KEY = {"val_loss": "val_mse"}
HIGHER_IS_BETTER = {"val_mse": False}
SUMMARY_METRICS = METRICS + ("kendall_all", "spearman_all")


def _grid(cfg: Config, sampling: str) -> list[tuple[float, float | None, float | None]]:
    """Grid points (w, margin, mu); mu is None without the tag branch."""
    mus = cfg.tags.mu if cfg.features.tags else (None,)
    if sampling == "none":
        return [(0.0, None, mu) for mu in mus]
    return list(itertools.product(cfg.pairs.w, cfg.pairs.margin, mus))


def _better(metric: str, a: float, b: float) -> bool:
    """Whether validation value ``a`` beats ``b`` (NaN never wins)."""
    if not np.isfinite(a):
        return False
    if not np.isfinite(b):
        return True
    return a < b if not HIGHER_IS_BETTER.get(metric, True) else a > b


@dataclass
class FoldPlan:
    """What one fold trains: the jobs of every member and grid point, and what they are."""

    fold: int
    tr: np.ndarray
    va: np.ndarray
    te: np.ndarray
    target: Target
    entries: list = field(default_factory=list)  # (member, grid index, w, margin, mu, FitJob)


def plan_fold(cfg: Config, ds: Dataset, fold: int, tr, va, te, seed: int, resume: Path | None,
              tags: bool) -> FoldPlan:
    """The models a fold trains: every grid point (w, margin, mu) of its member(s) (the A/B
    and artist members of ``ab_artist``), each a :class:`~hitrank.bank.FitJob` with its own
    seed and resume file (an interrupted fold continues from its last finished epoch)."""
    plan = FoldPlan(fold, tr, va, te, Target.fit(cfg.train.target, ds.scores[tr], ds.song_ids[tr]))
    sampling = cfg.pairs.sampling
    members = [("ab", "ab", seed), ("artist", "artist", seed + 7)] if sampling == "ab_artist" \
        else [(sampling, sampling, seed)]
    for member, member_sampling, member_seed in members:
        for g, (w, m, mu) in enumerate(_grid(cfg, member_sampling)):
            state = resume / f"{member}_grid{g}.state" if resume is not None else None
            job = FitJob(tr, va, plan.target, member_sampling, w, m, mu if tags else None,
                         member_seed + 1000 * g, state)
            plan.entries.append((member, g, w, m, mu, job))
    return plan


def _choose(cfg: Config, ds: Dataset, plan: FoldPlan, results: list[FitResult]):
    """Keep each member's grid point with the best validation metric (and, for A/B + artist,
    the fusion weight); returns (members [(weight, FitResult)], curves, chosen dict)."""
    metric = SELECTION_KEY.get(cfg.cv.select_metric, cfg.cv.select_metric)
    curves, best = [], {}
    for (member, g, w, m, mu, _), res in zip(plan.entries, results, strict=True):
        curves += [{"member": member, "grid": g, "w": w, "margin": m, "mu": mu, **c} for c in res.curves]
        log.debug("%s w=%s m=%s mu=%s: val %s=%.4f (epoch %d)", member, w, m, mu, metric,
                  res.val_metrics[metric], res.best_epoch)
        if member not in best or _better(metric, res.val_metrics[metric], best[member].val_metrics[metric]):
            best[member] = res
    if cfg.pairs.sampling != "ab_artist":
        res = best[cfg.pairs.sampling]
        return [(1.0, res)], curves, {"w": res.w, "margin": res.margin, "mu": res.mu, "fusion": None}
    ab, art = best["ab"], best["artist"]
    best_a, best_val = None, None
    for a in cfg.pairs.fusion:
        pred = a * ab.val_pred + (1 - a) * art.val_pred
        val = scored(ds.scores[plan.va], pred, cfg.cv.top_fraction)
        val["val_mse"] = float(np.mean((pred - plan.target.transform(ds.scores[plan.va])) ** 2))
        if best_val is None or _better(metric, val[metric], best_val):
            best_a, best_val = a, val[metric]
    chosen = {"w": ab.w, "margin": ab.margin, "mu": ab.mu, "fusion": best_a,
              "artist_w": art.w, "artist_margin": art.margin, "artist_mu": art.mu}
    return [(best_a, ab), (1 - best_a, art)], curves, chosen


def train_plans(cfg: Config, ds: Dataset, X, T, plans: list[FoldPlan], ctx: Context = SINGLE) -> list:
    """Train the jobs of the given folds (banked when ``train.bank`` says so) and choose each
    fold's models; returns one (members, curves, chosen) per plan."""
    jobs = [e[-1] for p in plans for e in p.entries]
    songs = None
    if cfg.train.window_loss > 0:  # whole-song training (hitrank.whole_song)
        stride = int(getattr(build(cfg.model.name, **cfg.model.kwargs), "frame_stride", 0))
        used = np.unique(np.concatenate([np.concatenate([j.train_idx, j.val_idx]) for j in jobs]))
        songs = whole_songs(ds.whole, ds.features, ds.params, cfg.features.contrast, stride, X.device,
                            used=used)
    if ctx.writes:
        for job in jobs:
            if job.resume is not None:
                job.resume.parent.mkdir(parents=True, exist_ok=True)
    results = fit_many(cfg, X, ds.scores, ds.artists, jobs, T=T, bank=cfg.train.bank, ctx=ctx, songs=songs)
    out, start = [], 0
    for p in plans:
        out.append(_choose(cfg, ds, p, results[start: start + len(p.entries)]))
        start += len(p.entries)
    return out


def group_column(cfg: Config) -> str:
    """The column whose groups stay on one side of every split: ``cv.group_by``, ``artist``
    for the old ``cv.artist_aware: true``, '' for the paper's song-by-song folds."""
    return cfg.cv.group_by or ("artist" if cfg.cv.artist_aware else "")


def fold_groups(cfg: Config, ds: Dataset) -> np.ndarray | None:
    """The group of each song ``(n,)`` for the folds, or None (songs one by one).

    ``artist`` comes with every dataset; another column must have been read from the labels
    CSV into ``ds.columns`` (:func:`hitrank.commands.load_experiment` does it for ``--labels``).
    """
    column = group_column(cfg)
    if not column:
        return None
    if column == "artist":
        return ds.artists
    if column not in ds.columns:
        raise ConfigError(f"cv.group_by={column!r}: the songs' {column!r} column was not read; a feature "
                          "store records only the artist: give the labels CSV with that column (--labels)")
    return ds.columns[column]


def folds_of(cfg: Config, ds: Dataset) -> list:
    """The config's k folds of the dataset: (train, validation, test) index arrays per fold
    (whole groups of :func:`fold_groups` in one chunk; the same songs whichever process asks).
    Chunks too small to rank are refused (:func:`~hitrank.data.check_fold_sizes`).
    """
    return check_fold_sizes(make_folds(len(ds), cfg.cv.folds, cfg.cv.fold_seed, groups=fold_groups(cfg, ds),
                                       ids=ds.song_ids))


def dataset_parts(cfg: Config) -> dict:
    """What :func:`~hitrank.data.load_dataset` must load beside the features for this config:
    the contrast windows (``train.contrast``, stacked under the features) and the whole-song
    log-mels (``train.window_loss``, which scores contrast windows on the whole song)."""
    whole = cfg.train.window_loss > 0
    return {"contrast": cfg.train.contrast > 0 and not whole, "whole": whole}


def prepare(cfg: Config, ds: Dataset, ctx: Context = SINGLE, params: FeatureParams | None = None
            ) -> tuple[torch.device, torch.Tensor, torch.Tensor | None]:
    """Check the config against the data, then put all features (and tags) on the device
    (under torchrun: this rank's device). With ``train.contrast`` the features of the ``n``
    songs are followed by those of their contrast windows: ``X`` is ``(2n, n_mels, n_frames)``
    (not in whole-song training, ``train.window_loss``, which reads them off the whole song).

    ``params``: the config's feature parameters when the caller has checked them already
    (:func:`~hitrank.config.check_available`); else they are checked here.
    """
    want = (params or check_available(cfg)).to_dict()
    if not cfg.features.tags:  # a store with tags also serves the audio-only rows
        want["tags"], want["tagger"] = ds.params.get("tags", ""), ds.params.get("tagger", "")
    for key in ("window", "log", "segment", "highlighter", "tags", "tagger"):
        if ds.params.get(key, "") != want[key]:
            where = "tags.tagger" if key == "tagger" else f"features.{key}"
            raise ConfigError(f"the config asks for features with {key}={want[key]!r} but the store was "
                              f"made with {key}={ds.params.get(key)!r}; re-extract, or change {where}")
    if cfg.pairs.sampling in ("artist", "ab_artist"):
        counts = pd.Series(ds.artists[ds.artists != ""]).value_counts()
        if not (counts > 1).any():
            raise ConfigError(f"pairs.sampling={cfg.pairs.sampling!r} needs artists with several songs; "
                              "the labels have none (add an 'artist' column)")
    check_differ(ds.scores, f"the labels of the store {ds.source!r}" if ds.source else "the dataset")
    check_scores(cfg.train.target, ds.scores, ds.song_ids)  # fails early, naming the songs
    device = pick_device(ctx.device or cfg.train.device)
    T = torch.from_numpy(ds.tags).to(device) if cfg.features.tags else None
    feats = ds.features
    if cfg.train.window_loss > 0 and ds.whole is None:
        where = f"the store {ds.source!r}" if ds.source else "the dataset"
        raise ConfigError(f"train.window_loss={cfg.train.window_loss} trains on whole songs, but {where} "
                          "holds no whole-song log-mels (made without features.whole_song); extract "
                          "into a new store with features.whole_song: true (--labels LABELS.csv "
                          "instead of --store does it)")
    if cfg.train.window_loss > 0 and ctx.ddp:
        raise ConfigError(f"train.window_loss={cfg.train.window_loss} trains each model in one process: "
                          "run it without torchrun --distribute data (fold-parallel torchrun works)")
    if dataset_parts(cfg)["contrast"]:  # rows n..2n-1: the songs' contrast windows (hitrank.train.Training)
        if ds.contrast is None:
            raise ConfigError(f"train.contrast={cfg.train.contrast} needs the songs' contrast windows, "
                              "but the store holds none (or load_dataset was not asked for them); set "
                              "features.contrast: median (or lowest) with segment hl30, which extracts "
                              "them into a new store")
        if ds.params.get("contrast", "") != want["contrast"]:
            raise ConfigError(f"the config asks for contrast windows features.contrast={want['contrast']!r} "
                              f"but the store holds {ds.params.get('contrast')!r} ones; re-extract, "
                              "or change features.contrast")
        feats = np.concatenate([ds.features, ds.contrast])
    return device, torch.from_numpy(np.ascontiguousarray(feats)).to(device), T


def _members(members):
    return [(wt, r.name, r.kwargs, r.model) for wt, r in members]


def _same_config(cfg_file: Path, cfg: Config) -> bool:
    """Whether the run folder's config.yaml is ``cfg`` (compared as configs, so a config written
    before a default was spelled out, e.g. ``tags.tagger: auto``, still matches)."""
    try:
        return config_from_dict(yaml.safe_load(cfg_file.read_text())) == cfg
    except (HitrankError, yaml.YAMLError, TypeError):
        return False


def run_cv(cfg: Config, ds: Dataset, out: str | os.PathLike, progress: bool = True,
           ctx: Context = SINGLE, notes: dict | None = None, params: FeatureParams | None = None
           ) -> dict | None:
    """k-fold cross-validation; writes the run folder and returns the summary.

    Under torchrun (``ctx``), every rank calls this: in ``data`` mode all ranks train every
    fold together and rank 0 writes; in ``folds`` mode each rank runs and writes its own
    folds. Rank 0 returns the summary once every fold is done, the other ranks None.
    ``params``: the config's checked feature parameters, if the caller has them (see
    :func:`prepare`).
    """
    from tqdm import tqdm

    out = Path(out)
    if ctx.main:
        check_reuse(out, "spectrogram", "cv", cfg.name)
    params = params or check_available(cfg)
    device, X, T = prepare(cfg, ds, ctx, params)
    cfg_text = dump_config(cfg)
    cfg_file = out / "config.yaml"
    folds = folds_of(cfg, ds)
    # a fold is done when its record, predictions and checkpoint are there and whole (else retrained)
    done = []
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        if cfg_file.exists() and list(out.glob("fold_*.json")) and not _same_config(cfg_file, cfg):
            raise StaleRunError(f"{str(out)!r} holds a run with another config; use another --out")
        finished = {f: t for f in range(len(folds)) if (t := _finished_fold(out, f)) is not None}
        _check_same_songs(out, ds, folds, finished)
        done = list(finished)
        atomic_write_text(cfg_file, cfg_text)
        write_run_info(out, "spectrogram", "cv", name=cfg.name, store=_store_path(ds),
                       songs=songs_fingerprint(ds))
    barrier(ctx)  # the run folder exists and holds this config before any rank looks at it
    if not ctx.main:
        done = [f for f in range(len(folds)) if _finished_fold(out, f, warn=False) is not None]
    todo = [f for f in my_folds(ctx, len(folds)) if f not in done]
    barrier(ctx)  # every rank has its list before any fold is marked done
    t0 = time.time()
    bar = tqdm(total=len(todo), desc=cfg.name, unit="fold", disable=not (progress and ctx.main))
    processes = fold_processes(cfg, ds, device, ctx, len(todo))
    if processes > 1:  # single-threaded worker processes, one fold each (CPU)
        log.info("%s: %d folds in %d processes", cfg.name, len(todo), processes)
        with get_engine("local", processes) as run:
            jobs = [(cfg.to_dict(), params.to_dict(), ds.source, f, str(out), folds) for f in todo]
            for _ in run(_fold_job, jobs, chunksize=1):
                bar.update()
    else:
        # on a GPU the folds train together in model banks; elsewhere fold by fold (the bank,
        # if it pays on this CPU, then holds one fold's grid points and members)
        together = (device.type == "cuda" and cfg.train.bank != "off" and not ctx.ddp
                    and not cfg.train.contrast and not cfg.train.window_loss)
        for group in [todo] if together and todo else [[f] for f in todo]:
            run_folds(cfg, ds, X, T, device, out, group, folds, ctx)
            bar.update(len(group))
    bar.close()
    barrier(ctx)  # all folds are written
    if not ctx.main:
        return None
    if (out / "resume").is_dir() and not any((out / "resume").iterdir()):
        (out / "resume").rmdir()  # every fold finished: nothing left to resume
    seconds = time.time() - t0 + (_earlier_seconds(out) if done else 0.0)  # resumed: all invocations
    return summarize(cfg, out, len(ds), seconds, device, max(processes, ctx.world), notes)


def _finished_fold(out: Path, f: int, warn: bool = True) -> pd.DataFrame | None:
    """Fold ``f``'s test predictions (``pred_XX.csv``) when the fold is finished in the run
    folder ``out``, else None: its record (``fold_XX.json``, a JSON mapping with ``n_test``),
    test predictions (its columns, one row per test song) and checkpoint (``fold_XX.pt``, a
    whole torch zip archive) are all there and readable. A damaged one (a truncated copy, a
    disk that filled up) is named in a warning (``warn``), and the fold is trained again."""
    files = [out / f"{stem}_{f:02d}.{ext}" for stem, ext in (("fold", "json"), ("pred", "csv"), ("fold", "pt"))]
    if not all(p.exists() for p in files):
        return None
    record, pred, ckpt = files
    try:
        row = json.loads(record.read_text())
        table = _read_predictions(pred)
        whole = (isinstance(row, dict) and zipfile.is_zipfile(ckpt) and len(table) == row.get("n_test")
                 and {"song_id", "fold", "hit_score", "pred_z", "pred"} <= set(table.columns))
    except (OSError, ValueError, pd.errors.ParserError, HitrankError):
        whole = False
    if not whole and warn:
        log.warning("%s: fold %d's files (%s) are damaged; training the fold again",
                    out, f, ", ".join(p.name for p in files))
    return table if whole else None


def _check_same_songs(out: Path, ds: Dataset, folds: list, finished: dict) -> None:
    """Refuse to resume in ``out`` when a finished fold (``finished``: fold -> its test
    predictions, :func:`_finished_fold`) tested other songs, or the same songs with other hit
    scores, than the fold of the same number does now (a store or labels CSV that changed
    since): its model and metrics belong to another run. Folds not finished are trained
    again."""
    for f, before in finished.items():
        te = folds[f][2]
        now = pd.DataFrame({"song_id": ds.song_ids[te], "hit_score": ds.scores[te]})
        a, b = before.sort_values("song_id"), now.sort_values("song_id")
        same = (list(a.song_id) == list(b.song_id)
                and np.allclose(a.hit_score.to_numpy(float), b.hit_score.to_numpy(float), rtol=1e-9))
        if not same:
            gone, new = sorted(set(a.song_id) - set(b.song_id)), sorted(set(b.song_id) - set(a.song_id))
            what = ("other hit scores" if list(a.song_id) == list(b.song_id)
                    else f"other songs ({len(a)} test songs then, {len(b)} now; e.g. "
                    + (f"{gone[0]!r} gone" if gone else f"{new[0]!r} new") + ")")
            raise StaleRunError(
                f"{str(out)!r} holds a run whose fold {f} tested {what} than this one's: the "
                f"songs or labels changed since; use another --out (or delete the folder to "
                f"start again)")
    recorded = (read_run_info(out) or {}).get("songs")
    if recorded and list(out.glob("fold_*.json")) and recorded != songs_fingerprint(ds):
        raise StaleRunError(
            f"{str(out)!r} holds a run trained on other songs or hit scores than this one's (a "
            f"song of a fold not yet finished changed); use another --out (or delete the folder "
            f"to start again)")


def songs_fingerprint(ds: Dataset) -> str:
    """The songs' ids and hit scores as :func:`hitrank.runinfo.rows_fingerprint`: recorded in
    ``run.json`` (``songs``) so that a resumed run checks it trains on what it started with."""
    return rows_fingerprint(zip(map(str, ds.song_ids), map(repr, ds.scores.tolist()), strict=True))


def _read_predictions(path: Path) -> pd.DataFrame:
    """A fold's ``pred_XX.csv`` with its song ids as written (``001`` stays ``001``, ``NA`` a
    name, not a missing value)."""
    return pd.read_csv(path, dtype={"song_id": str}, keep_default_na=False, na_values={"song_id": []})


def _earlier_seconds(out: Path) -> float:
    """The training time an earlier invocation recorded in ``out/summary.json`` (a resumed run
    reports the time of all its invocations); 0 when there is none or it is unreadable."""
    previous = out / "summary.json"
    if not previous.exists():
        return 0.0
    try:
        return float(json.loads(previous.read_text()).get("seconds", 0.0))
    except (ValueError, TypeError, AttributeError):
        log.warning("%s: unreadable; its training time is not carried over", previous)
        return 0.0


def run_folds(cfg: Config, ds: Dataset, X, T, device, out: Path, group: list[int], folds: list,
              ctx: Context = SINGLE) -> list[dict]:
    """Train the folds of ``group`` together (one model bank when ``train.bank`` allows),
    score their test chunks and write each fold's files; returns the fold rows."""
    tg = time.time()
    plans = [plan_fold(cfg, ds, f, *folds[f], cfg.train.seed + 100 * f, out / "resume" / f"fold_{f:02d}",
                       T is not None) for f in group]
    rows = []
    for plan, (members, curves, chosen) in zip(plans, train_plans(cfg, ds, X, T, plans, ctx), strict=True):
        f, tr, va, te, target = plan.fold, plan.tr, plan.va, plan.te, plan.target
        z = sum(wt * predict_all(ctx, r.model, X, te, reduced_precision(cfg, device), T)
                for wt, r in members)
        metrics = scored(ds.scores[te], target.inverse(z), cfg.cv.top_fraction)
        row = {"fold": f, "n_train": len(tr), "n_val": len(va), "n_test": len(te), **chosen,
               **{k: metrics[k] for k in SUMMARY_METRICS}, "n_top": metrics["n_top"],
               "best_epoch": members[0][1].best_epoch,
               "seconds": round((time.time() - tg) / len(group), 2)}
        if ctx.writes:
            _write_fold(out, f, row, members, target, cfg, ds, te, z, curves, ood.reference(X, tr))
            log.info("%s fold %d: nDCG %.4f  Kendall %.4f  Spearman %.4f  (%.0f s)", cfg.name, f,
                     row["ndcg"], row["kendall"], row["spearman"], row["seconds"])
        rows.append(row)
    return rows


def fold_processes(cfg: Config, ds: Dataset, device, ctx: Context, n_todo: int) -> int:
    """How many processes train the folds: ``cv.processes``, or with 0 (auto) one
    single-threaded process per CPU core on a CPU-only run of several folds from a store (two
    one-thread processes beat one two-thread process at this model's small steps); 1 = this
    process. Results do not depend on the number of processes beyond float rounding of the
    thread count (a fold is seeded on its own); each process loads the store itself."""
    want = cfg.cv.processes
    if want == 1 or device.type != "cpu" or ctx.world > 1 or n_todo < 2 or not ds.source:
        return 1
    return min(n_todo, want if want > 1 else (os.cpu_count() or 1))


@functools.lru_cache(maxsize=1)
def _worker_data(cfg_text: str, params_text: str, source: str):
    """A worker's dataset and device tensors, loaded once per process (the config and its
    feature parameters were checked by the parent)."""
    cfg = config_from_dict(yaml.safe_load(cfg_text))
    ds, _ = load_dataset(FeatureStore.open(source), **dataset_parts(cfg))
    return cfg, ds, *prepare(cfg, ds, params=FeatureParams.from_dict(yaml.safe_load(params_text)))


def _fold_job(args) -> dict:
    """One fold in a worker process (see :func:`fold_processes`)."""
    cfg_dict, params, source, f, out, folds = args  # the folds made once, by the parent
    cfg, ds, device, X, T = _worker_data(yaml.safe_dump(cfg_dict), yaml.safe_dump(params), source)
    return run_folds(cfg, ds, X, T, device, Path(out), [f], folds)[0]


def _write_fold(out: Path, f: int, row: dict, members, target, cfg: Config, ds: Dataset, te, z,
                curves, ood_ref: dict) -> None:
    """A finished fold's files; its ``fold_XX.json`` is written last and marks it done."""
    save_checkpoint(out / f"fold_{f:02d}.pt", _members(members), target, cfg.to_dict(),
                    ds.params, {"fold": f, "test_metrics": row, "ood": ood_ref})
    pd.DataFrame({"song_id": ds.song_ids[te], "fold": f, "hit_score": ds.scores[te],
                  "pred_z": z, "pred": target.inverse(z)}).to_csv(out / f"pred_{f:02d}.csv", index=False)
    pd.DataFrame([{"fold": f, **c} for c in curves]).to_csv(out / f"curves_{f:02d}.csv", index=False)
    atomic_write_text(out / f"fold_{f:02d}.json", json.dumps(row))
    shutil.rmtree(out / "resume" / f"fold_{f:02d}", ignore_errors=True)  # no longer needed


def summarize(cfg: Config, out: Path, n_songs: int, seconds: float, device, processes: int = 1,
              notes: dict | None = None) -> dict:
    """Gather fold files into folds.csv, curves.csv, predictions.csv and summary.json.

    The summary holds two views of the same test predictions: the mean, sample std (ddof=1)
    and standard error over folds of each fold's metrics (``*_mean``, ``*_std``, ``*_se``:
    the paper's protocol), and the pooled out-of-fold metrics (every song scored once by the
    fold model that never saw it) with bootstrap 95% intervals (``pooled``, ``pooled_ci``);
    ``warnings`` says when a fold's top fraction is too small to mean anything;
    ``non_finite`` counts the test predictions that are NaN or inf (a diverged model: they are
    ranked last, and the metrics mean little).
    """
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("fold_*.json"))]
    folds = pd.DataFrame(rows)
    folds.to_csv(out / "folds.csv", index=False)
    for stem in ("curves", "pred"):
        read = _read_predictions if stem == "pred" else pd.read_csv
        parts = [read(p) for p in sorted(out.glob(f"{stem}_*.csv"))]
        if parts:
            name = "predictions.csv" if stem == "pred" else "curves.csv"
            pd.concat(parts).to_csv(out / name, index=False)
    pred = pd.read_csv(out / "predictions.csv")
    pooled = pooled_metrics(pred.hit_score.to_numpy(), ranked_last(pred.pred.to_numpy()),
                            pred.fold.to_numpy(), cfg.cv.top_fraction)
    for w in pooled["warnings"]:
        log.warning("%s: %s", cfg.name, w)
    per_fold = [fold_summary(folds[k]) for k in SUMMARY_METRICS]
    summary = {
        "name": cfg.name, "n_songs": n_songs, "folds": len(rows), "device": str(device),
        "processes": processes,
        "seconds": round(seconds, 1), "sampling": cfg.pairs.sampling, "segment": cfg.features.segment,
        "group_by": group_column(cfg) or "song",
        **{f"{k}_mean": float(folds[k].mean()) for k in SUMMARY_METRICS},
        **{f"{k}_std": float(np.nan_to_num(v["std"])) for k, v in zip(SUMMARY_METRICS, per_fold, strict=True)},
        **{f"{k}_se": float(np.nan_to_num(v["se"])) for k, v in zip(SUMMARY_METRICS, per_fold, strict=True)},
        "pooled": {k: pooled["pooled"][k] for k in (*METRICS, "kendall_all", "spearman_all", "n_top")},
        "pooled_ci": pooled["ci"], "ci_level": pooled["level"], "fold_n_top": pooled["fold_n_top"],
        "warnings": pooled["warnings"], "non_finite": int((~np.isfinite(pred.pred.to_numpy())).sum()),
        **(notes or {}),
    }
    atomic_write_text(out / "summary.json", strict_json(summary, indent=2))  # undefined: null
    return summary


def _store_path(ds: Dataset) -> str:
    """The training songs' feature store, recorded in run.json (``rank``'s nearest songs)."""
    return str(Path(ds.source).resolve()) if ds.source else ""


def run_train(cfg: Config, ds: Dataset, out: str | os.PathLike, ctx: Context = SINGLE,
              params: FeatureParams | None = None) -> dict | None:
    """Train one model: chunk 0 of the fold split validates, the rest trains (no test).

    Under torchrun every rank calls this (data-parallel); rank 0 writes and returns the
    summary, the other ranks None. ``params``: as in :func:`run_cv`.
    """
    out = Path(out)
    if ctx.main:
        check_reuse(out, "spectrogram", "train", cfg.name)
    device, X, T = prepare(cfg, ds, ctx, params)
    _, va, te = folds_of(cfg, ds)[-1]  # fold k-1 validates on chunk 0 and tests chunk k-1
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", dump_config(cfg))
        write_run_info(out, "spectrogram", "train", name=cfg.name, store=_store_path(ds))
    barrier(ctx)
    tr = np.setdiff1d(np.arange(len(ds)), va)
    t0 = time.time()
    plan = plan_fold(cfg, ds, -1, tr, va, te, cfg.train.seed, out / "resume", T is not None)
    (members, curves, chosen), = train_plans(cfg, ds, X, T, [plan], ctx)
    target = plan.target
    if not ctx.main:
        return None
    z_val = sum(wt * r.val_pred for wt, r in members)  # the reference of `rank` percentiles
    info = {"n_train": len(tr), "n_val": len(va), **chosen, "non_finite": int((~np.isfinite(z_val)).sum()),
            **{f"val_{k}": v for k, v in members[0][1].val_metrics.items()}}
    save_checkpoint(out / "model.pt", _members(members), target, cfg.to_dict(), ds.params,
                    {**info, "ood": ood.reference(X, tr)})
    shutil.rmtree(out / "resume", ignore_errors=True)
    pd.DataFrame(curves).to_csv(out / "curves.csv", index=False)
    pd.DataFrame({"song_id": ds.song_ids[va], "hit_score": ds.scores[va], "pred_z": z_val,
                  "pred": target.inverse(z_val)}).to_csv(out / "validation.csv", index=False)
    info["seconds"] = round(time.time() - t0, 1)
    atomic_write_text(out / "summary.json", strict_json(info, indent=2))
    return info
