"""The ranking CSV: ranked songs and failed files in one table, and growing it (``--since``).

``rank --out ranking.csv`` writes every ranked song (best first, the columns of
:func:`hitrank.rank.rank_folder`) and then one row per file that could not be ranked, with its
``song_id``, ``path`` and the reason in ``error`` (empty for ranked songs; ``rank`` and
``score`` empty for failed files), so that nothing is lost from the table.

``rank FOLDER --since PREVIOUS.csv`` ranks only the songs of the folder that ``PREVIOUS.csv``
does not hold (failed files are tried again), and merges: the previous rows of songs still
in the folder at the same path are kept as they are, songs no longer in it (or now at another
path) are dropped and ranked again if present, the new songs are added, and the whole is
sorted again (silent songs last) and renumbered. The previous CSV must come from the same
model and options, since its scores are not recomputed: every ranked row records them in two
columns, ``model`` (the name given to ``--model`` and the model's fingerprint,
``runs/best#3fa2b1c9d0e1``: :func:`hitrank.runinfo.model_fingerprint`) and ``options`` (the
options that change scores or columns, e.g. ``curve nearest=5 reference=/abs/chart.csv
segment=best``), and a previous CSV of another fingerprint or other options, or one written
without these columns, is refused before any song is ranked. A file replaced in place by
another recording at the same path is not detected under ``--since`` (without it, the feature
store extracts again every file whose size or modification time changed).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from . import neighbours
from .corpus import read_text_table, resolve_source
from .errors import LabelsError

ERROR_COLUMN = "error"  # the reason a file could not be ranked ('' for ranked songs)
MODEL_COLUMN = "model"  # the model a row was ranked with: NAME#FINGERPRINT
OPTIONS_COLUMN = "options"  # the options it was ranked with, e.g. 'curve nearest=5 segment=best'
#: options of ``rank`` that change a row's scores or columns (``rank_folder`` keywords)
SCORING_OPTIONS = ("curve", "segment", "reference", "nearest", "embedding", "hop_seconds")
#: their defaults: an option spelled out at its default is no other option
SCORING_DEFAULTS = {"segment": "configured", "nearest": neighbours.DEFAULT_K, "embedding": neighbours.MODEL_EMBEDDING}
FLAGS = ("silent", "padded", "out_of_distribution", "unstable")  # flag name, in the order shown
FLAG_COLUMNS = {"silent": "silent", "padded": "padded", "out_of_distribution": "ood", "unstable": "unstable"}


def flags_column(ranking: pd.DataFrame) -> list[str]:
    """The ``flags`` column of a ranking: each song's set flags (the boolean columns of
    :data:`FLAG_COLUMNS` it has), ``; ``-separated in the order of :data:`FLAGS`."""
    on = {f: ranking[c].fillna(False).to_numpy(dtype=bool) if c in ranking else np.zeros(len(ranking), bool)
          for f, c in FLAG_COLUMNS.items()}  # an empty cell (ood not measured) sets no flag
    return ["; ".join(f for f in FLAGS if on[f][i]) for i in range(len(ranking))]


def provenance(name: str | os.PathLike, fingerprint: str, options: dict) -> dict[str, str]:
    """The ``model`` and ``options`` cells of a ranking made with the model given as ``name``
    (fingerprint ``fingerprint``) and ``options`` (``rank_folder`` keywords; those not in
    :data:`SCORING_OPTIONS`, None / False, or at their default (:data:`SCORING_DEFAULTS`) are
    left out; a reference is made absolute)."""
    words = []
    for key in sorted(k for k in options if k in SCORING_OPTIONS):
        value = options[key]
        if value is None or value is False or (key in SCORING_DEFAULTS and value == SCORING_DEFAULTS[key]):
            continue
        if key == "reference":
            value = os.path.abspath(str(value))
        words.append(key if value is True else f"{key}={value}")
    return {MODEL_COLUMN: f"{name}#{fingerprint}", OPTIONS_COLUMN: " ".join(words)}


def check_provenance(previous: pd.DataFrame, wanted: dict[str, str], source: str) -> None:
    """Refuse previous rows ranked with another model or other options than ``wanted``
    (:func:`provenance`); the model is compared by its fingerprint, not by its name."""
    if not len(previous):
        return
    missing = [c for c in (MODEL_COLUMN, OPTIONS_COLUMN) if c not in previous]
    if missing:
        raise LabelsError(f"{source} has no {missing} column: it was written by an older hitrank and does not "
                          "say which model ranked it; rank the folder again without --since")
    unmarked = previous[MODEL_COLUMN].fillna("").astype(str).str.strip() == ""
    if unmarked.any():
        first = previous.song_id[unmarked].head(3).tolist()
        raise LabelsError(f"{source}: {int(unmarked.sum())} ranked row(s) have an empty {MODEL_COLUMN!r} cell "
                          f"(e.g. {first}): the file looks cut short or edited; rank the folder again without "
                          "--since")
    fingerprints = {str(m).rsplit("#", 1)[-1] for m in previous[MODEL_COLUMN]}
    want = wanted[MODEL_COLUMN].rsplit("#", 1)[-1]
    if fingerprints != {want}:
        other = sorted(set(previous[MODEL_COLUMN]) - {wanted[MODEL_COLUMN]})[:2]
        raise LabelsError(f"{source} was ranked with another model ({', '.join(map(repr, other))}; this one is "
                          f"{wanted[MODEL_COLUMN]!r}): its scores cannot be merged; rank with that model, or "
                          "without --since")
    options = set(previous[OPTIONS_COLUMN].fillna("").astype(str))
    if options != {wanted[OPTIONS_COLUMN]}:
        def said(o: str) -> str:
            return repr(o) if o else "the defaults"

        raise LabelsError(f"{source} was ranked with other options ({', '.join(said(o) for o in sorted(options))}; "
                          f"now {said(wanted[OPTIONS_COLUMN])}): rank with the same options (--curve, --segment, "
                          "--reference, --nearest, --embedding), or without --since")


#: columns of names (file names, paths, the files' own tags): a cell a spreadsheet would run
#: as a formula (one starting with :data:`FORMULA_START`) is written with a leading apostrophe
NAME_COLUMNS = ("song_id", "path", "artist", "title", "nearest", "nearest_title")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


#: what gets the apostrophe: a formula's start, and an apostrophe itself (so that a name that
#: starts with one, ``'=x.wav``, reads back as it was)
ESCAPED_START = (*FORMULA_START, "'")


def _not_a_formula(cell):
    return "'" + cell if isinstance(cell, str) and cell.startswith(ESCAPED_START) else cell


def _as_written(cell: str) -> str:
    """A name column's cell read back from the CSV: without the apostrophe :func:`_not_a_formula`
    put before a name that looks like a formula or starts with an apostrophe."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(ESCAPED_START) else cell


def ranking_with_failures(ranking: pd.DataFrame, failures: list, id_column: str = "song_id") -> pd.DataFrame:
    """The CSV's table: ``ranking`` then one row per failed file (``id_column``, path, error);
    names from tags that a spreadsheet would take for a formula (``=HYPERLINK(...)``) start
    with an apostrophe (:data:`NAME_COLUMNS` and ``id_column``)."""
    table = ranking.copy()
    table[ERROR_COLUMN] = ""
    if failures:
        failed = pd.DataFrame([{id_column: s, "path": p, ERROR_COLUMN: str(r)} for s, p, r in failures])
        ints = [c for c in table.columns if pd.api.types.is_integer_dtype(table[c])]
        table = pd.concat([table, failed], ignore_index=True)
        table[ints] = table[ints].astype("Int64")  # ranks stay whole numbers, empty for failed files
    for column in {*NAME_COLUMNS, id_column}:
        if column in table:
            table[column] = table[column].map(_not_a_formula)
    return table


#: columns ``rank`` writes as numbers (a previous CSV with text in one is refused)
NUMERIC_COLUMNS = ("rank", "score", "score_std", "predicted_hit_score", "n_models", "seg_start", "seg_end",
                   "duration", "ood_score", "percentile", "percentile_lo", "percentile_hi", "best_start",
                   "best_end", "best_score", "shift_spread")
#: columns that stay text when a ranking CSV is read back (ids and names may look like numbers;
#: the ``;``-separated neighbour cells of one neighbour look like one number)
TEXT_COLUMNS = ("song_id", "path", "artist", "title", "flags", "ood_note", MODEL_COLUMN, OPTIONS_COLUMN,
                *neighbours.TEXT_COLUMNS)
#: columns ``rank`` writes as ``True``/``False`` (another value in a previous CSV is refused)
BOOLEAN_COLUMNS = ("padded", "silent", "ood")
#: columns of percentages, 0-100
PERCENT_COLUMNS = ("percentile", "percentile_lo", "percentile_hi")


def read_previous(path: str | os.PathLike) -> pd.DataFrame:
    """A ranking CSV written by ``rank --out``: its ranked rows (failed files left out, they are
    tried again), with numeric and boolean columns restored (booleans with empty cells as
    pandas' nullable ``boolean``) and names as they were (:data:`NAME_COLUMNS`)."""
    table = read_text_table(path, "ranking")
    missing = {"song_id", "path", "score"} - set(table.columns)
    if missing:
        raise LabelsError(f"{str(path)!r}: not a ranking CSV of `hitrank rank --out` (no {sorted(missing)} "
                          f"column; found {list(table.columns)})")
    if ERROR_COLUMN in table:
        table = table[table[ERROR_COLUMN].fillna("") == ""].drop(columns=ERROR_COLUMN)
    score = pd.to_numeric(table["score"], errors="coerce")
    unscored = ~np.isfinite(score.to_numpy(dtype=float))
    if unscored.any():
        bad = table.song_id[unscored].head(3).tolist()
        raise LabelsError(f"{str(path)!r}: {int(unscored.sum())} ranked row(s) without a finite numeric score "
                          f"(e.g. {bad}); rank the folder again without --since")
    twice = table.song_id[table.song_id.duplicated()].unique().tolist()
    if twice:
        raise LabelsError(f"{str(path)!r}: song(s) {twice[:3]} appear in more than one row (an edited file?); "
                          "rank the folder again without --since")
    out = table.copy()
    for c in out.columns:
        values = out[c].fillna("")
        if c in TEXT_COLUMNS:
            out[c] = values.map(_as_written) if c in NAME_COLUMNS else values
            continue
        low, given = values.str.lower(), values != ""
        if given.any() and low[given].isin(["true", "false"]).all():
            out[c] = pd.array([None if not g else v == "true" for v, g in zip(low, given, strict=True)],
                              dtype="boolean") if not given.all() else low == "true"
            continue
        if c in BOOLEAN_COLUMNS and given.any():
            _refuse(path, c, out.song_id[given & ~low.isin(["true", "false"])], "holds values other than True/False")
        num = pd.to_numeric(values, errors="coerce")
        if num[given].notna().all():  # every given value numeric
            if c in NUMERIC_COLUMNS and np.isinf(num).any():
                _refuse(path, c, out.song_id[np.isinf(num)], "holds an infinite number")
            if c in PERCENT_COLUMNS and ((num < 0) | (num > 100)).any():
                _refuse(path, c, out.song_id[(num < 0) | (num > 100)], "holds a percentile outside 0-100")
            out[c] = num
        elif c in NUMERIC_COLUMNS:
            _refuse(path, c, out.song_id[given & num.isna()], "holds text where numbers belong")
    return out.reset_index(drop=True)


def _refuse(path, column: str, songs: pd.Series, what: str):
    """Raise the error of a previous ranking CSV whose ``column`` ``what`` for ``songs``."""
    raise LabelsError(f"{str(path)!r}: column {column!r} {what} (songs {songs.head(3).tolist()}; an edited "
                      "file?); rank the folder again without --since")


def songs_in(folder: str | os.PathLike) -> dict[str, str]:
    """The songs of a folder or labels CSV as ranking names them: {song_id: absolute path}."""
    refs, rejected = resolve_source(folder, warn=False)  # extract says it, once
    return {**{r.song_id: str(r.path) for r in rejected}, **{r.song_id: str(r.path) for r in refs}}


def still_valid(previous: pd.DataFrame, listed: dict[str, str]) -> pd.DataFrame:
    """The previous rows that still describe a listed song: the same id *and* the same file (a
    song id of another folder, or a file replaced by one at another path, is ranked again)."""
    same = [listed.get(s) is not None and os.path.abspath(p) == os.path.abspath(listed[s])
            for s, p in zip(previous.song_id, previous.path, strict=True)]
    return previous[np.asarray(same, dtype=bool)]


def merge_rankings(previous: pd.DataFrame, new: pd.DataFrame, listed, key: str = "score",
                   source: str = "the previous ranking") -> tuple[pd.DataFrame, dict]:
    """The previous rows still valid for the ``listed`` songs ({song_id: path},
    :func:`still_valid`) plus the ``new`` ranking, sorted by ``key`` (silent songs last) and
    renumbered.

    Raises
    ------
    LabelsError
        When the previous rows and the new ones have different columns (the previous CSV was
        made with other options, e.g. without ``--curve``): merging would sort them apart; with
        nothing new (``new`` empty, listing the columns every ranking of its model has), when
        the previous rows lack one of them (an edited CSV).

    Returns
    -------
    merged : DataFrame, ``new``'s ``attrs`` kept
    counts : ``kept``, ``new`` and ``dropped`` (previous songs no longer listed, or now at
        another path) songs; also in ``merged.attrs["since"]`` with ``new_songs``, the new
        songs' ids, best first (the terminal and ``--json`` say where they landed)
    """
    if not isinstance(listed, dict):
        listed = {s: p for s, p in zip(previous.song_id, previous.path, strict=True) if s in set(listed)}
    keep = still_valid(previous, listed)
    ours, theirs = set(new.columns) - {"rank"}, set(keep.columns) - {"rank"}
    if len(keep) and len(new) and ours != theirs:
        raise LabelsError(f"{source} was made with other options or by another hitrank version: it lacks "
                          f"{sorted(ours - theirs)} and has {sorted(theirs - ours)} beyond this ranking's "
                          "columns; rank with the same model and options (--curve, --nearest, --reference "
                          "...) or without --since")
    if len(keep) and not len(new) and ours - theirs:  # nothing new: the columns every such ranking has
        raise LabelsError(f"{source} lacks {sorted(ours - theirs)}, which every ranking of this model has: it "
                          "was edited or made by another hitrank version; rank without --since")
    parts = [p.drop(columns="rank", errors="ignore") for p in (keep, new) if len(p)]
    merged = pd.concat(parts, ignore_index=True) if parts else new.drop(columns="rank", errors="ignore")
    if key not in merged:
        key = "score"
    silent = (merged["silent"].fillna(False).astype(bool) if "silent" in merged
              else pd.Series(False, index=merged.index))
    merged = (merged.assign(_silent=silent).sort_values(["_silent", key], ascending=[True, False], kind="stable",
                                                        na_position="last")
              .drop(columns="_silent").reset_index(drop=True))
    merged.insert(0, "rank", np.arange(1, len(merged) + 1))
    merged.attrs = dict(new.attrs)
    counts = {"kept": len(keep), "new": len(new), "dropped": len(previous) - len(keep)}
    new_ids = set(new.song_id.astype(str)) if len(new) else set()
    merged.attrs["since"] = {**counts, "new_songs": [s for s in merged.song_id.astype(str) if s in new_ids]}
    return merged, counts


__all__ = ["ERROR_COLUMN", "MODEL_COLUMN", "OPTIONS_COLUMN", "SCORING_OPTIONS", "SCORING_DEFAULTS", "TEXT_COLUMNS", "provenance",
           "check_provenance", "ranking_with_failures", "read_previous", "songs_in", "still_valid",
           "merge_rankings"]
