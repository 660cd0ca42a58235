"""Metrics inside strata (genre, market, label), the stratum-mean baseline, and the label ceiling.

Real labels are confounded: genre alone ranks songs well over a whole catalogue, while a user
choosing among the demos of one genre needs the ranking *within* it. Three things live here:

Within-stratum metrics
    Computed inside each fold's test songs, never on out-of-fold predictions pooled first:
    each fold's model has its own level per stratum (a genre-only model predicts the fold's
    training mean of the genre), and pooling those levels across folds correlates with the
    test songs' own labels (negatively: a fold whose training songs of a genre were liked
    less has test songs liked more). So predictions and labels are centred per fold x
    stratum cell before the songs of a stratum are ranked together: a model that only knows
    the stratum then scores exactly 0, and the labels themselves score 1. nDCG's gains are the
    centred labels minus their minimum over the whole set (one offset for every stratum and
    resample). Reported per stratum with a bootstrap interval over songs (or, with the folds'
    groups, over whole groups: a cluster bootstrap), the mean over strata, and the mean of the
    per-fold x per-stratum cell correlations. A song whose stratum is missing (empty) has no
    stratum to be ranked in: it is left out of every within-stratum figure (it still counts
    over all songs) and counted (``missing``); :func:`within_warnings` says so. A stratum most
    of whose songs sit in fold x stratum cells of fewer than :data:`MIN_STRATUM` songs is
    named (``thin``): centring such cells leaves (almost) nothing to rank.
Stratum-mean baseline
    Each test song is predicted by its stratum's mean score over the fold's training songs:
    what "knowing the genre" is worth, next to random and the oracle. A song with no
    stratum is predicted by the mean of all the fold's training songs.
Label reliability and ceiling
    From one row per listener and song: split each song's listeners into two random halves,
    correlate the halves' song scores over songs (Spearman; overall and within stratum),
    average over random splits, correct to the full number of listeners with Spearman-Brown
    (``2r / (1 + r)``). A perfect model of the true preference correlates with the labels at
    most ``sqrt(reliability)``: the ceiling results are read against. Songs with no stratum are
    left out of the within-stratum figures. Judgements that are empty, not numbers or not
    finite are dropped with one warning naming the file, the count, the reasons and some songs.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .corpus import read_text_table
from .errors import ConfigError, LabelsError, ParameterError
from .fileio import row_lines
from .metrics import n_top, top_metrics_batch

N_BOOT = 2000  # bootstrap resamples of the within-stratum intervals
N_SPLITS = 200  # random split-halves of the listeners
CI_LEVEL = 0.95
MIN_STRATUM = 3  # songs: a stratum with fewer is left out of within-stratum metrics (named)
SEED_STREAM = 2_718  # mixed into the seed: this module's own random stream
MISSING = ""  # the stratum of a song whose stratum column is empty (or NaN, None)
THIN_SHARE = 0.5  # a stratum with more of its songs than this in cells under MIN_STRATUM songs is thin
SIGN_RHO = -0.3  # listeners' song means that go against the labels at least this much: a reversed sign?
SIGN_SONGS = 10  # songs in common needed to say so
N_NAMED = 5  # songs (or strata) named in a warning; the rest are counted
#: a raters file's column naming the listener, the first of these it has: a listener's second
#: row for one song is dropped (an export appended twice would count each listener twice)
RATER_COLUMNS = ("rater", "rater_id", "listener", "listener_id", "user", "user_id", "participant",
                 "participant_id", "respondent")
#: judgements larger than this (in absolute value) are divided by the largest before any sum
HUGE_JUDGEMENT = 1e100
#: rows a raters file's first and last rows must share, in order (and at least a quarter of its
#: rows), to be taken for an export appended to itself (fewer: listeners who answered alike, as
#: happens in a narrow file)
MIN_APPENDED = 10

log = logging.getLogger(__name__)


def _as_str(values, n: int, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=object)
    if a.shape != (n,):
        raise ParameterError(f"{what} has shape {a.shape}; expected ({n},)")
    return np.array(["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in a])


def named_some(names, n: int = N_NAMED) -> str:
    """``a, b, c`` or ``a, b, c ... (12 in all)``."""
    names = [str(v) for v in names]
    return ", ".join(names[:n]) + (f" ... ({len(names)} in all)" if len(names) > n else "")


def _row_spearman(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of the labels ``y`` and the predictions ``p`` (B, m) with
    average ranks, ``(B,)``: NaN where the row of ``y`` is constant (labels that are all equal
    rank nothing: there is nothing to agree with), 0 where only ``p`` is (a prediction that
    ranks nothing, e.g. a stratum-mean baseline after centring)."""
    ry = rankdata(y, axis=1)
    rp = rankdata(p, axis=1)
    ry -= ry.mean(axis=1, keepdims=True)
    rp -= rp.mean(axis=1, keepdims=True)
    sy, sp = (ry ** 2).sum(axis=1), (rp ** 2).sum(axis=1)
    den = np.sqrt(sy * sp)
    rho = np.where(den > 0, (ry * rp).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0)
    return np.where(sy > 0, rho, np.nan)


def _split_rho(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman of two halves' song scores (B, m) per split, ``(B,)``: NaN where either half
    is constant (neither half is the labels: a constant one ranks nothing)."""
    return np.where(np.ptp(b, axis=1) > 0, _row_spearman(a, b), np.nan)


def _constant(values: np.ndarray) -> bool:
    """Whether the values (labels) are all equal: no ranking of them is better than another."""
    return len(values) == 0 or bool(np.ptp(values) == 0)


def centre_by_cell(values, folds, strata) -> np.ndarray:
    """Values minus their mean in each fold x stratum cell, ``(n,)`` float64; exactly 0 in a
    cell whose values are all equal (never ranked on the rounding noise of its own mean)."""
    values = np.asarray(values, dtype=np.float64)
    grouped = pd.Series(values).groupby([np.asarray(folds), np.asarray(strata)])
    out = values - grouped.transform("mean").to_numpy()
    out[(grouped.transform("max") == grouped.transform("min")).to_numpy()] = 0.0
    return out


def _units(idx: np.ndarray, groups: np.ndarray | None) -> list[np.ndarray] | None:
    """The resampling units of songs ``idx``: None (each song its own unit), or one array of
    song positions per group (songs whose group is '' are units of their own)."""
    if groups is None:
        return None
    g = groups[idx]
    units = [idx[g == name] for name in sorted(set(g[g != ""]))]
    return units + [np.array([i]) for i in idx[g == ""]]


def _draw(idx: np.ndarray, units: list[np.ndarray] | None, n_boot: int, rng
          ) -> np.ndarray | list[np.ndarray]:
    """``n_boot`` bootstrap resamples of the songs ``idx``: songs drawn with replacement, a
    ``(n_boot, len(idx))`` array of positions; or, with ``units`` (:func:`_units`), whole
    units drawn with replacement (as many as there are), a list of ``n_boot`` position
    arrays whose lengths vary (a cluster bootstrap: songs of one group move together)."""
    if units is None:
        return idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))]
    picks = rng.integers(0, len(units), size=(n_boot, len(units)))
    return [np.concatenate([units[u] for u in row]) for row in picks]


def _boot(y: np.ndarray, p: np.ndarray, draws, top: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Spearman (and with ``top`` nDCG@top) of ``y`` against ``p`` on every resample of
    :func:`_draw`: two ``(n_boot,)`` arrays (the second None without ``top``)."""
    if isinstance(draws, np.ndarray):
        rho = _row_spearman(y[draws], p[draws])
        if top is None:
            return rho, None
        return rho, np.where(np.isnan(rho), np.nan, top_metrics_batch(y[draws], p[draws], top)["ndcg"])
    # cluster resamples differ in length: those of one length are computed as one batch
    rho, ndcg = np.zeros(len(draws)), (np.zeros(len(draws)) if top is not None else None)
    lengths = np.array([len(i) for i in draws])
    for m in np.unique(lengths):
        rows = np.flatnonzero(lengths == m)
        i = np.stack([draws[r] for r in rows])  # (rows, m)
        rho[rows] = _row_spearman(y[i], p[i])
        if top is not None:
            ndcg[rows] = top_metrics_batch(y[i], p[i], top)["ndcg"]
    if ndcg is not None:  # a resample of labels all equal has no nDCG either (left out of intervals)
        ndcg[np.isnan(rho)] = np.nan
    return rho, ndcg


def _quantiles(v: np.ndarray) -> list[float]:
    """The :data:`CI_LEVEL` interval of resampled values ``v`` (n_boot,); resamples whose value
    is undefined (NaN: they drew labels that are all equal) are left out; [NaN, NaN] when
    none is defined (an undefined interval)."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return [float("nan"), float("nan")]
    a = (1 - CI_LEVEL) / 2
    return [float(np.quantile(v, a)), float(np.quantile(v, 1 - a))]


def _one_unit(idx: np.ndarray, units: list[np.ndarray] | None, groups: np.ndarray | None) -> str:
    """'' when the songs ``idx`` can be resampled (2 units or more); else why not, e.g.
    ``one group: 'Some Artist'``: a cluster bootstrap of one group redraws the same songs,
    so its interval would have zero width."""
    if units is None or len(units) >= 2:
        return ""
    g = groups[idx] if groups is not None else np.array([], dtype=str)
    name = next((str(v) for v in g if v != ""), "")
    return f"one group: {name!r}" if name else "one song"


def thin_strata(folds, strata) -> dict[str, float]:
    """{stratum: share of its songs in fold x stratum cells of fewer than :data:`MIN_STRATUM`
    songs} for the strata where that share exceeds :data:`THIN_SHARE`: centring such cells
    leaves (almost) nothing to rank, so their within-stratum figures are not reported.

    Parameters
    ----------
    folds : (n,) test fold of each song
    strata : (n,) str, stratum of each song
    """
    s = np.asarray(strata)
    if not len(s):
        return {}
    size = pd.Series(np.zeros(len(s))).groupby([np.asarray(folds), s]).transform("size").to_numpy()
    share = pd.Series(size < MIN_STRATUM).groupby(s).mean()
    return {str(name): float(v) for name, v in share.items() if v > THIN_SHARE}


def within_metrics(y_true, y_pred, folds, strata, top: float = 0.1, n_boot: int = N_BOOT,
                   seed: int = 0, centre: bool = True, groups=None, ids=None) -> dict:
    """Ranking quality inside each stratum, computed on per-fold centred predictions and labels.

    Parameters
    ----------
    y_true : (n,) raw scores (any finite values)
    y_pred : (n,) out-of-fold predictions (any monotone scale per fold)
    folds : (n,) test fold of each song (one fold for a single split)
    strata : (n,) stratum of each song (e.g. genre); a song whose stratum is missing ('',
        NaN or None) is left out (it belongs to no stratum) and counted in ``missing``
    top : the top fraction of nDCG / recall inside a stratum
    n_boot : bootstrap resamples (songs resampled inside each stratum)
    seed : seed of the resampler
    centre : centre per fold x stratum cell (False: rank the raw values, for :func:`evaluate`'s
        pooled metrics, whose nDCG gains are then the labels themselves, shifted by their
        minimum only when some are negative)
    groups : (n,) group of each song (``cv.group_by``: artist, duplicate group), or None.
        Given, the intervals come from a cluster bootstrap: a stratum's groups are resampled
        with replacement, each with all its songs ('' groups: songs of their own), so songs
        that are not independent (one artist's, one recording's copies) do not narrow them.
    ids : (n,) song ids, or None: the songs with no stratum are then named in ``missing_ids``

    Returns
    -------
    dict
        ``strata``: {name: {"n", "spearman", "spearman_ci", "ndcg", "ndcg_ci", "kendall",
        "recall", "n_top"} and, where a figure is undefined, "note"}: a stratum whose
        (centred) labels are all equal has every figure NaN (note ``labels all equal``); one
        whose songs form a single resampling unit (one group of ``groups``) has its intervals
        [NaN, NaN] (note ``one group: 'name'``); a thin stratum (see ``thin``) has every
        figure NaN (note ``thin``) and takes no part in the mean; resamples that draw labels all
        equal are left out of an interval. ``mean``: {"spearman", "spearman_ci", "ndcg",
        "ndcg_ci", "strata"} (the mean over the strata whose labels vary, their number, and
        its interval from the same resamples, [NaN, NaN] when one of them has none; {} when
        no stratum's labels vary); ``cell_mean``: {"spearman", "cells"} (the mean of the
        Spearman of every fold x stratum cell with 3 songs or more whose labels vary; NaN
        over 0 cells when none has); ``left_out``: strata with fewer than
        :data:`MIN_STRATUM` songs; ``missing``: the number of songs with no stratum (left out
        of everything above), ``missing_ids`` their ids (with ``ids``; else []); ``thin``:
        {stratum: share of its songs in fold x stratum cells of fewer than
        :data:`MIN_STRATUM` songs} for the reported strata where that share exceeds
        :data:`THIN_SHARE` (:func:`thin_strata`; their figures are not reported: NaN).
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    n = len(y)
    if p.shape != (n,) or not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ParameterError(f"y_true {y.shape} and y_pred {p.shape} must be finite and equal in shape")
    if n_boot < 1:
        raise ParameterError(f"n_boot={n_boot}; expected >= 1")
    folds = np.asarray(folds)
    s = _as_str(strata, n, "strata")
    g_all = _as_str(groups, n, "groups") if groups is not None else None
    absent = s == MISSING
    missing_ids = [] if ids is None else [str(v) for v in _as_str(ids, n, "ids")[absent]]
    if absent.any():  # songs of no stratum take no part below (not even in the gain offset)
        keep = ~absent
        y, p, folds, s = y[keep], p[keep], folds[keep], s[keep]
        g_all = g_all[keep] if g_all is not None else None
        n = len(y)
    if n == 0:
        pc = g = y
    elif centre:
        pc, yc = centre_by_cell(p, folds, s), centre_by_cell(y, folds, s)
        g = yc - yc.min()  # one gain offset for the whole set
    else:
        pc, g = p, y - min(float(y.min()), 0.0)
    rng = np.random.default_rng([seed, SEED_STREAM])
    out, boots, left_out = {}, {"spearman": [], "ndcg": []}, []
    nan2 = [float("nan"), float("nan")]
    thin_all = thin_strata(folds, s) if centre else {}
    for name in sorted(set(s)):
        idx = np.flatnonzero(s == name)
        if len(idx) < MIN_STRATUM:
            left_out.append(name)
            continue
        yi, pi = g[idx], pc[idx]
        if name in thin_all or _constant(yi):  # nothing to rank: every figure undefined, no part of the mean
            out[name] = {"n": len(idx), "spearman": float("nan"), "spearman_ci": nan2, "ndcg": float("nan"),
                         "ndcg_ci": nan2, "kendall": float("nan"), "recall": float("nan"),
                         "n_top": n_top(len(idx), top), "note": "thin" if name in thin_all else "labels all equal"}
            continue
        point = top_metrics_batch(yi[None], pi[None], top)
        units = _units(idx, g_all)
        note = _one_unit(idx, units, g_all)
        if note:  # resampling one group redraws the same songs: no interval (nor for the mean)
            b_rho = b_ndcg = np.full(n_boot, np.nan)
        else:
            b_rho, b_ndcg = _boot(g, pc, _draw(idx, units, n_boot, rng), top)
        boots["spearman"].append(b_rho)
        boots["ndcg"].append(b_ndcg)
        out[name] = {"n": len(idx), "spearman": float(_row_spearman(yi[None], pi[None])[0]),
                     "spearman_ci": _quantiles(b_rho), "ndcg": float(point["ndcg"][0]),
                     "ndcg_ci": _quantiles(b_ndcg), "kendall": float(point["kendall"][0]),
                     "recall": float(point["recall"][0]), "n_top": n_top(len(idx), top)}
        if note:
            out[name]["note"] = note
    ranked = [v for v in out.values() if np.isfinite(v["spearman"])]
    mean = {}
    if ranked:
        for key in ("spearman", "ndcg"):
            mean[key] = float(np.mean([v[key] for v in ranked]))
            mean[f"{key}_ci"] = _quantiles(np.mean(boots[key], axis=0))  # NaN rows: left out
        if any("note" in v for v in ranked):  # a stratum held fixed would narrow the mean's interval
            mean["spearman_ci"], mean["ndcg_ci"] = list(nan2), list(nan2)
        mean["strata"] = len(ranked)
    cells = []
    for (_fold, name), grp in pd.Series(np.arange(n)).groupby([folds, s]):
        if name in out and len(grp) >= MIN_STRATUM:
            i = grp.to_numpy()
            rho = float(_row_spearman(y[i][None], p[i][None])[0])  # a cell: no centring needed
            if np.isfinite(rho):  # a cell whose labels are all equal has no correlation
                cells.append(rho)
    thin = {name: share for name, share in sorted(thin_strata(folds, s).items()) if name in out}
    return {"strata": out, "mean": mean,
            "cell_mean": {"spearman": float(np.mean(cells)) if cells else float("nan"),
                          "cells": len(cells)},
            "left_out": left_out, "missing": int(absent.sum()), "missing_ids": missing_ids, "thin": thin}


def check_strata(values, column: str, flag: str = "--within") -> None:
    """Refuse a stratum column that cannot stratify: the label itself (``hit_score``), or
    values ``(n,)`` (``''`` where empty) with fewer than two strata of two songs or more
    (every song in one stratum: the within metrics would repeat the pooled ones and the
    stratum-mean baseline would be one constant; every song in a stratum of its own:
    nothing to rank inside them).

    Raises
    ------
    ConfigError
        Naming the flag, the column and what it holds.
    """
    name = f"{flag}={column!r}" if "." in flag else f"{flag} {column!r}"
    if column == "hit_score":
        raise ConfigError(f"{name} is the label itself; give a column that groups songs (genre, market, label)")
    s = pd.Series(np.asarray(values, dtype=object)).fillna(MISSING).astype(str).str.strip()
    counts = s[s != MISSING].value_counts()
    if len(counts) == 0:
        raise ConfigError(f"{name}: the column is empty for every song; fill it in, or drop {flag}")
    if len(counts) == 1:
        raise ConfigError(f"{name}: every song with a value there is in one stratum ({counts.index[0]!r}): the "
                          f"within metrics would repeat the pooled ones; give a column with several strata, "
                          f"or drop {flag}")
    if (counts >= 2).sum() < 2:
        raise ConfigError(f"{name}: {len(counts)} strata, but at most one holds two songs or more: nothing to "
                          f"rank inside them; give a column that groups songs (genre, market, label), or "
                          f"drop {flag}")
    folded = pd.Series(counts.index, index=counts.index).str.casefold()
    alike = [sorted(g.index) for _, g in folded.groupby(folded) if len(g) > 1]
    if alike:
        log.warning("%s: %d stratum name(s) differ only in upper/lower case and are counted apart (%s); write "
                    "each the same way if they are one", name, len(alike),
                    "; ".join(" / ".join(repr(v) for v in g) for g in alike[:N_NAMED]))


def within_warnings(within: dict | None, column: str = "stratum") -> list[str]:
    """What a reader of :func:`within_metrics` results ``within`` must be told, one line each:
    songs with no stratum (left out of the within-stratum figures), strata whose songs sit
    mostly in fold x stratum cells too small to rank in, strata whose labels are all equal
    (no figure) and strata of one group (no interval); [] when none (or no results).

    ``column`` names the stratum column in the lines (e.g. ``genre``).
    """
    if not within:
        return []
    lines = []
    k = int(within.get("missing", 0))
    if k:
        ids = within.get("missing_ids") or []
        lines.append(f"{k} song(s) have no {column} ({'e.g. ' + named_some(ids) + '; ' if ids else ''}empty or "
                     f"absent in the labels): they count over all songs but are left out of the within-{column} "
                     f"metrics, the {column}-mean baseline's within rows and the within-{column} ceiling; "
                     f"fill in their {column} to include them")
    thin = within.get("thin") or {}
    if thin:
        total = len(within.get("strata", {}))
        cells = within.get("cell_mean", {}).get("cells", 0)
        lines.append(f"within {column}: most songs of {len(thin)} of {total} {column} strata ("
                     + named_some(f"{name} {share:.0%}" for name, share in thin.items())
                     + f") sit in fold x {column} cells of fewer than {MIN_STRATUM} songs"
                     + (f" (no cell has {MIN_STRATUM})" if cells == 0 else "")
                     + f"; centring leaves (almost) nothing to rank in them, so their within-{column} "
                     f"figures are not reported (n/a) and left out of the mean over strata: use fewer "
                     f"folds (--folds) or more songs per {column}")
    notes = {name: d["note"] for name, d in within.get("strata", {}).items() if d.get("note")}
    equal = [name for name, note in notes.items() if note == "labels all equal"]
    told = [name for name in equal if name not in thin]  # thin strata: told above (centring left nothing)
    if told:
        lines.append(f"within {column}: the labels of {len(told)} {column} strata ({named_some(told)}) are all "
                     f"equal inside each fold: their Spearman and nDCG are undefined (n/a) and left out of "
                     f"the mean over strata; give them songs whose scores differ")
    single = {name: note for name, note in notes.items() if note not in ("labels all equal", "thin")}
    if single:
        lines.append(f"within {column}: " + named_some(f"{name} ({note})" for name, note in single.items())
                     + ": all songs of the stratum are one resampling group, so the cluster bootstrap can only "
                     "redraw the same songs: no interval (n/a) for them nor for the mean over strata; "
                     f"group by a finer column (--group-by) or add songs of other groups to each {column}")
    return lines


def interval_note(result: dict, what: str = "all songs") -> str:
    """One line on a :func:`within_metrics` stratum entry (e.g. :func:`evaluate`'s
    ``pooled``) whose figures are undefined (its ``note``), '' when none: ``what`` names it."""
    note = result.get("note", "")
    if not note:
        return ""
    if note == "labels all equal":
        return f"{what}: the labels are all equal: Spearman and nDCG are undefined (n/a); give songs whose scores differ"
    return (f"{what}: {note}: all songs are one resampling group, so the cluster bootstrap can only redraw "
            "them; group by a finer column (--group-by)")


def stratum_mean_predictions(y_true, folds, strata) -> np.ndarray:
    """Out-of-fold predictions of the stratum-mean baseline, ``(n,)``.

    Each song of fold ``f`` is predicted by the mean score of the songs of its stratum that
    are not in fold ``f``; a song with no stratum ('', NaN, None), or of a stratum with no
    training song there, by the mean of all training songs.
    """
    y = np.asarray(y_true, dtype=np.float64)
    folds = np.asarray(folds)
    s = _as_str(strata, len(y), "strata")
    pred = np.empty(len(y))
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        means = pd.Series(y[train]).groupby(s[train]).mean()
        fallback = float(y[train].mean()) if train.any() else 0.0
        pred[test] = [fallback if name == MISSING else means.get(name, fallback) for name in s[test]]
    return pred


# ----------------------------------------------------------------------------- raters
def parse_score_spec(spec: str, columns) -> tuple[str, str | None]:
    """``"liked-disliked"`` -> ("liked", "disliked"); ``"rating"`` -> ("rating", None).

    A column name that itself contains '-' is taken whole when it exists.
    """
    columns = list(columns)
    spec = spec.strip()
    if not spec:
        raise LabelsError(f"--raters needs --raters-score: the raters file's judgement column, or the "
                          f"difference of two, e.g. --raters-score liked-disliked (columns: {columns})")
    if spec in columns:
        return spec, None
    if "-" in spec:
        a, b = (part.strip() for part in spec.split("-", 1))
        missing = [c for c in (a, b) if c not in columns]
        if not missing:
            return a, b
        raise LabelsError(f"--raters-score {spec!r}: column(s) {missing} not in the raters file "
                          f"(columns: {columns})")
    raise LabelsError(f"--raters-score {spec!r}: no such column in the raters file (columns: "
                      f"{columns}); give one numeric column or the difference of two, e.g. liked-disliked")


def read_raters_header(path) -> list[str]:
    """The columns of a raters CSV (a one-line LabelsError when it cannot be read or has no
    ``song_id`` column)."""
    columns = list(read_text_table(path, "raters", nrows=0).columns)
    _need_song_id(path, columns)
    return columns


def _need_song_id(path, columns) -> None:
    if "song_id" not in columns:
        raise LabelsError(f"{str(path)!r}: a raters file needs a 'song_id' column (found {list(columns)})")


def read_raters(path, score: str) -> pd.DataFrame:
    """One row per listener and song -> a frame ``song_id, judgement`` (float; TRUE/FALSE
    cells, as spreadsheets write checkboxes, are 1/0; judgements beyond
    :data:`HUGE_JUDGEMENT` divided by the largest). A listener's second row for one song
    is dropped, and a file that looks appended to itself warned about (:func:`_repeated_rows`).

    Rows whose judgement is empty, not a number or not finite are dropped, counted in the
    frame's ``attrs["dropped"]`` (``attrs["reasons"]``: {reason: rows}; ``attrs["rows"]``:
    the file's rows) and reported in one logged warning (also ``attrs["warning"]``, '' when
    none) naming the file, the count, the reasons and the first rows' songs and values.
    """
    df = read_text_table(path, "raters")
    _need_song_id(path, df.columns)
    a, b = parse_score_spec(score, df.columns)
    value = _judgement_values(df[a])
    if b is not None:
        value = value - _judgement_values(df[b])
    out = pd.DataFrame({"song_id": df["song_id"].str.strip(), "judgement": value})
    ok = np.isfinite(out["judgement"].to_numpy(dtype=np.float64))
    warning, reasons = _dropped_judgements(path, df, [c for c in (a, b) if c is not None], ~ok)
    if warning:
        log.warning("%s", warning)
    repeated, repeat_warning = _repeated_rows(path, df, ok)
    if repeat_warning:
        log.warning("%s", repeat_warning)
    out = out[ok & ~repeated].reset_index(drop=True)
    big = float(out["judgement"].abs().max()) if len(out) else 0.0
    if big > HUGE_JUDGEMENT:  # sums of such numbers overflow; the reliability does not depend on the scale
        out["judgement"] = out["judgement"] / big
    out.attrs["dropped"] = int((~ok).sum() + repeated.sum())
    out.attrs["reasons"] = {**reasons, **({"repeated listener": int(repeated.sum())} if repeated.any() else {})}
    out.attrs["rows"] = int(len(df))
    out.attrs["warning"] = "; ".join(w for w in (warning, repeat_warning) if w)
    return out


def _appended_copy(df: pd.DataFrame) -> int:
    """The largest ``k`` (at least :data:`MIN_APPENDED` and a quarter of the rows, at most
    half) such that the last ``k`` rows of ``df`` equal its first ``k``, in order (an export
    appended to itself, with or without rows between); 0 when there is none. Only the ``k``
    whose last block starts with the first row are compared."""
    n = len(df)
    if n < 2 * MIN_APPENDED:
        return 0
    h = pd.util.hash_pandas_object(df, index=False).to_numpy()
    least = max(MIN_APPENDED, n // 4)
    starts = np.flatnonzero(h == h[0])  # the last k rows start at n - k
    return next((n - i for i in starts if least <= n - i <= n // 2 and np.array_equal(h[:n - i], h[i:])), 0)


def _judgement_values(cells: pd.Series) -> pd.Series:
    """A raters column as numbers (NaN where not one): TRUE/FALSE, as spreadsheets write
    checkboxes, are 1 and 0."""
    text = cells.astype(str).str.strip()
    flags = text.str.lower().map({"true": "1", "false": "0"})
    return pd.to_numeric(flags.fillna(text), errors="coerce")


def _repeated_rows(path, df: pd.DataFrame, ok: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows of a raters file that count a listener twice: with a listener column
    (:data:`RATER_COLUMNS`), each usable row (``ok``) after a listener's first for a song is
    dropped (the mask, True there) and named in a warning; without one, a repeated row cannot
    be told from a listener who answered alike, so nothing is dropped, and a warning says
    when the file looks appended to itself (:func:`_appended_copy`)."""
    none = np.zeros(len(df), dtype=bool)
    rater = next((c for c in RATER_COLUMNS if c in df.columns), None)
    if rater is None:
        k = _appended_copy(df)
        if not k:
            return none, ""
        lines = row_lines(path, len(df))
        return none, (f"{str(path)!r}: its last {k} rows (from line {lines[len(df) - k]}) repeat its first {k} "
                      "in the same order, as a file appended to itself would: if it is one, its listeners count "
                      "twice and overstate the ceiling (remove the copy); a listener column "
                      f"({RATER_COLUMNS[0]!r}) lets hitrank tell repeats from listeners who answered alike")
    who = df[rater].fillna("").astype(str).str.strip()
    key = pd.DataFrame({"rater": who, "song": df["song_id"].fillna("").astype(str).str.strip()})
    counted = ok & (who != "").to_numpy()  # a row with no listener cannot repeat one
    repeated = none.copy()
    repeated[counted] = key[counted].duplicated().to_numpy()
    if not repeated.any():
        return none, ""
    lines = row_lines(path, len(df))
    shown = "; ".join(f"line {lines[i]} ({rater}={who.iloc[i]!r}, song {key.song.iloc[i]!r})"
                      for i in np.flatnonzero(repeated)[:N_NAMED])
    return repeated, (f"{str(path)!r}: {int(repeated.sum())} row(s) judge a song a listener has already judged "
                      f"(column {rater!r}), dropped: {shown}{' ...' if repeated.sum() > N_NAMED else ''}; each "
                      "listener counts once per song")


def _dropped_judgements(path, df: pd.DataFrame, columns: list[str], bad: np.ndarray) -> tuple[str, dict]:
    """One line on the rows ``bad`` of a raters file whose judgement cannot be used ('' if none):
    how many, why (empty, not a number, not finite), the first few (CSV line, song, values);
    and {reason: rows}."""
    if not bad.any():
        return "", {}
    reasons, examples = {}, []
    lines = row_lines(path, len(df))  # only now: a file with nothing to report is read once
    text = {c: df[c].to_numpy() for c in [*columns, "song_id"]}
    for i in np.flatnonzero(bad):
        cells = {c: str(text[c][i]).strip() for c in columns}
        why = []
        for v in cells.values():
            x = pd.to_numeric(v, errors="coerce") if v else np.nan
            why.append("empty" if not v else "not a number" if np.isnan(x) and v.lower().lstrip("+-") != "nan"
                       else "not finite" if not np.isfinite(x) else "")
        reason = next((w for w in why if w), "not finite")  # two huge cells whose difference overflows
        reasons[reason] = reasons.get(reason, 0) + 1
        if len(examples) < N_NAMED:
            shown = ", ".join(f"{c}={v!r}" for c, v in cells.items())
            examples.append(f"line {lines[i]} {str(text['song_id'][i]).strip()!r} ({shown})")
    more = " ..." if bad.sum() > N_NAMED else ""
    return (f"{str(path)!r}: {int(bad.sum())} of {len(df)} judgement rows dropped ("
            + ", ".join(f"{k} {r}" for r, k in reasons.items()) + f"): {'; '.join(examples)}{more}; "
            "give each row a finite number or remove it"), reasons


def split_half_reliability(raters: pd.DataFrame, strata: dict | None = None,
                           n_splits: int = N_SPLITS, seed: int = 0) -> dict:
    """Split-half reliability of song scores that average listeners' judgements.

    Parameters
    ----------
    raters : frame with ``song_id`` and ``judgement`` (one row per listener and song)
    strata : {song_id: stratum} for the within-stratum figures, or None (a song with no
        stratum, or not in it, takes no part in them)
    n_splits : random splits of each song's listeners into two halves
    seed : seed of the splits

    Returns
    -------
    dict: ``songs`` (songs with 2 listeners or more), ``raters_median``, ``split_half``,
    ``reliability`` (Spearman-Brown corrected), ``ceiling`` (its square root), and with strata
    ``within`` {``split_half``, ``reliability``, ``ceiling``, ``strata``} (per-stratum
    correlations averaged over the strata with 3 songs or more whose judgements vary, and
    their number); see :func:`_corrected` for the undefined (NaN) cases. ``warnings``: one
    line each: judgements that do not vary, listeners who disagree, and a ceiling measured on
    fewer songs or strata than the model's (those of ``strata``' keys, or, without strata,
    ``raters.attrs["songs"]`` when set).
    """
    if n_splits < 1:
        raise ParameterError(f"n_splits={n_splits}; expected >= 1")
    groups = [g.to_numpy(dtype=np.float64) for _, g in raters.groupby("song_id", sort=True)["judgement"]]
    ids = np.array(sorted(raters["song_id"].unique()))
    keep = np.array([len(g) >= 2 for g in groups], dtype=bool)
    groups = [g for g, k in zip(groups, keep, strict=True) if k]
    ids = ids[keep]
    if len(ids) < MIN_STRATUM:
        raise LabelsError(f"the raters file has only {len(ids)} songs with two listeners or more; "
                          f"a split-half reliability needs {MIN_STRATUM} or more")
    rng = np.random.default_rng([seed, SEED_STREAM, 1])
    halves = np.empty((n_splits, 2, len(ids)))
    for j, g in enumerate(groups):
        k = len(g) // 2
        for i in range(n_splits):
            perm = rng.permutation(len(g))
            halves[i, 0, j] = g[perm[:k]].mean()
            halves[i, 1, j] = g[perm[k:]].mean()
    r = _mean_defined(_split_rho(halves[:, 0], halves[:, 1]))
    out = {"songs": int(len(ids)), "raters_median": float(np.median([len(g) for g in groups])),
           **_corrected(r)}
    warnings = [w for w in [_reliability_warning(r, "")] if w]
    if strata:
        s = _as_str([strata.get(i, MISSING) for i in ids], len(ids), "strata")
        per = [_mean_defined(_split_rho(halves[:, 0, s == name], halves[:, 1, s == name]))
               for name in sorted(set(s) - {MISSING}) if (s == name).sum() >= MIN_STRATUM]
        per = [v for v in per if np.isfinite(v)]  # a stratum whose judgements do not vary has none
        if per:
            out["within"] = {**_corrected(float(np.mean(per))), "strata": len(per)}
            if not warnings:
                warnings += [w for w in [_reliability_warning(out["within"]["split_half"], "within strata")] if w]
    warnings += _coverage_warning(ids, strata, raters.attrs.get("songs"))
    out["warnings"] = warnings
    return out


def sign_warning(raters: pd.DataFrame, labels: dict) -> str:
    """One line when the listeners' mean judgement of each song goes against the songs' labels
    (Spearman at most :data:`SIGN_RHO` over the songs both have, :data:`SIGN_SONGS` or more;
    judgements only weakly related to the labels may go below 0 by chance): the split-half cannot
    see a judgement of reversed sign (``disliked-liked`` for a label of liked minus disliked),
    and the ceiling it gives is then not the labels'; '' otherwise.

    Parameters
    ----------
    raters : frame with ``song_id`` and ``judgement`` (one row per listener and song)
    labels : {song_id: hit score}
    """
    means = raters.groupby("song_id")["judgement"].mean()
    common = [i for i in means.index if i in labels]
    if len(common) < SIGN_SONGS:
        return ""
    rho = means[common].corr(pd.Series([labels[i] for i in common], index=common), method="spearman")
    if not np.isfinite(rho) or rho > SIGN_RHO:
        return ""
    return (f"label ceiling: the listeners' mean judgement goes against the labels' hit_score (Spearman {rho:+.2f} "
            f"over {len(common)} songs): is the sign of --raters-score reversed (e.g. disliked-liked for a label "
            "of liked minus disliked)? The ceiling is of the judgement, not of these labels")


def _mean_defined(rho: np.ndarray) -> float:
    """The mean of the defined (finite) split-half correlations, NaN when none is (every
    split's first half had all songs equal: judgements that do not vary)."""
    rho = rho[np.isfinite(rho)]
    return float(rho.mean()) if len(rho) else float("nan")


def _corrected(r: float) -> dict:
    """Split-half ``r`` -> {"split_half", "reliability" (Spearman-Brown ``2r / (1 + r)``),
    "ceiling" (its square root)}. ``r <= 0`` (listeners who do not agree): reliability 0 and
    no ceiling (NaN); ``r`` NaN (judgements that do not vary): both NaN."""
    if not np.isfinite(r):
        return {"split_half": float("nan"), "reliability": float("nan"), "ceiling": float("nan")}
    if r <= 0:
        return {"split_half": float(r), "reliability": 0.0, "ceiling": float("nan")}
    rel = 2 * r / (1 + r)
    return {"split_half": float(r), "reliability": float(rel), "ceiling": float(np.sqrt(rel))}


def _reliability_warning(r: float, where: str) -> str:
    """One line when split-half ``r`` gives no ceiling ('' when it does); ``where`` e.g.
    'within strata'."""
    at = f" {where}" if where else ""
    if not np.isfinite(r):
        return (f"label ceiling{at}: the judgements do not vary: no reliability and no ceiling; "
                "--raters-score must name a column whose values differ between listeners and songs")
    if r <= 0:
        return (f"label ceiling{at}: the listeners disagree: split-half {r:+.2f} <= 0, reliability 0 and "
                "no ceiling; check that --raters-score names the judgement (e.g. liked-disliked) and its sign")
    return ""


def _coverage_warning(ids: np.ndarray, strata: dict | None, n_songs) -> list[str]:
    """One line when the ceiling is measured on fewer songs (``ids``, those with 2 listeners or
    more) or strata than the model (its songs: ``strata``' keys, or ``n_songs``; its strata:
    those of :data:`MIN_STRATUM` songs or more); [] otherwise."""
    m = len(strata) if strata else (int(n_songs) if n_songs else 0)
    n = int(np.isin(ids, list(strata)).sum()) if strata else len(ids)
    parts = [f"{n} of the model's {m} songs"] if m and n < m else []
    if strata:
        def ranked(values) -> int:  # strata with enough songs to be ranked in
            counts = pd.Series([v for v in values if v != MISSING], dtype=object).value_counts()
            return int((counts >= MIN_STRATUM).sum())
        big = ranked(_as_str(list(strata.values()), len(strata), "strata"))
        k = ranked(_as_str([strata.get(i, MISSING) for i in ids], len(ids), "strata"))
        if k < big:
            parts.append(f"{k} of its {big} strata")
    if not parts:
        return []
    return [f"the label ceiling is measured on {' and '.join(parts)} (the raters' songs with two listeners "
            "or more): read it as a guide for those only, or give judgements for the other songs"]




def evaluate(y_true, y_pred, folds, strata=None, top: float = 0.1, n_boot: int = N_BOOT,
             seed: int = 0, groups=None, ids=None) -> dict:
    """Pooled out-of-fold Spearman and nDCG@top over all songs with bootstrap intervals, and,
    with ``strata``, :func:`within_metrics`. ``groups``: cluster bootstrap intervals (see
    :func:`within_metrics`); ``ids``: the song ids, to name the songs with no stratum.

    Returns
    -------
    dict: ``pooled`` {"n", "spearman", "spearman_ci", "ndcg", "ndcg_ci", "kendall", "recall",
    "n_top"} (Kendall and recall on the true top fraction), ``within`` (None without strata) and
    ``resampled``: what the intervals resample, ``songs`` or ``groups``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    if len(y) < MIN_STRATUM:
        raise ParameterError(f"{len(y)} songs; metrics need at least {MIN_STRATUM}")
    one = np.zeros(len(y), dtype=int)  # one set of songs, ranked as they are
    pooled = within_metrics(y, y_pred, one, one, top, n_boot, seed, centre=False, groups=groups)["strata"]["0"]
    within = (within_metrics(y, y_pred, folds, strata, top, n_boot, seed, groups=groups, ids=ids)
              if strata is not None else None)
    return {"pooled": pooled, "within": within, "resampled": "songs" if groups is None else "groups"}


def paired_difference(y_true, pred_a, pred_b, folds, strata=None, n_boot: int = N_BOOT,
                      seed: int = 0, groups=None) -> dict:
    """Spearman of ``a`` minus Spearman of ``b`` on the same songs, with a paired bootstrap
    over songs (resampled inside strata; with ``groups``, whole groups, see
    :func:`within_metrics`): pooled over all songs and, with ``strata``, the mean
    within-stratum difference (per-fold centred, as :func:`within_metrics`; songs with no
    stratum take part in the pooled difference only). Undefined figures are NaN as in
    :func:`within_metrics`: thin strata and strata whose labels are all equal are left out of
    the mean, and a stratum of one group leaves the within interval [NaN, NaN].

    Returns ``{"pooled": {"diff", "ci"}, "within": {"diff", "ci"} or None, "resampled":
    "songs" | "groups"}``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    a, b = np.asarray(pred_a, dtype=np.float64), np.asarray(pred_b, dtype=np.float64)
    if a.shape != y.shape or b.shape != y.shape or not np.isfinite(np.stack([y, a, b])).all():
        raise ParameterError(f"y_true {y.shape}, pred_a {a.shape}, pred_b {b.shape} must be finite and equal in shape")
    if n_boot < 1:
        raise ParameterError(f"n_boot={n_boot}; expected >= 1")
    folds = np.asarray(folds)
    s = _as_str(strata if strata is not None else np.zeros(len(y), dtype=int), len(y), "strata")
    g_all = _as_str(groups, len(y), "groups") if groups is not None else None
    rng = np.random.default_rng([seed, SEED_STREAM, 2])
    if g_all is None:
        draw = np.concatenate([rng.choice(np.flatnonzero(s == name), size=(n_boot, (s == name).sum()))
                               for name in sorted(set(s))], axis=1)  # (n_boot, n): strata keep their sizes
    else:  # strata keep their numbers of groups
        parts = [_draw(idx, _units(idx, g_all), n_boot, rng)
                 for idx in (np.flatnonzero(s == name) for name in sorted(set(s)))]
        draw = [np.concatenate(row) for row in zip(*parts, strict=True)]
    full = np.arange(len(y))[None]
    pooled = _boot(y, a, draw)[0] - _boot(y, b, draw)[0]
    if g_all is not None and all(_one_unit(idx, _units(idx, g_all), g_all) for idx in
                                 (np.flatnonzero(s == name) for name in sorted(set(s)))):
        pooled = np.full(n_boot, np.nan)  # every stratum one group: resamples redraw the same songs
    point = float((_row_spearman(y[full], a[full]) - _row_spearman(y[full], b[full]))[0])
    out = {"pooled": {"diff": point, "ci": _quantiles(pooled)}, "within": None,
           "resampled": "songs" if g_all is None else "groups"}
    if strata is not None:
        ac, bc = centre_by_cell(a, folds, s), centre_by_cell(b, folds, s)
        yc = centre_by_cell(y, folds, s)
        per, per_point = [], []
        thin = thin_strata(folds, s)
        for name in sorted(set(s) - {MISSING}):
            idx = np.flatnonzero(s == name)
            if len(idx) < MIN_STRATUM or name in thin or _constant(yc[idx]):  # as within_metrics: nothing to rank
                continue
            units = _units(idx, g_all)
            if _one_unit(idx, units, g_all):  # as within_metrics: no interval, nor for the mean
                per.append(np.full(n_boot, np.nan))
            else:
                i = _draw(idx, units, n_boot, rng)
                per.append(_boot(yc, ac, i)[0] - _boot(yc, bc, i)[0])
            per_point.append(float((_row_spearman(yc[idx][None], ac[idx][None])
                                    - _row_spearman(yc[idx][None], bc[idx][None]))[0]))
        if per:
            out["within"] = {"diff": float(np.mean(per_point)), "ci": _quantiles(np.mean(per, axis=0))}
    return out


__all__ = ["within_metrics", "thin_strata", "within_warnings", "interval_note", "stratum_mean_predictions", "centre_by_cell", "read_raters",
           "split_half_reliability", "sign_warning", "parse_score_spec", "evaluate", "paired_difference"]
