"""Descriptor tables: Spotify-style audio-feature CSVs, normalised to one column layout.

Two layouts are recognised and mapped onto the canonical descriptor names of
:data:`DESCRIPTORS`:

* the Spotify Hit Predictor / Web-API layout (``danceability`` ... in [0, 1], ``duration_ms``,
  ``key`` 0-11, ``mode`` 0/1), also what ``hitrank descriptors`` writes;
* the "Most Streamed Spotify Songs 2023" layout (``danceability_%`` ... in percent, ``bpm``,
  ``key`` as a pitch name, ``mode`` Major/Minor, latin-1, thousands separators).

Bad cells never reach a model: a blank, non-numeric or out-of-range descriptor becomes missing
(and is imputed with the training median; one warning per file and column gives the count and
the first CSV lines), a row whose *target* is missing or bad is left out and reported with its
row number. A number with a comma is read only when the commas group thousands (``1,234``,
``-12,345.6``); a decimal comma (``-7,5``) is not a number. Every file must have rows and, when
several are read together, each must have the columns a model needs (:func:`require_columns`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..corpus import refuse_binary
from ..errors import LabelsError
from ..fileio import row_lines
from .extractor_names import LEGACY_EXTRACTOR

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
#: a number whose commas group thousands (``1,234``, ``-12,345.6``): the only text whose commas
#: are dropped; any other comma (a decimal comma, ``-7,5``) makes the cell not a number
_THOUSANDS = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"
#: CSV line numbers named in a warning before "..."
N_LINES_SHOWN = 3


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
    columns : dict, the columns of each file (canonical names), by file; empty when unknown
    """

    frame: pd.DataFrame
    ids: np.ndarray
    artists: np.ndarray
    sources: list
    columns: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def where(self, i: int) -> str:
        """Where row ``i`` came from: ``line N`` of the file (``NAME line N`` when the table joins
        several files; NAME is the file's path as given), counted as an editor shows it (the header
        is line 1)."""
        line = int(self.frame["source_line"].iat[i]) if "source_line" in self.frame else i + 2
        if len(self.sources) > 1 and "source_file" in self.frame:
            return f"{self.frame['source_file'].iat[i]} line {line}"
        return f"line {line}"

    def present(self) -> list[str]:
        """Canonical descriptors that have at least one valid value."""
        return [c for c in DESCRIPTORS if c in self.frame and self.frame[c].notna().any()]


def numeric_column(series: pd.Series) -> pd.Series:
    """Numbers from a column that may hold text, thousands separators or blanks (NaN where not
    a number). Commas are dropped only from thousands-grouped numbers (``1,234``); ``-7,5`` (a
    decimal comma) is not a number, never -75."""
    if series.dtype.kind in "if":
        return series.astype(float)
    text = series.astype(str).str.strip()
    grouped = text.str.fullmatch(_THOUSANDS).fillna(False).astype(bool)
    text = text.where(~grouped, text.str.replace(",", "", regex=False))
    return pd.to_numeric(text, errors="coerce")


def csv_lines(mask, lines) -> str:
    """The CSV line numbers ``lines`` (n,) int (header = line 1) of the rows where ``mask`` (n,)
    bool is true, the first :data:`N_LINES_SHOWN` as plain ints, then ``...`` when there are more."""
    lines = np.asarray(lines)[np.flatnonzero(np.asarray(mask))].tolist()
    return ", ".join(map(str, lines[:N_LINES_SHOWN])) + (", ..." if len(lines) > N_LINES_SHOWN else "")


def _looks_semicolon_separated(path: Path, encoding: str) -> bool:
    """Whether the header line has ``;`` but no comma (a CSV exported with ``;`` separators)."""
    with open(path, encoding=encoding, errors="replace") as f:
        header = f.readline()
    return ";" in header and "," not in header


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise LabelsError(f"{str(path)!r}: no such table (expected a .csv file or a folder of them)")
    try:
        with open(path, "rb") as f:
            refuse_binary(path, f.read(4096), "table")
    except OSError as exc:
        raise LabelsError(f"{str(path)!r}: cannot read the table ({exc.strerror or exc})") from None
    for encoding in ("utf-8", "latin-1"):
        try:
            if _looks_semicolon_separated(path, encoding):
                raise LabelsError(f"{str(path)!r}: looks ';'-separated (the header has ';' and no "
                                  "comma); hitrank reads comma-separated CSV: export the table "
                                  "with ',' as the separator")
            frame = pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False,
                                na_values=[""])
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            reason = " ".join(str(exc).split())  # one line
            raise LabelsError(f"{str(path)!r}: not a readable CSV table ({reason})") from None
        if frame.empty:
            raise LabelsError(f"{str(path)!r}: has no rows (only the header line); give a table "
                              "with one row per song")
        return frame
    raise LabelsError(f"{str(path)!r}: neither UTF-8 nor latin-1 text")


def table_files(sources) -> list[Path]:
    """The CSV files that ``sources`` (a path, or a list of them: files, or folders whose
    ``*.csv`` are read) name, in order; a folder without one, or nothing given, is refused."""
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


def _canonicalise(raw: pd.DataFrame, where: str, lines: list[int]) -> pd.DataFrame:
    df = raw.copy()
    if "duration_ms" not in df and "duration" in df:
        df["duration_ms"] = numeric_column(df["duration"]) * 1000.0
    if "tempo" not in df and "bpm" in df:
        df["tempo"] = df["bpm"]
    for name in _PERCENT:
        pct = f"{name}_%"
        if name not in df and pct in df:
            df[name] = numeric_column(df[pct]) / 100.0
    # a blank cell is NaN, not text (pandas 3 keeps it through astype(str)): it stays missing
    if "mode" in df:
        df["mode"] = df["mode"].map(
            lambda v: {"major": "1", "minor": "0"}.get(v.strip().lower(), v) if isinstance(v, str) else v)
    if "key" in df:
        df["key"] = df["key"].map(lambda v: str(_PITCHES.get(v.strip(), v)) if isinstance(v, str) else v)
    for name, (lo, hi) in DESCRIPTORS.items():
        if name not in df:
            continue
        values = numeric_column(df[name])
        missing = values.isna()
        if missing.any():
            log.warning("%s: %d %s cell(s) blank or not a number, treated as missing and filled "
                        "with the training median (CSV line(s) %s)", where, int(missing.sum()), name,
                        csv_lines(missing, lines))
        bad = values.notna() & ~values.between(lo, hi)
        if bad.any():
            log.warning("%s: %d %s value(s) outside [%g, %g] treated as missing (CSV line(s) %s)",
                        where, int(bad.sum()), name, lo, hi, csv_lines(bad, lines))
        df[name] = values.where(~bad)
    return df


def read_table(sources, failures: list | None = None) -> DescriptorTable:
    """Read one or more descriptor CSVs (or folders of them) into a :class:`DescriptorTable`.

    ``failures``: a list to collect ``(path, reason)`` of the files that cannot be read, which
    are then skipped (scoring goes on with the others); None (training): the first such file
    stops the reading.

    Raises
    ------
    LabelsError
        when a file is missing or unreadable (or looks ``;``-separated), has no rows, or has
        none of the descriptor columns (with ``failures``: only when no file can be read).
    """
    frames, columns, read = [], {}, []
    files = table_files(sources)
    for path in files:
        try:
            df = _read_one(path)
        except LabelsError as exc:
            if failures is None or len(files) == 1:
                raise
            failures.append((str(path), str(exc).removeprefix(f"{str(path)!r}: ")))
            continue
        columns[str(path)] = [c for c in df.columns if c not in ("source_file", "source_line")]
        frames.append(df)
        read.append(path)
    if not frames:
        raise LabelsError(f"none of the {len(files)} tables can be read; the first: {failures[0][0]!r}: "
                          f"{failures[0][1]}")
    frame = pd.concat(frames, ignore_index=True, sort=False)
    id_col = next((c for c in _ID_COLUMNS if c in frame), None)
    ids = (frame[id_col].fillna("").astype(str).to_numpy() if id_col
           else np.array([f"row {i + 1}" for i in range(len(frame))]))
    art_col = next((c for c in _ARTIST_COLUMNS if c in frame), None)
    artists = frame[art_col].fillna("").astype(str).to_numpy() if art_col else np.full(len(frame), "")
    return DescriptorTable(frame, ids, artists, [str(f) for f in read], columns)


def _read_one(path: Path) -> pd.DataFrame:
    """One descriptor CSV with canonical column names, its ``source_file`` and ``source_line``
    (LabelsError naming the file when it cannot be read or has no descriptor column)."""
    raw = _read_csv(path)
    lines = row_lines(path, len(raw))
    blank = raw.isna().all(axis=1).to_numpy()  # a row of empty cells (only commas): no song
    if blank.any():
        log.warning("%r: %d row(s) with no value in any cell skipped (line %s)", str(path), int(blank.sum()),
                    ", ".join(str(lines[i]) for i in np.flatnonzero(blank)[:5]))
        raw, lines = raw[~blank].reset_index(drop=True), [v for v, b in zip(lines, blank, strict=True) if not b]
        if raw.empty:
            raise LabelsError(f"{str(path)!r}: has no rows with a value; give a table with one row per song")
    df = _canonicalise(raw, repr(str(path)), lines)
    if not any(c in df for c in DESCRIPTORS):
        raise LabelsError(
            f"{str(path)!r}: no descriptor columns; expected some of {list(DESCRIPTORS)} "
            f"(found {list(raw.columns)[:12]})")
    df["source_file"] = str(path)  # as given: two tables of one name in different folders differ
    df["source_line"] = lines
    return df


def extractors_of(table: DescriptorTable) -> dict[str, str]:
    """{source: extractor} for the ``descriptors.csv`` sources of ``table`` that
    ``hitrank descriptors`` made (its ``descriptors.json`` beside them records the extractor;
    older folders: :data:`LEGACY_EXTRACTOR`). Other tables (Spotify's) are not in it."""
    made = {}
    for src in map(Path, table.sources):
        meta = src.parent / "descriptors.json"
        if src.name == "descriptors.csv" and meta.is_file():
            try:
                made[str(src)] = json.loads(meta.read_text()).get("extractor", LEGACY_EXTRACTOR)
            except (OSError, ValueError, AttributeError):
                raise LabelsError(f"{str(meta)!r}: unreadable; describe the audio again into a new folder") from None
    return made


def require_columns(table: DescriptorTable, columns, what: str) -> None:
    """Raise a LabelsError naming the file and the columns of ``columns`` it lacks.

    Each file of the table is checked on its own: a column that only some of several files
    have is an error, never filled in for the rows of the others.
    """
    by_file = table.columns or {table.sources[0]: list(table.frame.columns)}
    for source, have in by_file.items():
        missing = [c for c in columns if c not in have]
        if missing:
            have = sorted(c for c in have if c != "source_file")
            raise LabelsError(f"{source!r}: {what} needs column(s) {missing}; "
                              f"the table has {have[:25]}")


def target_values(table: DescriptorTable, column: str) -> tuple[np.ndarray, list[str]]:
    """The numeric target column and one message per row whose target is missing or bad."""
    require_columns(table, [column], "the target")
    y = numeric_column(table.frame[column]).to_numpy(dtype=float)
    problems = [f"{table.where(i)} ({table.ids[i]!r}): {column}={table.frame[column].iloc[i]!r} "
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
