"""Preparing descriptor rows for a model: inputs, target, one row per song, scaling.

Before any split, copies of a song (the same URI, or the same artist + title + duration) are
reduced to one row, the earliest, so no song is on both sides of a split (:func:`prepare`).
Medians (for missing cells), means and standard deviations are fitted by :class:`Scaler` on
the training part of a fold only. What a network reads (:func:`network_inputs`) follows the
learner's spec (:mod:`.learners`): flat rows, or each song's artist history as a sequence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, HitrankError, LabelsError
from .config import DescriptorConfig
from .history import history_features, history_sequences
from .learners import learner
from .table import (
    DESCRIPTORS,
    DescriptorTable,
    numeric_column,
    require_columns,
    song_keys,
    target_values,
)

log = logging.getLogger(__name__)
#: rows left out for a bad target that are named one by one in the log (then a count)
N_LOGGED_PROBLEMS = 10
#: regression target transforms that need a positive target, and what to use instead
POSITIVE_ONLY = {"log": "--set data.transform=log1p (takes 0) or --set data.transform=none"}
#: rows named in such an error before "and N more"
N_SHOWN = 5


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
    ids, artists : (n,) str, each row's readable name and artist
    order : (n,) float, ``data.order_column`` (NaN when missing or the table has none)
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
    """The input columns of a table: ``data.features`` (or every descriptor with values),
    ``data.extra``, then the ``data.optional`` columns the table has with values."""
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
    if d.task == "regress" and need_target and d.transform in POSITIVE_ONLY:
        _check_positive(d, table, raw, keep)
    if d.task == "regress" and need_target:
        neg = keep & (raw < 0)
        problems += [f"{table.where(i)} ({table.ids[i]!r}): {d.target}={raw[i]} is negative"
                     for i in np.flatnonzero(neg)]
        keep &= ~neg
    if d.task == "classify":
        y = raw >= d.hit_threshold if d.hit_threshold >= 0 else raw
        if d.hit_threshold < 0 and need_target:
            bad = keep & ~np.isin(raw, (0.0, 1.0))
            problems += [f"{table.where(i)} ({table.ids[i]!r}): {d.target}={raw[i]} is not 0 or 1 "
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
        why = f" ({len(problems)} left out, e.g. {problems[0]})" if problems else ""
        raise LabelsError(f"{table.sources[0]!r}: only {len(prep.y)} usable rows{why}; need at least 10")
    _check_some_values(table, prep.X, columns, need_target)
    if need_target and d.task == "classify":
        _check_two_classes(d, table, prep.y)
    if need_target and d.task == "regress" and np.ptp(prep.raw) == 0:
        raise LabelsError(f"{table.sources[0]!r}: the target column {d.target!r} is {prep.raw[0]:g} in every one of "
                          f"the {len(prep.raw)} usable rows: nothing to learn or rank; give a table whose targets "
                          "differ")
    return prep, problems


def _check_some_values(table: DescriptorTable, X: np.ndarray, columns: list[str], need_target: bool) -> None:
    """An input column with no number in any row (``X`` (n, k)): refused when training (its
    'training median' would be a made-up 0), warned about when predicting (filled with the
    model's training median)."""
    empty = [c for j, c in enumerate(columns) if not np.isfinite(X[:, j]).any()]
    if not empty:
        return
    what = f"{table.sources[0]!r}: column(s) {empty} hold no number in any of the {len(X)} rows"
    if need_target:
        raise LabelsError(f"{what}; fill them in, or use a config without them")
    log.warning("%s: filled with the model's training median; their part of the prediction means nothing", what)


def _check_positive(d, table: DescriptorTable, raw: np.ndarray, keep: np.ndarray) -> None:
    """Raise a ConfigError naming the rows (CSV lines) whose target ``d.transform`` cannot take
    (a log of 0 or of a negative score), and the transforms that can; never a silent floor."""
    bad = keep & ~(raw > 0)
    if bad.any():
        n_bad = int(bad.sum())
        shown = [f"{table.where(i)} ({table.ids[i]!r}: {raw[i]:g})" for i in np.flatnonzero(bad)[:N_SHOWN]]
        more = f" and {n_bad - N_SHOWN} more" if n_bad > N_SHOWN else ""
        raise ConfigError(
            f"{', '.join(map(repr, table.sources))}: data.transform={d.transform!r} needs {d.target} > 0; {n_bad} "
            f"row(s) have other values: {', '.join(shown)}{more}. Use {POSITIVE_ONLY[d.transform]}")


def _check_two_classes(d, table: DescriptorTable, y: np.ndarray) -> None:
    """Raise a LabelsError when the usable rows hold one class only: a classifier would learn
    nothing (and the baselines cannot be fitted)."""
    n_hit = int(np.sum(y == 1))
    n_other = int(np.sum(y == 0))
    if n_hit and n_other:
        return
    hit = f"{d.target} >= {d.hit_threshold:g}" if d.hit_threshold >= 0 else f"{d.target} = 1"
    fix = ("raise data.keep_hits" if d.keep_hits < 1 and n_other else
           "change data.hit_threshold" if d.hit_threshold >= 0 else "give a table with both")
    raise LabelsError(
        f"{table.sources[0]!r}: the target column {d.target!r} has one class only among the "
        f"{len(y)} usable rows: {n_hit} hit(s) ({hit}), {n_other} non-hit(s); a classifier needs "
        f"hits and non-hits: {fix}")


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
    first = np.r_[True, key[srt][1:] != key[srt][:-1]][:len(srt)]  # no row: nothing kept
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


def flat_inputs(prep: Prepared) -> tuple[np.ndarray, list[str]]:
    """Descriptors plus the artist-history summary columns when there are any: (n, F') and
    their F' names."""
    if prep.history is None:
        return prep.X, prep.names
    H, hnames = prep.history
    return np.hstack([prep.X, H]), prep.names + hnames


def model_columns(cfg: DescriptorConfig, prep: Prepared) -> tuple[np.ndarray, list[str]]:
    """The columns the scaler is fitted on and the importance is measured for: (n, F) and
    their names; :func:`flat_inputs` unless the learner reads sequences (then the
    descriptors only: the history is the sequence)."""
    if learner(cfg.model.name).sequences:
        return prep.X, prep.names
    return flat_inputs(prep)


def network_inputs(cfg: DescriptorConfig, prep: Prepared, scaler: Scaler, y_std: tuple) -> np.ndarray:
    """What the learner reads: (n, F') scaled rows, or (n, k + 1, F + 2) history sequences
    (scaled descriptors, the earlier songs' targets on the model's scale, a flag)."""
    Z = scaler.transform(model_columns(cfg, prep)[0])
    if learner(cfg.model.name).sequences:
        ys = np.nan_to_num((prep.y - y_std[0]) / y_std[1]) if cfg.data.task == "regress" else np.nan_to_num(prep.y)
        return history_sequences(Z, ys, prep.artists, prep.order, cfg.data.history_len, prep.songs)
    return Z


def log_left_out(problems: list[str]) -> None:
    """One warning per row left out (the first :data:`N_LOGGED_PROBLEMS`), then a count."""
    for p in problems[:N_LOGGED_PROBLEMS]:
        log.warning("row left out: %s", p)
    if len(problems) > N_LOGGED_PROBLEMS:
        log.warning("... %d more rows left out", len(problems) - N_LOGGED_PROBLEMS)
