"""The command layer: one function per command that makes features or uses a model.

What ``hitrank extract``, ``cv``, ``train``, ``rank``, ``predict`` and ``compare`` do, as
library calls that return results (the CLI prints them; :mod:`hitrank.table1` and
:mod:`hitrank.demo` are built from the same calls).

The spectrogram branch (Mid-30 / HL-30 log-mels, the paper's CNNs) and the descriptor branch
(Spotify-style descriptor tables, the smaller seed systems) share ``cv``, ``train``, ``rank``
and ``predict``. These functions pick the branch from what the user gave (``data`` tables, or
a ``store`` / ``labels`` of audio features) and from the run folder's manifest
(:mod:`hitrank.runinfo`), so the command line never looks inside checkpoints.

A spectrogram experiment is set up in one place (:func:`load_experiment`): load and check the
config (its feature parameters computed once), join a torchrun process group when launched
under torchrun, extract a labels CSV into a store (rank 0 alone), load the dataset and check
that no evaluated song supervised the attention highlighter.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .audio import check_file
from .config import Config, check_available, highlighter_checkpoint, load_config, with_overrides
from .corpus import (
    check_training_labels,
    is_audio_name,
    list_folder,
    no_audio_found,
    read_labels,
    reference_source,
    usable_score_note,
)
from .cv import dataset_parts, group_column, run_cv, run_train
from .cvreport import comparison_table, load_run, pairwise, write_cv_report
from .data import Dataset, fewer_folds_hint, load_dataset, warn_left_out
from .descriptors.apply import predict_table, rank_descriptor_folder
from .descriptors.commands import cv_command as descriptor_cv
from .descriptors.commands import train_command as descriptor_train
from .descriptors.model import load_models as load_descriptor_models
from .descriptors.table import read_table, table_files
from .distributed import Context, barrier, setup, teardown
from .embeddings import DEFAULT_EMBEDDING, DEFAULT_SCOPE, with_embedding
from .errors import ConfigError, HitrankError, LabelsError
from .extract import ExtractReport, extract
from .features import FeatureParams
from .fileio import atomic_write_text, copies_of, is_system_path, strict_json
from .metrics import MIN_TOP
from .neighbours import (
    DEFAULT_K,
    MODEL_EMBEDDING,
    labelled_titles,
    neighbour_columns,
    split_cell,
    store_catalogue,
    store_vectors,
    training_paths,
)
from .rank import rank_folder
from .ranking_table import (
    check_provenance,
    merge_rankings,
    provenance,
    ranking_with_failures,
    read_previous,
    songs_in,
    still_valid,
)
from .report import write_ranking_report
from .runinfo import (
    add_run_info,
    model_fingerprint,
    resolve_model,
    run_kind,
    run_name,
)
from .runtime import cached_store_path
from .segments import params_for
from .store import FeatureStore
from .strata import check_strata, evaluate, paired_difference, stratum_mean_predictions
from .targets import check_differ, check_scores
from .thumbnail import parse_highlighter_id
from .thumbnail.attention import load_highlighter
from .transfer.learning_curve import learning_curve_command
from .transfer.protocol import (
    is_transfer_config,
    rank_transfer_folder,
    read_label_columns,
    transfer_cv,
    transfer_train,
)
from .yamlconfig import override_text

log = logging.getLogger(__name__)

#: where ``cv`` writes its HTML report, relative to the run folder
CV_REPORT = "report.html"
#: the songs of a cv or train run whose audio could not be used (song_id, path, error)
FAILURES_FILE = "failures.csv"


def extract_features(source: str | os.PathLike, out: str | os.PathLike, *, segment: str = "mid30",
                     highlighter: str | os.PathLike | None = None, window: str = "hamming",
                     log_scale: str = "db", tags: str = "", tagger: str = "", workers: int = 1,
                     progress: bool = True, allow_outside: bool = False, engine: str = "local",
                     address: str | None = None, embedding: str = "",
                     embedding_scope: str = DEFAULT_SCOPE) -> tuple[ExtractReport, FeatureParams]:
    """``hitrank extract``: log-mels (and tags, and a pretrained network's song embedding) of
    a folder or labels CSV into the store ``out``; returns the extraction report and the
    stored feature parameters."""
    params = with_embedding(params_for(segment, highlighter, window=window, log=log_scale, tags=tags,
                                       tagger=tagger if tags else ""), embedding, embedding_scope)
    rep = extract(source, out, params, workers=workers, progress=progress, allow_outside=allow_outside,
                  highlighter=highlighter, engine=engine, address=address)
    return rep, params


def extract_store(cfg: Config, params: FeatureParams, labels: str | os.PathLike,
                  store: str | os.PathLike | None = None, *, workers: int = 1,
                  progress: bool = True) -> tuple[Path, ExtractReport]:
    """The features a config asks for (``params``, from :func:`~hitrank.config.check_available`)
    of a labels CSV, in ``store`` (default: a cache store of these labels and parameters,
    reused next time); resumable. Returns the store and the extraction report."""
    store = Path(store) if store is not None else cached_store_path(labels, params)
    rep = extract(labels, store, params, workers=workers, progress=progress,
                  highlighter=highlighter_checkpoint(cfg))
    return store, rep


@dataclass
class Experiment:
    """A checked config with its data, ready to cross-validate or train."""

    cfg: Config
    params: FeatureParams  # the config's feature parameters, checked once
    ds: Dataset
    ctx: Context
    problems: list = field(default_factory=list)  # (song_id, reason) left out of the dataset
    failures: list = field(default_factory=list)  # (song_id, path, reason) of an extraction
    notes: dict = field(default_factory=dict)  # what the run folder must say (e.g. highlighter overlap)


def _config(config: Config | str | os.PathLike | None, overrides=()) -> Config:
    """A config object, a file or a packaged config name, with ``key=value`` overrides."""
    return with_overrides(config, overrides) if isinstance(config, Config) else load_config(config, overrides)


def load_experiment(config: Config | str | os.PathLike | None, overrides: list[str] = (), *,
                    store: str | os.PathLike | None = None, labels: str | os.PathLike | None = None,
                    command: str = "cv", distribute: str = "auto", workers: int = 1,
                    progress: bool = True) -> Experiment:
    """Config + dataset (+ torchrun context) for ``cv`` or ``train``.

    ``store`` is a feature store; ``labels`` a labels CSV whose features are extracted first
    (into ``store`` when given, else into a cache store, reused next time). Under torchrun only
    rank 0 extracts; the others wait for it.
    """
    if store is None and labels is None:
        raise HitrankError("no data: give a feature store (--store) or a labels CSV (--labels)")
    cfg = _config(config, overrides)
    params = check_available(cfg)
    if labels is not None:
        check_training_labels(labels)  # a CSV without hit_score stops here, not after extraction
        _check_label_scores(cfg, labels)
    group = group_column(cfg)  # a labels column other than artist: read before any extraction
    groups = _group_column(labels, group) if group not in ("", "artist") else None
    ctx = setup(distribute, cfg.cv.folds if command == "cv" else None, cfg.train.device)
    if not ctx.main:  # one progress bar, one log and one summary: rank 0's
        progress = False
        logging.getLogger().setLevel(logging.WARNING)
    failures = []
    if labels is not None:
        store = store if store is not None else cached_store_path(labels, params)
        if ctx.main:
            failures = extract_store(cfg, params, labels, store, workers=workers, progress=progress)[1].failures
        barrier(ctx)
    opened = FeatureStore.open(store)
    ds, problems = load_dataset(opened, **dataset_parts(cfg))
    if groups is not None:
        ds.columns[group] = pd.Series(ds.song_ids).map(groups).fillna("").astype(str).str.strip().to_numpy()
    warn_left_out(problems)
    log.debug("%d songs with features and scores", len(ds))
    notes = check_highlighter_overlap(cfg, opened, set(ds.song_ids), params)
    return Experiment(cfg, params, ds, ctx, problems, failures, notes)


def _check_label_scores(cfg: Config, labels: str | os.PathLike) -> None:
    """Before any audio is decoded: the labels CSV has enough usable hit scores for the folds
    (:data:`~hitrank.metrics.MIN_TOP` per chunk: 2 x ``cv.folds``), they differ, and
    ``train.target`` can take them (each a LabelsError or ConfigError naming the file or the
    songs)."""
    refs = [r for r in read_labels(labels)[0] if np.isfinite(r.hit_score)]
    k = cfg.cv.folds
    if len(refs) < MIN_TOP * k:
        why = usable_score_note(labels)[1]
        raise LabelsError(f"{str(labels)!r}: only {len(refs)} song(s) with a usable hit_score; cv.folds={k} needs "
                          f"at least {MIN_TOP * k} ({MIN_TOP} to rank in each fold's test and validation chunk): "
                          + fewer_folds_hint(len(refs), k) + (f" ({why})" if why else ""))
    scores = [r.hit_score for r in refs]
    check_differ(scores, repr(str(labels)))
    check_scores(cfg.train.target, scores, [r.song_id for r in refs])


def check_highlighter_overlap(cfg: Config, store: FeatureStore, song_ids: set,
                              params: FeatureParams | None = None) -> dict:
    """Refuse to evaluate on songs whose hit scores trained the attention highlighter that
    chose their HL-30 windows (test labels would leak into the features), unless
    ``cv.allow_highlighter_overlap``; then the run says so. Songs are matched by resolved
    audio path (the highlighter checkpoint records the paths it was trained on).

    A store made with another highlighter than the config's (``params``: its checked feature
    parameters, default :func:`~hitrank.config.check_available`) is left to the config/store
    check of :func:`hitrank.cv.prepare`, which names both.

    Returns ``{"highlighter_overlap": n}`` when songs are shared and allowed, else ``{}``.
    """
    kind, _ = parse_highlighter_id(store.params.highlighter) if store.params.highlighter else ("", "")
    if kind != "attention":
        return {}
    if store.params.highlighter != (params or check_available(cfg)).highlighter:
        return {}  # not the store the config asks for: refused before training, by name
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


def cross_validate(config, overrides=(), *, out: str | os.PathLike, store=None, labels=None, data=None,
                   workers: int = 1, distribute: str = "auto", progress: bool = True,
                   report: str | os.PathLike | None = CV_REPORT, raters=None, raters_score: str = "",
                   within: str = "") -> dict:
    """``hitrank cv``: a descriptor config with ``data`` tables, else a spectrogram config
    (a :class:`~hitrank.config.Config`, a file or a packaged name) with a ``store`` and/or
    ``labels`` (see :func:`load_experiment`).

    Writes the run folder ``out`` and, for spectrogram runs, an HTML report at ``report``
    (relative to ``out``, or a path; None: none). Returns ``{"kind", "summary", ...}``; for
    spectrogram runs also ``problems``, ``failures``, ``main`` (False on non-zero torchrun
    ranks, whose ``summary`` is None) and ``cfg``. A ``branch: transfer`` config (``configs/real/``)
    runs :func:`hitrank.transfer.protocol.transfer_cv` on ``labels`` (with ``raters``: the label
    ceiling). ``within``: a labels column; a spectrogram run then also reports metrics inside
    each of its strata (:func:`within_report`; transfer configs take it as ``cv.within``).
    """
    if raters_score and raters is None:
        raise HitrankError(f"--raters-score {raters_score!r} names the judgement of a raters file: "
                           "give the file with --raters FILE, or leave --raters-score out")
    if data is not None:
        return descriptor_cv(config, overrides, data=data, out=out, progress=progress)
    if is_transfer_config(config):
        overrides = [*overrides, f"cv.within={override_text(within)}"] if within else overrides
        res = transfer_cv(config, overrides, labels=_labels_for_transfer(labels), out=out, store=store,
                          raters=raters, raters_score=raters_score, workers=workers, progress=progress)
        _record_inputs(out, labels, res["failures"])
        return res
    if raters is not None:
        raise ConfigError("--raters reports the label ceiling of transfer runs (configs/real/); "
                          "spectrogram runs do not read it yet")
    if within and labels is None:
        raise ConfigError(f"--within {within!r} reads the stratum from a labels CSV: give --labels")
    if within:  # a missing or degenerate column stops the run before any work
        check_strata(stratum_column(labels, within).to_numpy(), within)
    exp = load_experiment(config, overrides, store=store, labels=labels, command="cv",
                          distribute=distribute, workers=workers, progress=progress)
    summary = run_cv(exp.cfg, exp.ds, out, progress=progress, ctx=exp.ctx, notes=exp.notes, params=exp.params)
    teardown()
    if exp.ctx.main:
        _record_inputs(out, labels, exp.failures)
    if within and exp.ctx.main:
        summary["within"] = within_report(out, labels, within, exp.cfg.cv.top_fraction, group_column(exp.cfg))
    if exp.ctx.main and report is not None:
        write_cv_report([load_run(out)], Path(out) / report)
    return {"kind": "spectrogram", "summary": summary, "problems": exp.problems,
            "failures": exp.failures, "main": exp.ctx.main, "cfg": exp.cfg}


def train(config, overrides=(), *, out: str | os.PathLike, store=None, labels=None, data=None,
          workers: int = 1, progress: bool = True) -> dict:
    """``hitrank train``: one model (``out/model.pt``), from tables or audio features.
    Returns ``{"kind", "info", ...}`` (spectrogram: as :func:`cross_validate`)."""
    if data is not None:
        return descriptor_train(config, overrides, data=data, out=out)
    if is_transfer_config(config):
        res = transfer_train(config, overrides, labels=_labels_for_transfer(labels), out=out, store=store,
                             workers=workers, progress=progress)
        _record_inputs(out, labels, res["failures"])
        return res
    exp = load_experiment(config, overrides, store=store, labels=labels, command="train",
                          distribute="data", workers=workers, progress=progress)
    info = run_train(exp.cfg, exp.ds, out, ctx=exp.ctx, params=exp.params)
    teardown()
    if exp.ctx.main:
        _record_inputs(out, labels, exp.failures)
    return {"kind": "spectrogram", "info": info, "problems": exp.problems, "failures": exp.failures,
            "main": exp.ctx.main, "cfg": exp.cfg}


def _record_inputs(out, labels, failures) -> None:
    """What a finished ``cv``/``train`` run folder keeps of its inputs: the labels CSV it learned
    from in its run.json (``labels``, absolute: the titles of its training songs as closest
    songs, :func:`hitrank.neighbours.training_catalogue`), and the songs whose audio could not
    be used in ``failures.csv`` (:func:`record_failures`)."""
    if labels is not None and Path(labels).suffix.lower() == ".csv":
        add_run_info(out, labels=os.path.abspath(labels))
    record_failures(out, failures)


def record_failures(out, failures) -> None:
    """Write the songs whose audio could not be used to the run folder's ``failures.csv``
    (columns ``song_id``, ``path``, ``error``), or remove a stale one when none failed (a
    resumed run whose files were mended)."""
    path = Path(out) / FAILURES_FILE
    if failures:
        frame = pd.DataFrame([tuple(map(str, f)) for f in failures], columns=["song_id", "path", "error"])
        atomic_write_text(path, frame.to_csv(index=False))
    else:
        path.unlink(missing_ok=True)


def stratum_column(labels: str | os.PathLike, column: str, flag: str = "--within") -> pd.Series:
    """A labels CSV's column by song id; ConfigError naming the columns when it has none."""
    table = read_label_columns(labels)
    if column not in table.columns:
        raise ConfigError(f"{flag} {column!r}: {str(labels)!r} has no such column (columns: {list(table.columns)})")
    return table[column]


def _group_column(labels, column: str) -> pd.Series:
    """The ``cv.group_by`` column of a labels CSV by song id (spectrogram runs)."""
    if labels is None:
        raise ConfigError(f"--group-by {column!r} (cv.group_by) reads the groups from a labels CSV: give "
                          "--labels (a feature store records only the artist)")
    return stratum_column(labels, column, "--group-by")


def within_report(out: str | os.PathLike, labels: str | os.PathLike, column: str, top: float = 0.1,
                  group: str = "") -> dict:
    """Within-stratum metrics of a finished cv run: its out-of-fold predictions
    (``predictions.csv``) joined with a labels column, computed inside each fold's test songs
    (:func:`hitrank.strata.within_metrics`), with the stratum-mean baseline and the paired
    difference; added to the run's ``summary.json`` as ``within``. ``group``: the run's
    ``cv.group_by`` column, whose groups the bootstrap intervals resample whole.

    Returns ``{"column", "model", "stratum_mean", "versus_stratum_mean"}``.
    """
    out = Path(out)
    pred = pd.read_csv(out / "predictions.csv", dtype={"song_id": str})
    s = pred["song_id"].map(stratum_column(labels, column)).fillna("").astype(str).to_numpy()
    y, p, f = pred["hit_score"].to_numpy(float), pred["pred"].to_numpy(float), pred["fold"].to_numpy()
    base = stratum_mean_predictions(y, f, s)
    g = None
    if group:
        try:
            g = pred["song_id"].map(stratum_column(labels, group, "--group-by")).fillna("").astype(str).to_numpy()
        except ConfigError as exc:  # e.g. folds by artist from a store, labels without the column
            log.warning("within-%s intervals resample songs, not %s groups: %s", column, group, exc)
    if column not in pred.columns:  # the strata beside the predictions: compare's baseline rows
        atomic_write_text(out / "predictions.csv", pred.assign(**{column: s}).to_csv(index=False))
    ids = pred["song_id"].to_numpy()
    res = {"column": column, "model": evaluate(y, p, f, s, top, groups=g, ids=ids),
           "stratum_mean": evaluate(y, base, f, s, top, groups=g, ids=ids),
           "versus_stratum_mean": paired_difference(y, p, base, f, s, groups=g)}
    summary = json.loads((out / "summary.json").read_text())
    atomic_write_text(out / "summary.json", strict_json({**summary, "within": res}, indent=2))
    return res


def learning_curve(config, overrides=(), **kwargs) -> dict:
    """``hitrank learning-curve``: metrics against the number of training songs of a transfer
    config (:func:`hitrank.transfer.learning_curve.learning_curve_command`)."""
    return learning_curve_command(config, overrides, **kwargs)


def _labels_for_transfer(labels):
    if labels is None:
        raise ConfigError("a transfer config (branch: transfer) learns from --labels LABELS.csv; its "
                          "embeddings are extracted into a cache store (or into --store, which then "
                          "must have been made with the config's embedding)")
    return labels


def _unused_highlighter(highlighter, kind: str) -> None:
    if highlighter:
        log.warning("--highlighter %r is not used: %s models need no highlighter", str(highlighter), kind)


def _rank_transfer(folder, model, *, cache, workers, device, progress, highlighter, engine, address,
                   **options):
    _unused_highlighter(highlighter, "transfer")
    own = {k: options.pop(k) for k in ("skip", "reference", "nearest", "embedding") if k in options}
    if options or engine != "local":
        raise HitrankError(f"{str(model)!r} is a transfer model (pretrained embeddings): --curve, "
                           "--segment and --engine ray apply to spectrogram models")
    return rank_transfer_folder(folder, model, cache=cache, workers=workers, progress=progress, **own)


def _rank_spectrogram(folder, model, *, cache, workers, device, progress, highlighter, engine, address,
                      **options):
    return rank_folder(folder, model, cache=cache, workers=workers, device=device, progress=progress,
                       highlighter=highlighter, engine=engine, address=address, **options)


def _rank_descriptor(folder, model, *, cache, workers, device, progress, highlighter, engine, address,
                     **options):
    _unused_highlighter(highlighter, "descriptor")
    if options:  # curve=, segment=, reference=, ..., skip= (hitrank.rank.rank_folder)
        raise HitrankError(f"{str(model)!r} is a descriptor model: --curve, --segment, --reference, "
                           "--nearest, --embedding and --since apply to spectrogram (and --since to "
                           "transfer) models")
    if engine != "local":
        raise HitrankError(f"{str(model)!r} is a descriptor model: its audio descriptors are computed "
                           "with the local engine; drop --engine ray")
    return rank_descriptor_folder(folder, model, cache=cache, workers=workers, progress=progress)


#: how each kind of run ranks a folder of audio (kinds: hitrank.runinfo.RUN_KINDS)
RANKERS = {"spectrogram": _rank_spectrogram, "descriptor": _rank_descriptor, "transfer": _rank_transfer}


def check_outputs(sources: dict, out, html, since=None) -> None:
    """Refuse, before any song is ranked, a ``--out`` / ``--html`` that is a folder, one of
    the input files (``sources``: path or None -> what it is, e.g. ``{labels: "the labels CSV
    ranked", reference: "--reference"}``), an audio file, or both the same file; create their
    folders. ``since``: the ``--since`` ranking, which ``--out`` may update in place but
    ``--html`` may not replace. Links are followed (writing through one replaces its file)."""
    inputs = {Path(p).resolve(): what for p, what in sources.items() if p is not None and Path(p).is_file()}
    if out is not None and html is not None and Path(out).resolve() == Path(html).resolve():
        raise HitrankError(f"--out and --html are both {str(out)!r}: give the CSV and the report two names")
    if since is not None and html is not None and Path(since).resolve() == Path(html).resolve():
        raise HitrankError(f"--html {str(html)!r} is the --since ranking: writing the report there would replace "
                           f"it; give the report another name, e.g. {str(Path(html).with_name('ranking.html'))!r}")
    for flag, target, example in (("--out", out, "ranking.csv"), ("--html", html, "ranking.html")):
        if target is None:
            continue
        t = Path(target)
        if t.is_dir():
            raise HitrankError(f"{flag} {str(target)!r} is a folder; give the file's name, e.g. "
                               f"{str(t / example)!r}")
        if t.resolve() in inputs:
            raise HitrankError(f"{flag} {str(target)!r} is {inputs[t.resolve()]}: writing there would replace "
                               f"it; give another file name, e.g. {str(t.with_name(example))!r}")
        if t.exists() and is_audio_name(t.resolve().name):
            raise HitrankError(f"{flag} {str(target)!r} is an audio file: writing there would replace it; "
                               f"give another file name, e.g. {str(t.with_name(example))!r}")
        real = Path(os.path.realpath(t))  # a link's target: its folder is the one written into
        if flag == "--html" and (is_system_path(real) or (real.exists() and not real.is_file())):
            raise HitrankError(f"--html {str(target)!r} is not a regular file: the report keeps its images in a "
                               f"folder beside it; give a file name, e.g. 'ranking.html'")
        if not is_system_path(real):
            real.parent.mkdir(parents=True, exist_ok=True)


def rank(folder, model, *, cache=None, workers: int = 1, device: str = "auto", progress: bool = True,
         highlighter=None, engine: str = "local", address: str | None = None,
         out: str | os.PathLike | None = None, html: str | os.PathLike | None = None,
         embed_audio: bool = False, since: str | os.PathLike | None = None,
         **options) -> tuple[pd.DataFrame, list]:
    """``hitrank rank``: rank a folder of audio with a run folder, a checkpoint or an imported
    pretrained model's name; writes the ranking CSV to ``out`` (ranked songs, then the failed
    files with their ``error``: :mod:`hitrank.ranking_table`) and an HTML report to ``html``
    when given. ``since``: a ranking CSV of an earlier run of the same model; only the songs
    of ``folder`` it does not hold are ranked, and merged with its rows. ``options``
    (``curve``, ``segment``, ``reference``, ``nearest``, ``embedding``) go to
    :func:`hitrank.rank.rank_folder`. Returns ``(ranking DataFrame, failures)``."""
    path = resolve_model(model)
    kind = run_kind(path)  # reads the checkpoint's kind (a checkpoint holding code is refused here)
    if Path(folder).is_dir() and not list_folder(folder):
        raise no_audio_found(folder, "rank")
    check_outputs({folder: "the labels CSV ranked", options.get("reference"): "--reference"}, out, html, since)
    # a transfer model compares songs in its own embedding whatever --embedding names (checked there)
    made_with = provenance(model, model_fingerprint(path),
                           {k: v for k, v in options.items() if not (kind == "transfer" and k == "embedding")})
    previous = read_previous(since) if since is not None else None
    if previous is not None:
        if previous.empty:
            log.warning("--since %r holds no ranked song: every song is ranked anew", str(since))
        check_provenance(previous, made_with, repr(str(since)))  # before any song is ranked
        listed = songs_in(folder)
        options["skip"] = set(still_valid(previous, listed).song_id)
    ranking, failures = RANKERS[kind](
        folder, path, cache=cache, workers=workers, device=device, progress=progress,
        highlighter=highlighter, engine=engine, address=address, **options)
    for column, value in made_with.items():
        ranking[column] = value
    _warn_training_songs(ranking, path)
    if previous is not None:
        key = "best_score" if options.get("segment") == "best" else "score"
        ranking, counts = merge_rankings(previous, ranking, listed, key, source=repr(str(since)))
        log.info("--since %s: %d songs kept, %d new, %d no longer in %s", since, counts["kept"],
                 counts["new"], counts["dropped"], folder)
    if out is not None:
        atomic_write_text(out, ranking_with_failures(ranking, failures).to_csv(index=False))
    if html is not None:
        write_ranking_report(ranking, failures, os.path.realpath(html), str(model),  # a link: beside its target
                             store_dir=ranking.attrs.get("store"), embed_audio=embed_audio)
    return ranking, failures


def _warn_training_songs(ranking: pd.DataFrame, model) -> None:
    """Warn when ranked songs are songs the model learned from: their scores are in-sample
    (a model fits its training songs better than it will score new ones)."""
    if not len(ranking) or "path" not in ranking:
        return
    seen = training_paths(model)
    real = [os.path.realpath(str(p)) for p in ranking.path]
    known = [sid for sid, p in zip(ranking.song_id, real, strict=True) if p in seen]
    if known:
        log.warning("%d of the %d ranked songs are songs %s learned from (e.g. %s): their scores are "
                    "in-sample (fitted to their own labels), not what it would give them as new songs",
                    len(known), len(ranking), run_name(model), ", ".join(repr(str(s)) for s in known[:3]))
    copies = copies_of([p for p in real if p not in seen], seen)
    if copies:
        example = next(iter(copies.items()))
        log.warning("%d of the %d ranked songs are byte-for-byte copies of songs %s learned from (e.g. %r is "
                    "%r): their scores are in-sample too", len(copies), len(ranking), run_name(model),
                    *example)


def similar(song, reference=None, *, model=None, embedding: str | None = None, k: int = DEFAULT_K,
            cache=None, workers: int = 1, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """``hitrank similar``: the ``k`` reference songs closest to one song, and its fit.

    Parameters
    ----------
    song : an audio file
    reference : a labels CSV or folder of songs (with ``model``, default: the run's training
        songs)
    model : a spectrogram or transfer run folder or checkpoint; needed for ``embedding="model"``
        (a transfer run's own embedding is the pretrained network it was trained on)
    embedding : ``model`` (default with a model) or a registered network (default without:
        :data:`hitrank.embeddings.DEFAULT_EMBEDDING`, over the whole song)

    Returns
    -------
    DataFrame of up to ``k`` rows, closest first: ``rank, song_id, path, title, hit_score,
    similarity``; ``.attrs``: ``song``, ``catalogue`` (its name), ``embedding``, ``fit``
    (0-100), ``fit_similarity`` and, with a model, ``score`` and ``percentile``
    """
    if Path(song).is_dir():
        raise HitrankError(f"{str(song)!r} is a folder: `similar` takes one audio file (rank a folder with "
                           "`hitrank rank FOLDER --model RUN --nearest K`)")
    check_file(Path(song))
    if k < 1:
        raise HitrankError(f"k={k}: ask for at least one similar song")
    embedding = embedding or (MODEL_EMBEDDING if model is not None else DEFAULT_EMBEDDING)
    if embedding == MODEL_EMBEDDING and model is None:
        raise HitrankError(f"--embedding {MODEL_EMBEDDING} compares songs in a trained run's own penultimate "
                           "layer: give --model RUN, or a pretrained network (--embedding musicnn, ...)")
    if model is not None:
        path = resolve_model(model)
        kind = run_kind(path)
        if kind not in ("spectrogram", "transfer"):
            raise HitrankError(f"{str(model)!r} is a {kind} run: `similar --model` takes spectrogram and "
                               "transfer models; leave --model out to compare songs in a pretrained embedding")
        ranking, failures = RANKERS[kind](song, path, reference=reference, nearest=k, embedding=embedding,
                                          cache=cache, workers=workers, device=device, progress=progress,
                                          highlighter=None, engine="local", address=None)
        if kind == "transfer":  # its own embedding is the pretrained network it learned on
            embedding = ranking.attrs.get("embedding", embedding)
        if failures:
            raise HitrankError(f"{str(song)!r}: {failures[0][2]}")
        if "nearest" not in ranking:
            raise HitrankError(f"no songs to compare {str(song)!r} with: {ranking.attrs.get('neighbours')}")
        row = ranking.iloc[0]
        if bool(row["silent"]):
            raise HitrankError(f"{str(song)!r}: its analysed segment holds no sound (silent); nothing to compare")
        ids = split_cell(row["nearest"])
        extra = {"score": float(row["score"]), "percentile": float(row["percentile"])}
        cat_name = ranking.attrs["neighbours"]
        titles = (split_cell(row["nearest_title"]) + [""] * len(ids))[:len(ids)]
        scores = pd.to_numeric(pd.Series(str(row["nearest_score"]).split(";")[:len(ids)]), errors="coerce")
        found = pd.DataFrame({"song_id": ids, "title": titles, "hit_score": scores.to_numpy(),
                              "similarity": [float(v) for v in split_cell(row["nearest_similarity"])]})
        fit, fit_sim = float(row["fit"]), float(row["fit_similarity"])
        ref_paths = ranking.attrs.get("catalogue_paths", {})
    else:
        if reference is None:
            raise HitrankError("similar without --model compares with --reference LABELS.csv|FOLDER: give one")
        reference_source(reference)
        params = with_embedding(FeatureParams(), embedding, "song")
        stores = []
        for src, where in ((song, cache), (reference, None)):
            where = where if where is not None else cached_store_path(src, params)
            rep = extract(src, where, params, workers=workers, progress=progress)
            if src == song and rep.failures:
                raise HitrankError(f"{str(song)!r}: {rep.failures[0][2]}")
            stores.append((rep.store, rep.song_ids))
        query = FeatureStore.open(stores[0][0])
        if query.manifest.set_index("song_id").loc[stores[0][1][0], "silent"]:
            raise HitrankError(f"{str(song)!r}: its audio holds no sound (silent); nothing to compare")
        cat = store_catalogue(stores[1][0], f"the songs of {Path(reference).name}", embedding,
                              song_ids=stores[1][1], titles=labelled_titles(reference))
        cat.name = f"the {len(cat.song_ids)} songs of {Path(reference).name}"
        cols = neighbour_columns(store_vectors(query, stores[0][1], embedding), cat, k)
        i, s = cols.attrs["index"][0], cols.attrs["similarity"][0]
        found = pd.DataFrame({"song_id": cat.song_ids[i], "title": cat.titles[i], "hit_score": cat.scores[i],
                              "similarity": s})
        fit, fit_sim, extra, cat_name = float(cols["fit"][0]), float(cols["fit_similarity"][0]), {}, cat.name
        ref_paths = dict(zip(cat.song_ids, cat.paths, strict=True))
    found.insert(0, "rank", range(1, len(found) + 1))
    found.insert(2, "path", [ref_paths.get(s, "") for s in found.song_id])
    found.attrs.update({"song": str(song), "catalogue": cat_name, "embedding": embedding, "fit": fit,
                        "fit_similarity": fit_sim, **extra})
    return found


def predict(model, data, out: str | os.PathLike | None = None) -> tuple[pd.DataFrame, int, list]:
    """``hitrank predict``: score every row of descriptor tables with a descriptor run;
    writes the predictions CSV to ``out`` when given. A table that cannot be read is skipped
    when others can. Returns ``(predictions, number of models, failures)``, ``failures`` the
    ``(path, reason)`` of the skipped tables."""
    path = resolve_model(model)
    if run_kind(path) != "descriptor":
        raise HitrankError(f"{str(model)!r} is a spectrogram model: it ranks audio folders with "
                           "`hitrank rank`; `predict` scores descriptor tables with descriptor runs")
    if out is not None:
        if Path(out).is_dir() or any(Path(out).resolve() == f.resolve() for f in table_files(data)):
            raise HitrankError(f"--out {str(out)!r} " + ("is a folder" if Path(out).is_dir() else
                               "is a table being scored (--data): it would be replaced by the predictions")
                               + "; name a new CSV file")
    models = load_descriptor_models(path)
    failures: list = []
    pred = predict_table(models, read_table(data, failures))
    if out is not None:
        atomic_write_text(out, pred.to_csv(index=False))
    return pred, len(models), failures


def compare(runs, html: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``hitrank compare``: the Table-1 style table of CV run folders next to the paper's rows
    and, for several runs, the paired tests; an HTML page with plots at ``html`` when given.
    Returns ``(table, pairs or None)``."""
    seen: dict[str, str] = {}
    for r in runs:
        key = os.path.realpath(r)
        if key in seen:
            log.warning("%r and %r are the same run: it is compared once (a run paired with itself "
                        "compares nothing)", seen[key], str(r))
        seen.setdefault(key, str(r))
    loaded = [load_run(r) for r in seen.values()]
    table = comparison_table(loaded)
    pairs = pairwise(loaded) if len(loaded) > 1 else None
    if html is not None:
        write_cv_report(loaded, html)
    return table, pairs
