"""Setting up and running a spectrogram experiment from a config and a data source.

What ``hitrank cv`` and ``hitrank train`` do for spectrogram configs, as library calls:
load and validate the config, join a torchrun process group when launched under torchrun,
find the features (a ``--store``, or a labels CSV extracted into a cache store first, by
rank 0 alone), load the dataset, then cross-validate or train and write the run folder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, check_available, feature_params, highlighter_checkpoint, load_config
from .data import Dataset, load_dataset
from .distributed import Context, barrier, setup, teardown
from .store import FeatureStore

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    """A config with its data, ready to run."""

    cfg: Config
    ds: Dataset
    ctx: Context
    problems: list = field(default_factory=list)  # (song_id, reason) left out of the dataset
    failures: list = field(default_factory=list)  # (song_id, path, reason) of a cache extraction
    notes: dict = field(default_factory=dict)  # what the run folder must say (e.g. highlighter overlap)


def load_experiment(config: str | os.PathLike | None, overrides: list[str] = (), *,
                    store: str | os.PathLike | None = None, labels: str | os.PathLike | None = None,
                    command: str = "cv", distribute: str = "auto", workers: int = 1,
                    progress: bool = True) -> Experiment:
    """Config + dataset (+ torchrun context) for ``cv`` or ``train``.

    Exactly one of ``store`` (a feature store made from a labels CSV) and ``labels`` (a
    labels CSV; its features are extracted into a cache store first, reused next time) names
    the data. Under torchrun only rank 0 extracts; the others wait for it.
    """
    from .extract import extract
    from .runtime import cached_store_path

    if (store is None) == (labels is None):
        raise ValueError("give exactly one of store and labels")
    cfg = load_config(config, overrides)
    check_available(cfg)
    ctx = setup(distribute, cfg.cv.folds if command == "cv" else None, cfg.train.device)
    if not ctx.main:  # one progress bar, one log and one summary: rank 0's
        progress = False
        logging.getLogger().setLevel(logging.WARNING)
    failures = []
    if store is None:
        params = feature_params(cfg)
        store = cached_store_path(labels, params)
        if ctx.main:
            rep = extract(labels, store, params, workers=workers, progress=progress,
                          highlighter=highlighter_checkpoint(cfg))
            failures = rep.failures
        barrier(ctx)
    opened = FeatureStore.open(store)
    ds, problems = load_dataset(opened)
    for sid, reason in problems:
        log.warning("song %r left out: %s", sid, reason)
    log.info("%d songs with features and scores", len(ds))
    notes = check_highlighter_overlap(cfg, opened, set(ds.song_ids))
    return Experiment(cfg, ds, ctx, problems, failures, notes)


def check_highlighter_overlap(cfg: Config, store: FeatureStore, song_ids: set) -> dict:
    """Refuse to evaluate on songs whose hit scores trained the attention highlighter that
    chose their HL-30 windows (test labels would leak into the features), unless
    ``cv.allow_highlighter_overlap``; then the run says so. Songs are matched by resolved
    audio path (the highlighter checkpoint records the paths it was trained on).

    Returns ``{"highlighter_overlap": n}`` when songs are shared and allowed, else ``{}``.
    """
    from .errors import ConfigError
    from .thumbnail import parse_highlighter_id

    kind, _ = parse_highlighter_id(store.params.highlighter) if store.params.highlighter else ("", "")
    if kind != "attention":
        return {}
    from .thumbnail.attention import load_highlighter

    info = load_highlighter(cfg.features.highlighter).info
    allowed = cfg.cv.allow_highlighter_overlap
    if "paths" not in info:
        if allowed:
            return {"highlighter_overlap": "unknown (highlighter trained before hitrank recorded its songs)"}
        raise ConfigError(f"{cfg.features.highlighter!r} does not record the songs it was trained on "
                          "(an older highlighter), so hitrank cannot check that no test song supervised "
                          "it; retrain it with `hitrank highlighter train`, or pass "
                          "--allow-highlighter-overlap to evaluate anyway")
    man = store.manifest
    ours = {str(Path(p).resolve()) for p, s in zip(man.path, man.song_id, strict=True) if s in song_ids}
    shared = ours & set(info["paths"])
    if not shared:
        return {}
    if not allowed:
        raise ConfigError(f"{len(shared)} of the {len(ours)} songs of this store supervised the attention "
                          f"highlighter {cfg.features.highlighter!r} (trained on {info.get('labels', '?')}): "
                          "their test labels chose their HL-30 windows; train the highlighter on another "
                          "corpus, or pass --allow-highlighter-overlap (the run will say so)")
    log.warning("%d songs supervised the highlighter and are evaluated anyway "
                "(--allow-highlighter-overlap)", len(shared))
    return {"highlighter_overlap": len(shared)}


def cv_command(config, overrides=(), *, out: str | os.PathLike, store=None, labels=None,
               distribute: str = "auto", workers: int = 1, progress: bool = True) -> dict:
    """``hitrank cv`` for a spectrogram config: the run folder, its report; returns a result
    dict (``summary`` None on non-zero torchrun ranks)."""
    from .cv import run_cv
    from .cvreport import load_run, write_cv_report

    exp = load_experiment(config, overrides, store=store, labels=labels, command="cv",
                          distribute=distribute, workers=workers, progress=progress)
    summary = run_cv(exp.cfg, exp.ds, out, progress=progress, ctx=exp.ctx, notes=exp.notes)
    teardown()
    if exp.ctx.main:
        write_cv_report([load_run(out)], Path(out) / "report.html")
    return {"kind": "spectrogram", "summary": summary, "problems": exp.problems,
            "failures": exp.failures, "main": exp.ctx.main, "cfg": exp.cfg}


def train_command(config, overrides=(), *, out: str | os.PathLike, store=None, labels=None,
                  workers: int = 1, progress: bool = True) -> dict:
    """``hitrank train`` for a spectrogram config (``out/model.pt``)."""
    from .cv import run_train

    exp = load_experiment(config, overrides, store=store, labels=labels, command="train",
                          distribute="data", workers=workers, progress=progress)
    info = run_train(exp.cfg, exp.ds, out, ctx=exp.ctx)
    teardown()
    return {"kind": "spectrogram", "info": info, "problems": exp.problems, "failures": exp.failures,
            "main": exp.ctx.main, "cfg": exp.cfg}
