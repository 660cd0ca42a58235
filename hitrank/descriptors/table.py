"""Descriptor tables: Spotify-style audio-feature CSVs, normalised to one column layout.

Two layouts are recognised and mapped onto the canonical descriptor names of
:data:`DESCRIPTORS`:

* the Spotify Hit Predictor / Web-API layout (``danceability`` ... in [0, 1], ``duration_ms``,
  ``key`` 0-11, ``mode`` 0/1), also what ``hitrank descriptors`` writes;
* the "Most Streamed Spotify Songs 2023" layout (``danceability_%`` ... in percent, ``bpm``,
  ``key`` as a pitch name, ``mode`` Major/Minor, latin-1, thousands separators).

Bad cells never reach a model: a non-numeric or out-of-range descriptor becomes missing (and
is imputed with the training median, counted in the log), a row whose *target* is missing or
bad is left out and reported with its row number.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import LabelsError

log = logging.getLogger(__name__)

#: Canonical descriptors and their valid ranges (inclusive).
DESCRIPTORS = {
    "danceability": (0.0, 1.0), "energy": (0.0, 1.0), "key": (-1.0, 11.0),
    "loudness": (-80.0, 10.0), "mode": (0.0, 1.0), "speechiness": (0.0, 1.0),
    "acousticness": (0.0, 1.0), "instrumentalness": (0.0, 1.0), "liveness": (0.0, 1.0),
    "valence": (0.0, 1.0), "tempo": (0.0, 300.0), "duration_ms": (1.0, 1e8),
    "time_signature": (0.0, 7.0),
}

_PITCHES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
            "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
_PERCENT = ("danceability", "energy", "speechiness", "acousticness", "instrumentalness",
            "liveness", "valence")
_ID_COLUMNS = ("track", "track_name", "song_id", "name", "song_name")
_ARTIST_COLUMNS = ("artist", "artist(s)_name", "artists", "artist_name")
#: columns naming a recording (Spotify track URI / id): equal values are the same song
_URI_COLUMNS = ("uri", "track_uri", "spotify_uri", "track_id", "spotify_id")
#: song titles (``song_id``, a file name, is not a title)
_TITLE_COLUMNS = ("track", "track_name", "name", "song_name", "title")


@dataclass
class DescriptorTable:
    """A table read by :func:`read_table`.

    Attributes
    ----------
    frame : DataFrame, one row per input row, canonical descriptor columns (float, NaN when
        missing or bad) plus every other column of the input unchanged
    ids : (n,) str, a readable name per row (track name or song id; else ``row N``)
    artists : (n,) str, artist per row ('' when the table has none)
    sources : list of str, the files read
    """

    frame: pd.DataFrame
    ids: np.ndarray
    artists: np.ndarray
    sources: list

    def __len__(self) -> int:
        return len(self.frame)

    def present(self) -> list[str]:
        """Canonical descriptors that have at least one valid value."""
        return [c for c in DESCRIPTORS if c in self.frame and self.frame[c].notna().any()]


def numeric_column(series: pd.Series) -> pd.Series:
    """Numbers from a column that may hold text, thousands separators or blanks (NaN where not
    a number)."""
    if series.dtype.kind in "if":
        return series.astype(float)
    text = series.astype(str).str.replace(",", "", regex=False).str.strip()
    return pd.to_numeric(text, errors="coerce")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise LabelsError(f"{str(path)!r}: no such table (expected a .csv file or a folder of them)")
    for encoding in ("utf-8", "latin-1"):
        try:
            return pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False,
                               na_values=[""])
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            reason = " ".join(str(exc).split())  # one line
            raise LabelsError(f"{str(path)!r}: not a readable CSV table ({reason})") from None
    raise LabelsError(f"{str(path)!r}: neither UTF-8 nor latin-1 text")


def _files(sources) -> list[Path]:
    files: list[Path] = []
    for s in [sources] if isinstance(sources, (str, os.PathLike)) else sources:
        s = Path(s)
        if s.is_dir():
            found = sorted(s.glob("*.csv"))
            if not found:
                raise LabelsError(f"{str(s)!r}: folder holds no .csv tables")
            files.extend(found)
        else:
            files.append(s)
    if not files:
        raise LabelsError("no table given; pass --data TABLE.csv (or a folder of CSVs)")
    return files


def _canonicalise(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    df = raw.copy()
    if "duration_ms" not in df and "duration" in df:
        df["duration_ms"] = numeric_column(df["duration"]) * 1000.0
    if "tempo" not in df and "bpm" in df:
        df["tempo"] = df["bpm"]
    for name in _PERCENT:
        pct = f"{name}_%"
        if name not in df and pct in df:
            df[name] = numeric_column(df[pct]) / 100.0
    if "mode" in df:
        df["mode"] = df["mode"].astype(str).str.strip().map(
            lambda v: {"major": "1", "minor": "0"}.get(v.lower(), v))
    if "key" in df:
        df["key"] = df["key"].astype(str).str.strip().map(lambda v: str(_PITCHES.get(v, v)))
    bad_total = 0
    for name, (lo, hi) in DESCRIPTORS.items():
        if name not in df:
            continue
        values = numeric_column(df[name])
        bad = values.notna() & ~values.between(lo, hi)
        bad_total += int(bad.sum())
        if bad.any():
            rows = list(np.flatnonzero(bad.to_numpy())[:3] + 2)
            log.warning("%s: %d %s value(s) outside [%g, %g] treated as missing (CSV lines %s...)",
                        where, int(bad.sum()), name, lo, hi, rows)
        df[name] = values.where(~bad)
    return df


def read_table(sources) -> DescriptorTable:
    """Read one or more descriptor CSVs (or folders of them) into a :class:`DescriptorTable`.

    Raises
    ------
    LabelsError
        when a file is missing or unreadable, or when it has none of the descriptor columns.
    """
    frames = []
    files = _files(sources)
    for path in files:
        raw = _read_csv(path)
        df = _canonicalise(raw, repr(str(path)))
        if not any(c in df for c in DESCRIPTORS):
            raise LabelsError(
                f"{str(path)!r}: no descriptor columns; expected some of {list(DESCRIPTORS)} "
                f"(found {list(raw.columns)[:12]})")
        df["source_file"] = path.name
        frames.append(df)
    frame = pd.concat(frames, ignore_index=True, sort=False)
    id_col = next((c for c in _ID_COLUMNS if c in frame), None)
    ids = (frame[id_col].fillna("").astype(str).to_numpy() if id_col
           else np.array([f"row {i + 1}" for i in range(len(frame))]))
    art_col = next((c for c in _ARTIST_COLUMNS if c in frame), None)
    artists = frame[art_col].fillna("").astype(str).to_numpy() if art_col else np.full(len(frame), "")
    return DescriptorTable(frame, ids, artists, [str(f) for f in files])


def require_columns(table: DescriptorTable, columns, what: str) -> None:
    """Raise a LabelsError naming the columns of ``columns`` the table lacks."""
    missing = [c for c in columns if c not in table.frame]
    if missing:
        have = sorted(c for c in table.frame.columns if c != "source_file")
        raise LabelsError(f"{table.sources[0]!r}: {what} needs column(s) {missing}; "
                          f"the table has {have[:25]}")


def target_values(table: DescriptorTable, column: str) -> tuple[np.ndarray, list[str]]:
    """The numeric target column and one message per row whose target is missing or bad."""
    require_columns(table, [column], "the target")
    y = numeric_column(table.frame[column]).to_numpy(dtype=float)
    problems = [f"line {i + 2} ({table.ids[i]!r}): {column}={table.frame[column].iloc[i]!r} "
                "is not a number" for i in np.flatnonzero(~np.isfinite(y))]
    return y, problems


def _normalised(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).str.lower().str.split().str.join(" ")


def song_keys(table: DescriptorTable, how: str = "song") -> tuple[np.ndarray, dict]:
    """One integer per row; rows with the same integer are copies of the same song.

    Parameters
    ----------
    how : ``song``: the same track URI, *or* the same artist + title + duration (rounded to
        the second; artist + title when the table has no duration), so a recording that
        reappears under another URI (a re-release, a compilation) is one song too; ``uri``:
        the same URI only; ``none``: every row is its own song.

    Returns
    -------
    keys : (n,) int64, connected groups of rows that share a key
    found : which columns were used, ``{"uri": column or None, "title": column or None,
        "duration": bool}``
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(table)
    f = table.frame
    uri = next((c for c in _URI_COLUMNS if c in f), None)
    title = next((c for c in _TITLE_COLUMNS if c in f), None)
    found = {"uri": uri if how != "none" else None, "title": title if how == "song" else None,
             "duration": how == "song" and "duration_ms" in f}
    labels = []  # one string key per row per rule; '' = the rule says nothing for that row
    if found["uri"]:
        u = _normalised(f[uri])
        labels.append(("u|" + u).where(u != "", ""))
    if found["title"]:
        t, a = _normalised(f[title]), pd.Series(table.artists, index=f.index).pipe(_normalised)
        dur = (numeric_column(f["duration_ms"]) / 1000.0).round().astype("Int64").astype(str) \
            if "duration_ms" in f else pd.Series("", index=f.index)
        atd = "a|" + a + "|" + t + "|" + dur
        labels.append(atd.where((t != "") & (a != ""), ""))
    rows, cols = [np.arange(n)], [np.arange(n)]
    offset = n
    for lab in labels:
        lab = lab.to_numpy(str)
        ok = np.flatnonzero(lab != "")
        codes, _ = pd.factorize(lab[ok])
        rows.append(ok)
        cols.append(offset + codes)
        offset += int(codes.max()) + 1 if len(codes) else 0
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(offset, offset))
    _, comp = connected_components(graph, directed=False)
    return comp[:n].astype(np.int64), found
