"""The ranking CSV: ranked songs and failed files in one table, and growing it (``--since``).

``rank --out ranking.csv`` writes every ranked song (best first, the columns of
:func:`hitrank.rank.rank_folder`) and then one row per file that could not be ranked, with its
``song_id``, ``path`` and the reason in ``error`` (empty for ranked songs; ``rank`` and
``score`` empty for failed files), so that nothing is lost from the table.

``rank FOLDER --since PREVIOUS.csv`` ranks only the songs of the folder that ``PREVIOUS.csv``
does not hold (failed files are tried again), and merges: the previous rows of songs still
in the folder are kept as they are, songs no longer in it are dropped, the new songs are
added, and the whole is sorted again (silent songs last) and renumbered. The previous CSV must
come from the same model and options: its scores are not recomputed.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .corpus import read_text_table, resolve_source
from .errors import LabelsError

ERROR_COLUMN = "error"  # the reason a file could not be ranked ('' for ranked songs)


def ranking_with_failures(ranking: pd.DataFrame, failures: list) -> pd.DataFrame:
    """The CSV's table: ``ranking`` then one row per failed file (song_id, path, error)."""
    table = ranking.copy()
    table[ERROR_COLUMN] = ""
    if failures:
        failed = pd.DataFrame([{"song_id": s, "path": p, ERROR_COLUMN: str(r)} for s, p, r in failures])
        ints = [c for c in table.columns if pd.api.types.is_integer_dtype(table[c])]
        table = pd.concat([table, failed], ignore_index=True)
        table[ints] = table[ints].astype("Int64")  # ranks stay whole numbers, empty for failed files
    return table


def read_previous(path: str | os.PathLike) -> pd.DataFrame:
    """A ranking CSV written by ``rank --out``: its ranked rows (failed files left out, they are
    tried again), with numeric and boolean columns restored."""
    table = read_text_table(path, "ranking")
    missing = {"song_id", "path", "score"} - set(table.columns)
    if missing:
        raise LabelsError(f"{str(path)!r}: not a ranking CSV of `hitrank rank --out` (no {sorted(missing)} "
                          f"column; found {list(table.columns)})")
    if ERROR_COLUMN in table:
        table = table[table[ERROR_COLUMN].fillna("") == ""].drop(columns=ERROR_COLUMN)
    score = pd.to_numeric(table["score"], errors="coerce")
    if score.isna().any():
        bad = table.song_id[score.isna()].head(3).tolist()
        raise LabelsError(f"{str(path)!r}: {int(score.isna().sum())} ranked row(s) without a numeric score "
                          f"(e.g. {bad}); rank the folder again without --since")
    out = table.copy()
    for c in out.columns:
        if c in ("song_id", "path", "artist", "title", "flags", "ood_note", "nearest", "nearest_title",
                 "nearest_score", "nearest_similarity"):
            out[c] = out[c].fillna("")
            continue
        low = out[c].fillna("").str.lower()
        if low.isin(["true", "false"]).all():
            out[c] = low == "true"
        else:
            num = pd.to_numeric(out[c], errors="coerce")
            if num.notna().sum() == out[c].replace("", np.nan).notna().sum():  # every value numeric
                out[c] = num
    return out.reset_index(drop=True)


def songs_in(folder: str | os.PathLike) -> set[str]:
    """The song ids of a folder or labels CSV, as ranking names them."""
    refs, rejected = resolve_source(folder)
    return {r.song_id for r in refs} | {r.song_id for r in rejected}


def merge_rankings(previous: pd.DataFrame, new: pd.DataFrame, listed: set[str],
                   key: str = "score") -> tuple[pd.DataFrame, dict]:
    """Previous rows of songs still ``listed`` plus the ``new`` ranking, sorted by ``key``
    (silent songs last) and renumbered.

    Returns
    -------
    merged : DataFrame, ``new``'s ``attrs`` kept
    counts : ``kept``, ``new`` and ``dropped`` (previous songs no longer listed) songs
    """
    keep = previous[previous.song_id.isin(listed)]
    parts = [p.drop(columns="rank", errors="ignore") for p in (keep, new) if len(p)]
    merged = pd.concat(parts, ignore_index=True) if parts else new.drop(columns="rank", errors="ignore")
    if key not in merged:
        key = "score"
    silent = merged["silent"].astype(bool) if "silent" in merged else pd.Series(False, index=merged.index)
    merged = (merged.assign(_silent=silent).sort_values(["_silent", key], ascending=[True, False], kind="stable",
                                                        na_position="last")
              .drop(columns="_silent").reset_index(drop=True))
    merged.insert(0, "rank", np.arange(1, len(merged) + 1))
    merged.attrs = dict(new.attrs)
    counts = {"kept": len(keep), "new": len(new), "dropped": len(previous) - len(keep)}
    merged.attrs["since"] = counts
    return merged, counts


__all__ = ["ERROR_COLUMN", "ranking_with_failures", "read_previous", "songs_in", "merge_rankings"]
