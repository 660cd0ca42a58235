"""The transfer branch's protocol: embeddings of labelled songs -> nested CV, training, ranking.

``cv``
    Outer folds (the paper's hashed folds, or whole groups with ``cv.group_by``); in each,
    when ``model.candidates`` names several learners, inner folds of the training songs
    alone choose one (nested: the outer test songs never take part in the choice), the
    chosen learner is fitted on all training songs and scores the test songs. Reported:
    pooled out-of-fold Spearman and nDCG@top with bootstrap intervals; with ``cv.within``
    the same inside each stratum (per-fold centred, :mod:`hitrank.strata`) and the
    stratum-mean baseline; random and oracle rows; with raters, the label ceiling. Songs
    whose ``cv.within`` value is empty count over all songs only (a warning names them).
``train``
    The same inner choice on all songs, then one model on all songs (``RUN/model.pt``),
    with the inner out-of-fold scores of the training songs kept as the model's reference.
``rank``
    Embeds a folder with the model's network and scores it (:func:`rank_transfer_folder`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import embeddings, neighbours, ood, segments, strata
from ..corpus import (
    check_training_labels,
    read_text_table,
    reference_source,
    song_names,
    usable_score_note,
)
from ..data import check_fold_sizes, count_groups, make_folds, usable_songs, warn_left_out
from ..errors import ConfigError, HitrankError, LabelsError
from ..extract import ExtractReport, extract
from ..features import FeatureParams
from ..fileio import atomic_write_text, strict_json
from ..metrics import METRICS, ranking_metrics
from ..payload import load_payload, save_payload
from ..ranking_table import flags_column
from ..reference import MIN_REFERENCE, Reference, training_reference, warn_if_coarse
from ..runinfo import find_checkpoints, read_run_info, rows_fingerprint, run_name, write_run_info
from ..runtime import cached_store_path
from ..store import FeatureStore
from ..targets import Target, check_differ
from ..uncertainty import oracle, random_baseline
from ..yamlconfig import read_yaml
from .config import TransferConfig, load_transfer_config, transfer_config_from_dict
from .learners import get as get_learner

log = logging.getLogger(__name__)

RUN_KIND = "transfer"
MODEL_FILE = "model.pt"
FOLD_FILE = "fold_{:02d}.pt"
MIN_SONGS = 10  # labelled songs with embeddings below which nothing is fitted
NO_OOD_REFERENCE = "the model was saved before hitrank kept its training songs' embedding statistics"


@dataclass
class Data:
    """Labelled songs with their embeddings.

    ``X`` (n, d) float64 embeddings; ``y`` (n,) raw scores; ``labels`` the labels CSV's rows of
    these songs (every column, as text), aligned with ``ids``; ``weight`` (n,) the sample
    weights of ``train.weight`` (None: unweighted).
    """

    ids: np.ndarray
    X: np.ndarray
    y: np.ndarray
    labels: pd.DataFrame
    params: FeatureParams
    store: Path
    problems: list = field(default_factory=list)  # (song_id, reason) left out
    failures: list = field(default_factory=list)  # (song_id, path, reason) of the extraction
    weight: np.ndarray | None = None


def feature_params(cfg: TransferConfig) -> FeatureParams:
    """The store parameters of a config: the segment method's log-mel plus the embedding."""
    f = cfg.features
    return embeddings.with_embedding(segments.params_for(f.segment), f.embedding, f.scope)


def embed_source(source, params: FeatureParams, store=None, *, workers: int = 1,
                 progress: bool = True, skip=()) -> tuple[FeatureStore, ExtractReport]:
    """Extract (resumably, cached) the embeddings of a folder or labels CSV (but the songs
    ``skip``)."""
    store = Path(store) if store is not None else cached_store_path(source, params)
    rep = extract(source, store, params, workers=workers, progress=progress, skip=skip)
    return FeatureStore.open(store), rep


def read_label_columns(labels) -> pd.DataFrame:
    """Every column of a labels CSV as text, indexed by song id (the rows ``read_labels``
    accepts; the rest were already reported by extraction)."""
    df = read_text_table(labels, "labels")
    if "song_id" not in df.columns:
        raise LabelsError(f"{str(labels)!r}: a labels CSV needs a 'song_id' column (found {list(df.columns)})")
    df["song_id"] = df["song_id"].str.strip()
    return df.drop_duplicates("song_id").set_index("song_id", drop=False)


def load_data(cfg: TransferConfig, labels, store=None, *, workers: int = 1, progress: bool = True) -> Data:
    """Embed the songs of a labels CSV (cached) and join them with their labels."""
    check_training_labels(labels)  # before any audio is decoded
    table = read_label_columns(labels)
    for key, column in (("cv.group_by", cfg.cv.group_by), ("cv.within", cfg.cv.within),
                        ("train.weight", cfg.train.weight)):
        if column and column not in table.columns:  # before any audio is decoded
            raise ConfigError(f"{key}={column!r}: {str(labels)!r} has no such column (columns: {list(table.columns)})")
    if cfg.cv.group_by and cfg.cv.group_by == cfg.cv.within:
        raise ConfigError(f"cv.group_by and cv.within are both {cfg.cv.within!r}: folds grouped by the stratum test "
                          "each stratum with no song of it in training, so the within-stratum figures and the "
                          "stratum-mean baseline mean nothing; group by another column (e.g. artist)")
    usable, why = usable_score_note(labels)
    if usable < MIN_SONGS:  # before any audio is decoded
        raise LabelsError(f"{str(labels)!r}: only {usable} songs have a usable hit_score; a transfer model needs at "
                          f"least {MIN_SONGS}" + (f" ({why})" if why else ""))
    params = feature_params(cfg)
    st, rep = embed_source(labels, params, store, workers=workers, progress=progress)
    man = st.manifest
    man = man[man.song_id.isin(set(rep.song_ids))]
    records, problems = usable_songs(man)
    keep = [rec["song_id"] for rec in records]
    warn_left_out(problems)
    if len(keep) < MIN_SONGS:
        absent = sum("does not exist" in str(reason) for _, _, reason in rep.failures)
        hint = (f" ({absent} audio files do not exist: a labels CSV's paths are read relative to its own "
                "folder, or give absolute paths)" if absent > len(rep.failures) / 2 else "")
        raise HitrankError(f"{str(labels)!r}: only {len(keep)} songs have embeddings and a usable "
                           f"hit_score; a transfer model needs at least {MIN_SONGS}{hint}")
    ids = np.array(keep)
    X = st.load_embeddings(list(ids)).astype(np.float64)
    y = man.set_index("song_id").loc[ids, "hit_score"].to_numpy(dtype=np.float64)
    data = Data(ids, X, y, table.reindex(ids).fillna(""), params, st.root, problems, list(rep.failures))
    if cfg.train.weight:
        data.weight = read_weights(data.labels[cfg.train.weight], labels, cfg.train.weight)
    check_labels(cfg, data, labels)
    return data


def check_labels(cfg: TransferConfig, data: Data, labels) -> None:
    """Refusals before any fitting: fewer than :data:`MIN_SONGS` songs with a positive
    ``train.weight``, hit scores that are all equal (nothing to rank), and
    scores the target cannot take (e.g. ``log`` of a score <= 0), named for every song at once
    rather than fold by fold."""
    used = slice(None) if data.weight is None else data.weight > 0  # as fit_one fits
    y = data.y[used]
    if data.weight is not None and len(y) < MIN_SONGS:
        raise LabelsError(f"{str(labels)!r}: train.weight={cfg.train.weight!r} is > 0 for only {len(y)} of the "
                          f"{len(data.y)} songs; a transfer model learns from those only and needs at least "
                          f"{MIN_SONGS}: give more songs a weight, or drop --weight")
    check_differ(y, repr(str(labels)))
    Target.fit(cfg.train.target, y, data.ids[used])


def read_weights(values: pd.Series, labels, column: str) -> np.ndarray:
    """The sample weights ``(n,)`` of a labels column (text, indexed by song id); LabelsError
    in one line naming the file, the column and the songs whose weight is missing,
    non-numeric, not finite or negative, or when every weight is 0."""
    w = pd.to_numeric(values.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        songs = [f"{sid} ({v!r})" for sid, v in zip(values.index[bad], values[bad], strict=True)]
        raise LabelsError(f"{str(labels)!r}: train.weight={column!r} needs a finite number >= 0 for every "
                          f"song; {len(songs)} song(s) have none: {', '.join(songs[:5])}"
                          f"{' ...' if len(songs) > 5 else ''}; fill them in or drop train.weight")
    if not (w > 0).any():
        raise LabelsError(f"{str(labels)!r}: train.weight={column!r} is 0 for every song; nothing to fit")
    return w


def label_column(data: Data, column: str, what: str) -> np.ndarray:
    """A labels column for every song (``''`` where empty); ConfigError naming the columns."""
    if column not in data.labels.columns:
        raise ConfigError(f"{what}={column!r}: the labels have no such column (columns: "
                          f"{[c for c in data.labels.columns]})")
    return data.labels[column].astype(str).str.strip().to_numpy()


def groups_of(cfg: TransferConfig, data: Data) -> np.ndarray | None:
    g = cfg.cv.group_by
    return None if not g else label_column(data, g, "cv.group_by")


def strata_of(cfg: TransferConfig, data: Data) -> np.ndarray | None:
    """The ``cv.within`` stratum of each song ``(n,)`` (``''`` where empty), refused when it
    cannot stratify (:func:`hitrank.strata.check_strata`); None without ``cv.within``."""
    w = cfg.cv.within
    if not w:
        return None
    values = label_column(data, w, "cv.within")
    strata.check_strata(values, w, "cv.within")
    return values


# ----------------------------------------------------------------------------- fitting
def fit_one(cfg: TransferConfig, name: str, X, y, ids, seed: int, weight=None) -> dict:
    """Fit learner ``name`` on songs ``X`` (n, d) with raw scores ``y`` and sample weights
    ``weight`` (n,) or None; returns the model ``{"learner", "target", "state", "ood"}``
    (``ood``: the training embeddings' reference of :mod:`hitrank.ood`). The target is fitted
    on the songs of positive weight (a song of weight 0 is left out of the fit)."""
    used = slice(None) if weight is None else np.asarray(weight) > 0
    target = Target.fit(cfg.train.target, y[used], ids[used])
    state = get_learner(name).fit(X, target.transform(y), cfg.model, seed, weight)
    return {"learner": name, "target": target, "state": state,
            "ood": ood.profile_reference(X[used], ood.EMBEDDING_STATISTIC, ood.EMBEDDING_FLOOR)}


def predict_one(model: dict, X) -> np.ndarray:
    """Scores of songs ``X`` on the model's transformed target scale (commensurate across
    models of one target kind: a percentile for ``rank``)."""
    z = get_learner(model["learner"]).predict(model["state"], X)
    return model["target"].unstandardise(z)


def _selection_score(cfg: TransferConfig, y, pred, folds, s, undefined: float = 0.0) -> float:
    """The inner metric ``cv.select_by`` of predictions ``pred``; ``undefined`` when no stratum
    ranks anything (``within``)."""
    if cfg.cv.select_by == "within":
        mean = strata.within_metrics(y, pred, folds, s, cfg.cv.top_fraction, n_boot=1)["mean"]
        return float(mean.get("spearman", undefined))
    return float(strata._row_spearman(y[None], pred[None])[0])


def _fold_scores(cfg: TransferConfig, y, pred, folds, s) -> np.ndarray:
    """(k,) the selection score inside each inner fold's test songs (NaN where undefined)."""
    return np.array([_selection_score(cfg, y[m], pred[m], folds[m], s[m], undefined=np.nan)
                     for m in (folds == f for f in np.unique(folds))], dtype=float)


def pick(cands: list[str], scores: dict, fold_scores: dict, rule: str) -> str:
    """The candidate ``cv.select_rule`` picks from inner-CV ``scores`` {name: pooled score}.

    ``best``: the highest score (ties: the earlier candidate). ``one_se``: the earliest
    candidate (``model.candidates`` lists them from the simplest) whose score is within one
    standard error of the best's: their difference of pooled scores at most the standard
    error of their paired per-fold differences ``fold_scores`` {name: (k,) score in each
    inner fold} (the one-standard-error rule: a more complex learner must win by more than
    the inner folds' noise). Folds where either score is undefined take no part; with fewer
    than 2 left the best is kept. An undefined (NaN) pooled score ranks last.
    """
    return _decide(cands, scores, fold_scores, rule)[0]


def pick_reason(cands: list[str], scores: dict, fold_scores: dict, rule: str) -> str:
    """Why :func:`pick` chooses what it chooses, in words: under ``one_se``, each simpler
    candidate's gap to the best and the standard error it was held to (``ridge 0.056 below
    gbdt, more than its standard error 0.030``)."""
    return _decide(cands, scores, fold_scores, rule)[1]


def _decide(cands: list[str], scores: dict, fold_scores: dict, rule: str) -> tuple[str, str]:
    """:func:`pick`'s choice and :func:`pick_reason`'s words, from one walk over the candidates."""
    finite = {c: v for c, v in scores.items() if np.isfinite(v)}  # an undefined score ranks last
    best = max(cands, key=lambda c: (finite.get(c, -np.inf), -cands.index(c)))
    if not finite:
        return best, "no inner score is defined: the first candidate"
    if rule == "best":
        return best, f"the highest inner score ({best})"
    words = []
    for c in cands[: cands.index(best)]:
        d = fold_scores[best] - fold_scores[c]
        d = d[np.isfinite(d)]
        if c not in finite or len(d) < 2:
            words.append(f"{c}: no standard error")
            continue
        se, gap = d.std(ddof=1) / np.sqrt(len(d)), finite[best] - finite[c]
        words.append(f"{c} {gap:.3f} below {best}, " + ("within" if gap <= se else "more than")
                     + f" its standard error {se:.3f}")
        if gap <= se:
            return c, "; ".join(words)
    return best, "; ".join(words) if words else f"the highest inner score ({best})"


def choose(cfg: TransferConfig, X, y, ids, groups, s, seed: int, weight=None
           ) -> tuple[str, dict, np.ndarray | None, str]:
    """The candidate ``cv.select_rule`` picks by inner cross-validation on these songs only
    (:func:`pick`; fitted with sample weights ``weight`` (n,) or None; scored without them).

    Returns ``(name, {name: inner score}, inner out-of-fold predictions of the chosen one,
    why it was chosen in words)``; with one candidate no inner folds are run (scores ``{}``,
    predictions None).
    """
    cands = list(cfg.model.candidates)
    if len(cands) == 1:
        return cands[0], {}, None, "the only candidate"
    inner = inner_folds(cfg, ids, groups, seed)
    folds = np.empty(len(y), dtype=int)
    preds = {c: np.empty(len(y)) for c in cands}
    for f, (tr, va, te) in enumerate(inner):
        train = np.concatenate([tr, va])
        folds[te] = f
        for c in cands:
            preds[c][te] = predict_one(fit_one(cfg, c, X[train], y[train], ids[train], seed,
                                               _take(weight, train)), X[te])
    svals = s if s is not None else np.zeros(len(y), dtype=int)
    scores = {c: _selection_score(cfg, y, preds[c], folds, svals) for c in cands}
    per_fold = ({c: _fold_scores(cfg, y, preds[c], folds, svals) for c in cands}
                if cfg.cv.select_rule != "best" else {})
    best, why = _decide(cands, scores, per_fold, cfg.cv.select_rule)
    return best, scores, preds[best], why


def inner_folds(cfg: TransferConfig, ids: np.ndarray, groups, seed: int) -> list:
    """The inner folds of training songs ``ids`` (n,) (``make_folds``), with an error that names
    ``cv.inner_folds`` when their groups cannot fill them."""
    n = len(ids)
    k = min(cfg.cv.inner_folds, n)
    try:
        return make_folds(n, k, cfg.cv.fold_seed + 1 + seed, groups=groups, ids=ids)
    except ConfigError:
        raise ConfigError(f"cv.inner_folds={k}: the {count_groups(groups) if groups is not None else n} "
                          f"groups of {n} training songs cannot fill {k} inner folds (they choose the "
                          "learner); lower it, e.g. --set cv.inner_folds=3, or use fewer outer folds") from None


def _take(weight, idx):
    return None if weight is None else weight[idx]


# ----------------------------------------------------------------------------- cv
def check_out(out, create: bool = True, *, cfg: TransferConfig | None = None, command: str = "",
              data: Data | None = None) -> Path:
    """The run folder to write: refused when it is a file or already holds checkpoints
    (``rank`` would mix them with the new ones), created otherwise (``create``; False: only
    checked, before any audio is decoded).

    A folder that holds a finished ``command`` run of the same config ``cfg`` (and, once
    ``data`` is known, of the same labels: :func:`labels_digest`) is taken: the run is
    deterministic, so running it again writes the same models and refreshes its report (e.g.
    with ``--raters`` added), as an interrupted spectrogram run resumes into its folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; a run is a folder: give a new folder's name")
    old = sorted(p.name for p in out.glob("*.pt")) if out.is_dir() else []
    if old:
        held = f"{str(out)!r} already holds a model ({', '.join(old[:3])}{' ...' if len(old) > 3 else ''})"
        why = _other_run(out, cfg, command, data)
        if why:
            raise ConfigError(f"{held} {why}; choose a new --out or remove those files")
        if data is not None:
            log.info("%s of the same config and labels: running it again there", held)
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def labels_digest(cfg: TransferConfig, data: Data) -> str:
    """A digest of what a run learns from besides the embeddings: each song's id and hit score
    and its values of the columns the config reads (``cv.group_by``, ``cv.within``,
    ``train.weight``), whatever the songs' order (:func:`hitrank.runinfo.rows_fingerprint`,
    recorded in run.json; :func:`check_out`)."""
    columns = [c for c in (cfg.cv.group_by, cfg.cv.within, cfg.train.weight) if c]
    cells = [data.labels[c].astype(str).str.strip().tolist() if c in data.labels else [""] * len(data.ids)
             for c in columns]
    return rows_fingerprint([("columns", *columns), *zip(data.ids.astype(str).tolist(), map(repr, data.y.tolist()),
                                                         *cells, strict=True)])


def _flat(d: dict, prefix: str = "") -> dict:
    return {k2: v2 for k, v in d.items()
            for k2, v2 in (_flat(v, f"{prefix}{k}.").items() if isinstance(v, dict) else [(f"{prefix}{k}", v)])}


def _other_run(out: Path, cfg: TransferConfig | None, command: str, data: Data | None) -> str:
    """Why the checkpoints in ``out`` are not a finished ``command`` run of ``cfg`` on the
    labels of ``data`` (``''``: they are; ``data`` None: the labels are not compared yet)."""
    if cfg is None:
        return "of another run"
    try:
        info = read_run_info(out) or {}
        held = read_yaml(out / "config.yaml") if (out / "config.yaml").is_file() else None
    except (ConfigError, HitrankError):
        return "of another run (its run.json or config.yaml is unreadable)"
    if info.get("kind") != RUN_KIND or info.get("command") != command or not isinstance(held, dict):
        return f"that is not a finished transfer `{command}` run"
    now = _flat(yaml.safe_load(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))
    then = _flat(held)
    differ = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
    if differ:
        shown = ", ".join(f"{k}: {then.get(k)!r} there, {now.get(k)!r} now" for k in differ[:3])
        return f"of another config ({shown}{' ...' if len(differ) > 3 else ''})"
    if data is not None and info.get("labels_digest") != labels_digest(cfg, data):
        return f"trained on other labels ({_labels_change(out, data)})"
    return ""


def _labels_change(out: Path, data: Data) -> str:
    """What differs between the labels of a finished run in ``out`` and ``data``'s, in words:
    the songs added or removed and the hit scores changed, from a ``cv`` run's predictions.csv
    (a ``train`` run keeps no song list: the kinds of change are named)."""
    unknown = "other songs, hit scores, or group, stratum or weight values"
    try:
        then = pd.read_csv(out / "predictions.csv", usecols=["song_id", "hit_score"], dtype={"song_id": str})
    except (OSError, ValueError):
        return unknown
    old = dict(zip(map(str, then.song_id), then.hit_score, strict=True))
    now = dict(zip(map(str, data.ids), data.y, strict=True))
    parts = []
    for what, ids in (("added", [s for s in now if s not in old]), ("removed", [s for s in old if s not in now]),
                      ("with another hit_score", [s for s in now if s in old and not np.isclose(now[s], old[s])])):
        if ids:
            parts.append(f"{len(ids)} song(s) {what}, e.g. {', '.join(repr(s) for s in ids[:3])}")
    return "; ".join(parts) if parts else "the same songs and hit scores: other group, stratum or weight values"


def read_raters_for(data: Data, raters, raters_score: str) -> pd.DataFrame:
    """The raters' judgements of these songs (``attrs["songs"]``: the labels' songs, what the
    ceiling is measured against); LabelsError naming the file, before any fitting, when it
    has no rows, no usable judgement, too few of the labels' songs, or too few songs with
    two listeners or more for a split-half reliability."""
    r = strata.read_raters(raters, raters_score)
    name, need = str(raters), strata.MIN_STRATUM
    if r.attrs.get("rows", len(r)) == 0:
        raise LabelsError(f"{name!r} has no rows (only a header); it needs one row per listener and song")
    if len(r) == 0:
        why = ", ".join(f"{k} {reason}" for reason, k in r.attrs.get("reasons", {}).items())
        raise LabelsError(f"{name!r}: no row has a usable judgement ({r.attrs['rows']} rows: {why}); "
                          f"--raters-score {raters_score!r} must name numeric column(s)")
    known = r.song_id.isin(set(data.ids))
    unknown = r.song_id[~known]
    lower = {str(i).lower() for i in data.ids}
    case = sorted({u for u in unknown if str(u).lower() in lower})
    hint = (f"; {len(case)} of them differ from a labels song_id only in upper/lower case (song ids must "
            "match exactly)" if case else "")
    if (~known).any() and known.any():  # all unknown: refused below
        first = ", ".join(repr(u) for u in unknown.unique()[:strata.N_NAMED])
        more = " ..." if unknown.nunique() > strata.N_NAMED else ""
        note = (f"{name!r}: {int((~known).sum())} of {len(r)} judgement rows ({unknown.nunique()} songs: {first}"
                f"{more}) are of songs with no label or no embedding here and take no part in the "
                f"ceiling{hint}")
        log.warning("%s", note)
        r.attrs["warning"] = "; ".join(w for w in (r.attrs.get("warning", ""), note) if w)
    r = r[known]
    if r.song_id.nunique() < need:
        rest = (f"; its song_id column must name the labels' songs{hint}" if (~known).any() else
                f"; a label ceiling needs {need} songs or more, each judged by two listeners or more")
        raise LabelsError(f"{name!r}: only {r.song_id.nunique()} of its songs have labels and "
                          f"embeddings here{rest}")
    rated = int((r.song_id.value_counts() >= 2).sum())
    if rated < need:
        raise LabelsError(f"{name!r}: only {rated} of its {r.song_id.nunique()} songs with labels have two "
                          f"listeners or more; a split-half reliability needs {need} or more: give one row "
                          "per listener and song, several listeners per song")
    r.attrs["songs"] = int(len(data.ids))
    return r


def run_transfer_cv(cfg: TransferConfig, data: Data, out, *, raters=None, raters_score: str = "",
                    progress: bool = True) -> dict:
    """Nested cross-validation of a transfer config; writes the run folder ``out``.

    Returns the summary dict (also ``out/summary.json``).
    """
    from tqdm import tqdm

    t0 = time.time()
    rated = read_raters_for(data, raters, raters_score) if raters is not None else None  # before any fitting
    groups, s = groups_of(cfg, data), strata_of(cfg, data)
    n = len(data.y)
    k = cfg.cv.folds
    if n < k:
        raise ConfigError(f"cv.folds={k} but only {n} songs; lower cv.folds")
    splits = check_fold_sizes(make_folds(n, k, cfg.cv.fold_seed, groups=groups, ids=data.ids))
    out = check_out(out, cfg=cfg, command="cv", data=data)
    folds = np.empty(n, dtype=int)
    pred = np.empty(n)
    chosen, models = [], []
    for f, (tr, va, te) in enumerate(tqdm(splits, desc="cv folds", unit="fold", disable=not progress)):
        train = np.concatenate([tr, va])
        folds[te] = f
        name, scores, _, _ = choose(cfg, data.X[train], data.y[train], data.ids[train],
                                 None if groups is None else groups[train],
                                 None if s is None else s[train], cfg.train.seed + f, _take(data.weight, train))
        model = fit_one(cfg, name, data.X[train], data.y[train], data.ids[train], cfg.train.seed + f,
                        _take(data.weight, train))
        pred[te] = predict_one(model, data.X[te])
        models.append(model)
        chosen.append({"fold": f, "learner": name, "inner": scores, "test_songs": len(te)})
        log.info("%s fold %d: %s (inner %s)", cfg.name, f, name,
                 ", ".join(f"{c} {v:+.3f}" for c, v in scores.items()) or "-")
    summary = summarize(cfg, data, pred, folds, groups, s, chosen, rated, raters, raters_score)
    per_fold = fold_metrics(data.y, pred, folds, cfg.cv.top_fraction)
    for m in METRICS:  # the paper's per-fold means, as spectrogram runs report them (compare)
        summary[f"{m}_mean"], summary[f"{m}_std"] = float(per_fold[m].mean()), float(per_fold[m].std(ddof=1))
    summary["seconds"] = round(time.time() - t0, 1)
    # the fold models are written together at the end (seconds): an interrupted cv leaves no
    # checkpoint behind, so the same command runs again (the embeddings resume from the cache).
    # run.json (which counts the folds) goes first: a run cut while saving them is refused by
    # `rank` naming the missing folds, never ranked with part of its ensemble
    write_run(out, cfg, data, pred, folds, s, summary, "cv")
    for f, model in enumerate(models):
        save_model(out / FOLD_FILE.format(f), model, cfg, data.params, reference=None)
    atomic_write_text(out / "folds.csv", per_fold.to_csv(index=False))
    return summary


def fold_metrics(y, pred, folds, top: float) -> pd.DataFrame:
    """The paper's metrics on each outer fold's test songs, one row per fold."""
    rows = [{"fold": int(f), "test_songs": int((folds == f).sum()),
             **ranking_metrics(y[folds == f], pred[folds == f], top)} for f in np.unique(folds)]
    return pd.DataFrame(rows)


def summarize(cfg: TransferConfig, data: Data, pred, folds, groups, s, chosen, rated=None,
              raters=None, raters_score: str = "") -> dict:
    """The numbers a cv run reports (see the module docstring); ``warnings``: what the reader
    must be told (songs with no stratum, strata in cells too small to rank in, raters' rows
    dropped), one line each."""
    y, top = data.y, cfg.cv.top_fraction
    model = strata.evaluate(y, pred, folds, s, top, groups=groups, ids=data.ids)
    rnd = random_baseline(y, None, top)["ndcg"]
    summary = {
        "name": cfg.name, "kind": RUN_KIND, "songs": int(len(y)), "n_songs": int(len(y)),
        "folds": int(cfg.cv.folds),
        "group_by": cfg.cv.group_by or "song", "within": cfg.cv.within, "top": top,
        "embedding": data.params.embedding, "scope": data.params.embedding_scope,
        "target": cfg.train.target, "weight": cfg.train.weight, "candidates": list(cfg.model.candidates),
        "chosen": chosen,
        "groups": count_groups(groups) if groups is not None else None,
        "model": model,
        "random": {"spearman": 0.0, "ndcg": float(rnd["mean"]), "ndcg_ci": [float(rnd["lo"]), float(rnd["hi"])]},
        "oracle": {"spearman": 1.0, "ndcg": float(oracle(y, None, top)["ndcg"])},
        "left_out": [list(p) for p in data.problems],
    }
    if s is not None:
        base = strata.stratum_mean_predictions(y, folds, s)
        summary["stratum_mean"] = strata.evaluate(y, base, folds, s, top, groups=groups, ids=data.ids)
        summary["versus_stratum_mean"] = strata.paired_difference(y, pred, base, folds, s, groups=groups)
    if rated is not None:
        smap = dict(zip(data.ids, s, strict=True)) if s is not None else None
        summary["ceiling"] = {**strata.split_half_reliability(rated, smap), "raters": str(raters),
                              "score": raters_score, "dropped_rows": rated.attrs.get("dropped", 0)}
        reversed_sign = strata.sign_warning(rated, dict(zip(data.ids, y, strict=True)))
        if reversed_sign:
            summary["ceiling"]["warnings"].append(reversed_sign)
    summary["warnings"] = strata.within_warnings(model["within"], cfg.cv.within or "stratum")
    if groups is not None and (groups == "").any():
        summary["warnings"].append(f"{int((groups == '').sum())} song(s) have no {cfg.cv.group_by}: each is a group "
                                   "of its own (fill the column in if some belong together)")
    if rated is not None and rated.attrs.get("warning"):  # logged when the file was read
        summary["warnings"].append(rated.attrs["warning"])
    if rated is not None:
        summary["warnings"] += summary["ceiling"].get("warnings", [])
    return summary


def write_run(out: Path, cfg: TransferConfig, data: Data, pred, folds, s, summary: dict, command: str) -> None:
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    df = pd.DataFrame({"song_id": data.ids, "fold": folds, "hit_score": data.y, "pred": pred})
    if s is not None:
        df[cfg.cv.within] = s
    atomic_write_text(out / "predictions.csv", df.to_csv(index=False))
    atomic_write_text(out / "summary.json", strict_json(summary, indent=2))  # undefined figures: null
    write_run_info(out, RUN_KIND, command, embedding=data.params.embedding, folds=int(summary["folds"]),
                   scope=data.params.embedding_scope, store=str(Path(data.store).resolve()),
                   labels_digest=labels_digest(cfg, data))


# ----------------------------------------------------------------------------- train
def run_transfer_train(cfg: TransferConfig, data: Data, out, progress: bool = True) -> dict:
    """Choose a learner by inner CV on all songs, fit it on all songs, write ``out/model.pt``.

    The inner out-of-fold scores of the training songs (or, with a single candidate, the
    scores of an inner cross-validation of it) are stored as the model's reference: the
    percentile of a new song is its place among them.
    """
    t0 = time.time()
    groups, s = groups_of(cfg, data), strata_of(cfg, data)
    out = check_out(out, cfg=cfg, command="train", data=data)
    name, scores, ref, why = choose(cfg, data.X, data.y, data.ids, groups, s, cfg.train.seed, data.weight)
    if ref is None:  # one candidate: its inner out-of-fold scores are still the honest reference
        ref = _oof(cfg, name, data, groups)
    model = fit_one(cfg, name, data.X, data.y, data.ids, cfg.train.seed, data.weight)
    reference = {"song_ids": list(map(str, data.ids)), "scores": ref, "hit_scores": data.y,
                 "name": _reference_name(len(data.y), out)}
    save_model(out / MODEL_FILE, model, cfg, data.params, reference)
    result = {"name": cfg.name, "kind": RUN_KIND, "songs": int(len(data.y)), "learner": name,
              "inner": scores, "select_by": cfg.cv.select_by, "select_rule": cfg.cv.select_rule, "why": why,
              "weight": cfg.train.weight, "embedding": data.params.embedding, "scope": data.params.embedding_scope,
              "seconds": round(time.time() - t0, 1), "left_out": [list(p) for p in data.problems]}
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    atomic_write_text(out / "train.json", strict_json(result, indent=2))  # an undefined inner score: null
    write_run_info(out, RUN_KIND, "train", embedding=data.params.embedding, scope=data.params.embedding_scope,
                   store=str(Path(data.store).resolve()), labels_digest=labels_digest(cfg, data))
    return result


def _reference_name(n: int, run) -> str:
    """What a trained model's percentiles are against, in words (the run folder's name as it is
    now: a copied or renamed run names itself)."""
    return f"the {n} training songs of {run_name(run)} (inner out-of-fold)"


def _oof(cfg: TransferConfig, name: str, data: Data, groups) -> np.ndarray:
    """Inner out-of-fold scores of learner ``name`` over all songs."""
    pred = np.empty(len(data.y))
    for tr, va, te in inner_folds(cfg, data.ids, groups, cfg.train.seed):
        train = np.concatenate([tr, va])
        pred[te] = predict_one(fit_one(cfg, name, data.X[train], data.y[train], data.ids[train],
                                       cfg.train.seed, _take(data.weight, train)), data.X[te])
    return pred


# ----------------------------------------------------------------------------- checkpoints
def save_model(path: Path, model: dict, cfg: TransferConfig, params: FeatureParams, reference: dict | None) -> None:
    """One transfer model as a checkpoint of kind ``transfer`` (arrays as tensors, no pickle)."""
    import torch

    def tensors(d: dict) -> dict:
        return {k: torch.tensor(np.asarray(v)) for k, v in d.items()}  # dtypes kept (tree indices are ints)

    payload = {"learner": model["learner"], "target": model["target"].to_dict(),
               "state": tensors(model["state"]), "config": cfg.to_dict(),
               "feature_params": params.to_dict()}
    if model.get("ood") is not None:
        payload["ood"] = model["ood"]
    if reference is not None:
        payload["reference"] = {"song_ids": reference["song_ids"], "name": reference["name"],
                                **tensors({"scores": reference["scores"], "hit_scores": reference["hit_scores"]})}
    save_payload(path, RUN_KIND, payload)


def load_model(path) -> dict:
    """A transfer checkpoint -> ``{"learner", "target", "state", "config", "params", "reference",
    "ood"}`` (``ood``: None for models saved before it was kept)."""
    p = load_payload(path, RUN_KIND)
    ref = p.get("reference")
    if ref is not None:
        ref = {"song_ids": ref["song_ids"], "name": ref["name"], "scores": ref["scores"].numpy(),
               "hit_scores": ref["hit_scores"].numpy()}
    return {"learner": p["learner"], "target": Target(**p["target"]),
            "state": {k: v.numpy() for k, v in p["state"].items()},
            "config": transfer_config_from_dict(p["config"]),
            "params": FeatureParams.from_dict(p["feature_params"]), "reference": ref, "ood": p.get("ood")}


# ----------------------------------------------------------------------------- rank
def rank_transfer_folder(folder, model, *, cache=None, workers: int = 1, progress: bool = True, skip=(),
                         reference=None, nearest: int = neighbours.DEFAULT_K, embedding: str | None = None):
    """Rank a folder (or labels CSV) of audio with a transfer run or checkpoint (but the songs
    ``skip``, ranked before).

    ``reference`` (a labels CSV or folder, embedded and scored like the ranked songs) replaces
    the training songs as the percentile's reference and the catalogue of the ``nearest`` songs
    (:mod:`hitrank.neighbours`), which are measured in the run's own embedding (``embedding``
    may only name it, or ``model``).

    Returns
    -------
    ranking : DataFrame sorted best first (silent songs last): ``rank, song_id, path, artist,
        title, score, score_std, n_models, duration, silent, ood_score, ood, ood_note,
        percentile, percentile_lo, percentile_hi, flags`` (``ood_score``: the embedding's
        distance from the training songs', > 1 flags ``out_of_distribution``, :mod:`hitrank.ood`;
        a silent song's percentile is empty: it says nothing of the song) and, with
        ``nearest`` and a catalogue, the columns of
        :func:`hitrank.neighbours.neighbour_columns`. ``score`` is
        the mean over the run's models on their target's scale (a percentile of the training
        songs' scores for the ``rank`` target); ``percentile`` (0-100) places it among the
        training songs' inner out-of-fold scores (NaN for runs without them), its interval
        those of ``score -+ score_std`` (the spread over the run's models).
    failures : list of (song_id, path, reason)
    """
    models = [load_model(p) for p in find_checkpoints(model)]
    params = models[0]["params"]
    if embedding not in (None, neighbours.MODEL_EMBEDDING, params.embedding):
        raise HitrankError(f"--embedding {embedding}: a transfer model compares songs in its own embedding "
                           f"({params.embedding}); leave --embedding out")
    if int(nearest) < 0:
        raise HitrankError(f"nearest={nearest}; expected 0 (none) or a positive number of songs")
    st, rep = embed_source(folder, params, cache, workers=workers, progress=progress, skip=skip)
    man = st.manifest
    ok = man[(man.status == "ok") & man.song_id.isin(set(rep.song_ids))].reset_index(drop=True)
    failures = list(rep.failures)
    if reference is not None:
        ref, cat = _transfer_reference(reference, models, params, workers, progress)
        cat_note = ref_note = ""
    else:
        ref = models[0]["reference"]
        ref = (Reference(_reference_name(len(ref["song_ids"]), model), ref["scores"],
                         np.asarray(ref["song_ids"])) if ref is not None else None)
        ref, ref_note = (ref, "") if ref is not None else training_reference(model, None)  # a cv run's
        cat, cat_note = (neighbours.training_catalogue(model, params.embedding, None, scope=params.embedding_scope)
                         if nearest else (None, ""))
    warn_if_coarse(ref)
    use_cat = bool(nearest) and cat is not None
    context = {"store": str(st.root), "reference": ref.name if ref is not None else ref_note,
               "embedding": params.embedding,
               "analysed": "the whole song" if params.embedding_scope == "song" else f"its {params.segment} segment",
               "neighbours": cat.name if use_cat else ("" if not nearest else cat_note),
               **({"catalogue_paths": dict(zip(cat.song_ids, cat.paths, strict=True))} if use_cat else {})}
    if len(ok) == 0:  # nothing to rank (every file failed, or all were ranked before: --since)
        empty = pd.DataFrame(columns=RANKING_COLUMNS)  # what --since checks the previous rows against
        empty.attrs.update(context)
        return empty, failures  # with the context a merged --since ranking reports with
    X = st.load_embeddings(list(ok.song_id)).astype(np.float64)
    t = np.stack([predict_one(m, X) for m in models])
    mean = t.mean(axis=0)
    std = t.std(axis=0)
    o = np.stack([ood.profile_scores(X, m["ood"]) if m.get("ood") else np.full(len(ok), np.nan) for m in models])
    ood_score, is_ood, has_ood = ood.combine(o)
    pct, lo, hi = ref.percentiles(mean, std) if ref is not None else (np.full(len(ok), np.nan),) * 3
    silent = ok.silent.astype(bool).to_numpy()
    pct, lo, hi = (np.where(silent, np.nan, v) for v in (pct, lo, hi))  # ranked last, placed nowhere
    artists, titles = song_names(folder, ok.song_id, ok.path, ok.artist if "artist" in ok else None)
    ranking = pd.DataFrame({
        "song_id": ok.song_id, "path": ok.path, "artist": artists, "title": titles, "score": mean,
        "score_std": std, "n_models": len(models), "duration": ok.duration,
        "silent": ok.silent.astype(bool), "ood_score": ood_score, "ood": is_ood,
        "ood_note": "" if has_ood else NO_OOD_REFERENCE,
        "percentile": pct, "percentile_lo": lo, "percentile_hi": hi,
    })
    ranking["flags"] = flags_column(ranking)
    if use_cat:
        cols = neighbours.neighbour_columns(neighbours.unit_rows(X), cat, nearest,
                                            valid=~ok.silent.astype(bool).to_numpy())
        for c in neighbours.COLUMNS:
            ranking[c] = cols[c].to_numpy()
    ranking = ranking.sort_values(["silent", "score"], ascending=[True, False], kind="stable").reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    ranking.attrs.update(context)
    return ranking, failures


#: the columns every ranking of a transfer model has (``nearest*`` added with closest songs)
RANKING_COLUMNS = ["rank", "song_id", "path", "artist", "title", "score", "score_std", "n_models", "duration",
                   "silent", "ood_score", "ood", "ood_note", "percentile", "percentile_lo", "percentile_hi", "flags"]


def _transfer_reference(reference, models, params: FeatureParams, workers: int, progress: bool):
    """A labels CSV or folder as the percentile's reference (its songs scored by ``models``)
    and the nearest songs' catalogue."""
    src = reference_source(reference)
    st, rep = embed_source(src, params, None, workers=workers, progress=progress)
    if rep.failures:
        log.warning("%d reference song(s) of %s could not be embedded", len(rep.failures), src)
    cat = neighbours.store_catalogue(st.root, f"the songs of {src.name}", params.embedding, song_ids=rep.song_ids,
                                     titles=neighbours.labelled_titles(src))
    if len(cat.song_ids) < MIN_REFERENCE:
        raise HitrankError(f"reference={str(reference)!r}: {len(cat.song_ids)} of its songs could be used; a "
                           f"percentile needs at least {MIN_REFERENCE} (add songs, or rank without --reference)")
    cat.name = f"the {len(cat.song_ids)} songs of {src.name}"
    X = st.load_embeddings(list(cat.song_ids)).astype(np.float64)
    return Reference(cat.name, np.mean([predict_one(m, X) for m in models], axis=0), cat.song_ids), cat


# ----------------------------------------------------------------------------- commands
def transfer_cv(config, overrides=(), *, labels, out, store=None, raters=None, raters_score: str = "",
                workers: int = 1, progress: bool = True) -> dict:
    """``hitrank cv`` with a ``branch: transfer`` config."""
    cfg = load_transfer_config(config, overrides)
    if raters is not None:
        strata.parse_score_spec(raters_score, strata.read_raters_header(raters))  # fail before any audio
    check_out(out, create=False, cfg=cfg, command="cv")
    data = load_data(cfg, labels, store, workers=workers, progress=progress)
    summary = run_transfer_cv(cfg, data, out, raters=raters, raters_score=raters_score, progress=progress)
    return {"kind": RUN_KIND, "summary": summary, "failures": data.failures}


def transfer_train(config, overrides=(), *, labels, out, store=None, workers: int = 1,
                   progress: bool = True) -> dict:
    """``hitrank train`` with a ``branch: transfer`` config."""
    t0 = time.time()
    cfg = load_transfer_config(config, overrides)
    if cfg.cv.within and cfg.cv.select_by != "within":
        log.warning("cv.within=%r (--within) is not used by `train`: it reports no metrics (`hitrank cv "
                    "--within` does), and chooses the learner by %s over all songs (cv.select_by=within "
                    "would choose it within strata)", cfg.cv.within, cfg.cv.select_by)
    check_out(out, create=False, cfg=cfg, command="train")  # before any audio is decoded
    data = load_data(cfg, labels, store, workers=workers, progress=progress)
    summary = run_transfer_train(cfg, data, out, progress)
    summary["total_seconds"] = round(time.time() - t0, 1)  # with extracting (or reading) the embeddings
    return {"kind": RUN_KIND, "summary": summary, "failures": data.failures}


def is_transfer_config(config) -> bool:
    """Whether a config file (or packaged name) is a ``branch: transfer`` config (a config
    object of another branch, or None, is not)."""
    if not isinstance(config, (str, os.PathLike)):
        return False
    try:
        return read_yaml(config).get("branch") == RUN_KIND
    except ConfigError:
        return False


__all__ = ["transfer_cv", "transfer_train", "rank_transfer_folder", "run_transfer_cv",
           "run_transfer_train", "load_data", "load_model", "is_transfer_config"]
