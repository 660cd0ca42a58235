"""Where songs come from: a folder of audio files, or a labels CSV.

A labels CSV has the columns ``song_id, path`` and optionally ``artist, hit_score``; paths are
relative to the CSV's folder (absolute paths are allowed too). This is the layout
``hitrank synth`` writes, and the one any user's corpus can follow.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import audio
from .constants import AUDIO_EXTENSIONS, UNSUPPORTED_AUDIO_EXTENSIONS
from .errors import AudioLoadError, LabelsError
from .fileio import row_lines

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("song_id", "path")
#: what a labels CSV needs to train on (``extract`` and ``rank`` read ``hit_score`` when present)
TRAINING_COLUMNS = (*REQUIRED_COLUMNS, "hit_score")
#: set to 1, labels CSVs may point at files outside their folder in every command (the CLI's
#: ``--allow-outside`` sets it while a command runs)
ALLOW_OUTSIDE_ENV = "HITRANK_ALLOW_OUTSIDE"


@dataclass(frozen=True)
class SongRef:
    """One song to process."""

    song_id: str
    path: str  # absolute path
    artist: str = ""
    hit_score: float = math.nan  # NaN when unknown or invalid


@dataclass(frozen=True)
class Rejected:
    """A song that was refused before decoding (bad CSV row, path outside the folder)."""

    song_id: str
    path: str
    reason: str


def is_audio_name(name: str) -> bool:
    """Whether a file of this name is listed as audio: the containers libsndfile decodes, and
    audio formats it does not (m4a, wma ...: tried, and reported by the decoder in words,
    never skipped)."""
    return name.lower().endswith(AUDIO_EXTENSIONS + UNSUPPORTED_AUDIO_EXTENSIONS)


def list_folder(folder: str | os.PathLike) -> list[SongRef]:
    """All audio files under ``folder`` (recursive, sorted), ids = relative POSIX paths.

    Hidden folders (names starting with '.') are skipped. Entries with an audio extension are
    listed even when they are broken links or folders, so that they are reported, not lost.
    """
    root = Path(folder)
    if not root.is_dir():
        raise LabelsError(f"{str(root)!r}: not a folder")
    refs = []

    def walk(d: Path):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            log.warning("%r: cannot list folder (%s)", str(d), exc.strerror)
            return
        for e in entries:
            p = Path(e.path)
            if is_audio_name(e.name):
                refs.append(SongRef(p.relative_to(root).as_posix(), str(p.absolute())))
            elif e.is_dir(follow_symlinks=False) and not e.name.startswith("."):
                walk(p)

    walk(root)
    return refs


NOT_UTF8 = "the file name is not valid UTF-8 (written in another encoding); rename the file"


def _utf8(name: str) -> bool:
    """Whether a file name read from the disk is valid UTF-8 (undecodable bytes come back as
    surrogates, which no CSV, JSON or journal can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    """A file name with the bytes that are not UTF-8 shown as U+FFFD, for messages and tables."""
    return os.fsencode(name).decode("utf-8", errors="replace")


def _parse_score(value) -> tuple[float, str]:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return math.nan, "hit_score is missing"
    try:
        if "_" in str(value):  # float() reads '0_5' as 5.0: a typo, not a number
            raise ValueError(value)
        x = float(value)
    except (TypeError, ValueError):
        return math.nan, f"hit_score {value!r} is not a number"
    if not math.isfinite(x):
        return math.nan, f"hit_score {value!r} is not finite"
    return x, ""  # any finite score is a label (net liking is signed); targets check their domain


#: a valid multi-byte UTF-8 sequence: a file holding one is UTF-8 with a few mangled cells,
#: not a whole file in another encoding
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


#: the first bytes of files given where a CSV belongs, and what they are
BINARY_KINDS = ((b"RIFF", "WAV audio"), (b"OggS", "Ogg audio"), (b"fLaC", "FLAC audio"), (b"ID3", "MP3 audio"),
                (b"\xff\xfb", "MP3 audio"), (b"\xff\xf3", "MP3 audio"), (b"\xff\xf2", "MP3 audio"),
                (b"PK\x03\x04", "a zip file or an Excel workbook (.xlsx): save it as CSV"),
                (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls): save it as CSV"), (b"%PDF", "a PDF"))


@functools.lru_cache(maxsize=256)
def _warn_once(message: str) -> None:
    """Log ``message`` once per process (a file read twice, its header first, warns once)."""
    log.warning("%s", message)


def refuse_binary(path, head: bytes, what: str) -> None:
    """LabelsError naming ``path`` when the first bytes ``head`` of a file given as a CSV are
    UTF-16 text (with or without a byte-order mark), audio, a workbook or other binary data
    (:data:`BINARY_KINDS`, or a NUL byte); ``what`` names the CSV (labels, raters, table)."""
    no_bom = len(head) >= 4 and (set(head[1::2]) == {0} or set(head[::2]) == {0})  # ASCII text as UTF-16
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or no_bom:
        raise LabelsError(f"{str(path)!r}: the {what} CSV is UTF-16; save it as UTF-8 (CSV UTF-8 in a spreadsheet)")
    kind = next((k for magic, k in BINARY_KINDS if head.startswith(magic)), "binary data" if b"\0" in head else "")
    if kind:
        raise LabelsError(f"{str(path)!r}: not a text CSV (it looks like {kind}); give the {what} as a "
                          "comma-separated text file (CSV UTF-8 in a spreadsheet)")


def _decode_text(path, what: str) -> str:
    """A user's CSV as text: UTF-8 (a BOM dropped); a file with no UTF-8 text at all as
    Windows-1252, what spreadsheet programs write on Windows (Latin-1 where that cannot
    decode it); a UTF-8 file with a few bytes that are not, with those bytes as U+FFFD.
    Each fallback is warned about, naming the file and the first line concerned; UTF-16,
    audio, workbooks and other binary files (:data:`BINARY_KINDS`, or a NUL byte in the first
    4 KiB) are refused."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise LabelsError(f"{str(path)!r}: {what} file does not exist") from None
    except OSError as exc:
        raise LabelsError(f"{str(path)!r}: cannot read {what} CSV ({exc.strerror or exc})") from None
    refuse_binary(path, raw[:4096], what)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
    if _UTF8_MULTIBYTE.search(raw):
        _warn_once(f"{str(path)!r}: line {line} (and maybe others) is not UTF-8, unlike the rest of the file; "
                   "its bytes read as U+FFFD (save the file as UTF-8)")
        return raw.decode("utf-8-sig", errors="replace")
    for encoding in ("cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        _warn_once(f"{str(path)!r} is not UTF-8 (line {line}); read as {encoding}, what spreadsheet programs "
                   "write on Windows (save it as UTF-8 to be sure of its names)")
        return text
    raise AssertionError("latin-1 decodes any bytes")


#: groups of rows sharing one audio file named in the labels reader's warning
N_SHARED = 3


def _check_row_widths(text: str, path, what: str, nrows: int | None = None) -> None:
    """LabelsError naming a column name the header repeats (spaces around names ignored; empty
    names, which spreadsheets write for empty columns, may repeat), or the first line that
    holds more cells than the header (a comma inside an unquoted name, a pasted row): pandas
    would take its first cells for an index and shift the rest. Empty cells at a row's end
    (spreadsheets write them) are no cells. A file the csv module cannot parse (an open
    quote, a huge cell) is left to pandas, whose error names it. ``nrows``: only the rows that
    will be read (a header-only read, ``nrows=0``, checks the header)."""
    reader = csv.reader(io.StringIO(text, newline=""))  # newline="": CR, LF and CRLF lines alike
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip() for h in header]
        twice = sorted({n for n in names if n and names.count(n) > 1})
        if twice:  # pandas would read the second as 'name.1'
            raise LabelsError(f"{str(path)!r}: column name(s) {twice} appear more than once in the header "
                              f"({', '.join(header)}); give each column one name")
        for record in itertools.islice(reader, nrows):
            while record and not record[-1].strip():
                record = record[:-1]
            if len(record) > len(header):
                raise LabelsError(f"{str(path)!r}: line {reader.line_num} has {len(record)} cells, the header "
                                  f"{len(header)} ({', '.join(header)}); quote cells that hold a comma "
                                  f"(\"a, b\") or fix the {what} row")
    except csv.Error:
        return


def read_text_table(path: str | os.PathLike, what: str = "labels", **kwargs) -> pd.DataFrame:
    """A CSV of user data with every cell as text ('' where empty); one-line LabelsError naming
    the file when it is missing, unreadable or not a CSV; column names lose the spaces around
    them. ``kwargs`` go to ``pandas.read_csv``. Text that is not UTF-8 is decoded as
    :func:`_decode_text` says, with a warning."""
    text = _decode_text(path, what)
    _check_row_widths(text, path, what, kwargs.get("nrows"))
    try:  # index_col=False: a row's empty trailing cells never shift its columns (nor warn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LabelsError(f"{str(path)!r}: cannot read {what} CSV ({exc})") from None
    names = [str(c).strip() for c in df.columns]  # ' hit_score ' is hit_score
    separator = next((s for s in (";", "\t") if len(names) == 1 and s in names[0]), None)
    if separator:
        raise LabelsError(f"{str(path)!r}: looks {separator!r}-separated (the header has {separator!r} and no "
                          f"comma); hitrank reads comma-separated CSV: export the {what} with ',' as the "
                          "separator")
    df.columns = names
    return df


def read_labels(
    csv_path: str | os.PathLike, allow_outside: bool = False, warn: bool = True
) -> tuple[list[SongRef], list[Rejected], list[str]]:
    """Read a labels CSV. Paths outside the CSV's folder are refused unless ``allow_outside``
    or the environment variable :data:`ALLOW_OUTSIDE_ENV` is ``1``; ``warn``: say when one
    audio file is listed under several song ids (False: a second reading of a CSV already read).

    Returns
    -------
    refs : list of SongRef
        Songs to process. ``hit_score`` is NaN where the score is missing or invalid.
    rejected : list of Rejected
        Rows refused outright (duplicate id, empty path, path escaping the CSV's folder).
    score_problems : list of str
        One line per row whose score is unusable (the song is still extracted, not trained on).
    """
    csv_path = Path(csv_path)
    df = read_text_table(csv_path, "labels")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise LabelsError(
            f"{str(csv_path)!r}: missing column(s) {missing}; a labels CSV needs "
            f"{list(REQUIRED_COLUMNS)} and optionally ['artist', 'hit_score'] (found {list(df.columns)})"
        )
    allow_outside = allow_outside or os.environ.get(ALLOW_OUTSIDE_ENV, "") == "1"
    base = Path(os.path.normpath(csv_path.parent.absolute()))  # "../x/labels.csv" too
    refs, rejected, problems, seen, files = [], [], [], {}, {}
    for line, row in zip(row_lines(csv_path, len(df)), df.to_dict("records"), strict=True):
        sid, rel = str(row["song_id"]).strip(), str(row["path"]).strip()
        where = f"{csv_path.name}:{line}"
        if not sid:
            rejected.append(Rejected(f"<line {line}>", rel, f"{where}: empty song_id"))
            continue
        if sid in seen:
            rejected.append(Rejected(sid, rel, f"{where}: duplicate song_id (first on line {seen[sid]})"))
            continue
        seen[sid] = line
        if not rel:
            rejected.append(Rejected(sid, rel, f"{where}: empty path"))
            continue
        path = Path(os.path.normpath(base / rel))
        if not allow_outside and base not in path.parents:
            rejected.append(Rejected(sid, str(path), f"{where}: path {rel!r} is outside the labels "
                                     f"folder (pass --allow-outside, or set {ALLOW_OUTSIDE_ENV}=1, to permit it)"))
            continue
        score, problem = _parse_score(row.get("hit_score"))
        if "hit_score" in df.columns and problem:
            problems.append(f"{where}: song {sid!r}: {problem}")
        refs.append(SongRef(sid, str(path), str(row.get("artist", "") or ""), score))
        files.setdefault(str(path), []).append((line, sid))
    shared = [rows for rows in files.values() if len(rows) > 1]
    if shared and warn:  # the same audio under two ids: it can be trained on and tested on in one fold
        shown = "; ".join(" = ".join(f"line {ln} {sid!r}" for ln, sid in rows) for rows in shared[:N_SHARED])
        log.warning("%r: %d audio file(s) are listed under more than one song_id (%s%s); in cross-validation "
                    "such copies can sit on both sides of a split: give each file one row, or the copies one "
                    "value in a group column and use --group-by group", str(csv_path), len(shared), shown,
                    " ..." if len(shared) > N_SHARED else "")
    return refs, rejected, problems


def usable_score_note(labels: str | os.PathLike) -> tuple[int, str]:
    """How many songs of a labels CSV have a usable hit score (their rows accepted, the score
    finite), and why the others have none, in words for a message ('' when all have one): an
    example row, what to write instead of decimal commas or percent signs, how many rows point
    outside the labels folder and the flag that permits them. Only the CSV is read."""
    refs, rejected, problems = read_labels(labels, warn=False)  # its songs are read (and warned about) again
    usable = sum(math.isfinite(r.hit_score) for r in refs)
    why = []
    if problems:
        why.append(f"{len(problems)} row(s) without a usable hit_score, e.g. {problems[0]}")
        if any(re.search(r"'[^']*\d(,\d|%)[^']*' is not a number", p) for p in problems):
            why.append("write scores with a decimal point and no percent sign (0.229, not 0,229 or 22.9%)")
    outside = [r for r in rejected if "outside the labels folder" in r.reason]
    if outside:
        why.append(f"{len(outside)} row(s) point outside the labels folder, e.g. {outside[0].path!r}: pass "
                   f"--allow-outside (or set {ALLOW_OUTSIDE_ENV}=1) to use them")
    return usable, "; ".join(why)


def check_training_labels(labels: str | os.PathLike) -> None:
    """Refuse, before any audio is decoded, labels that cannot train a model: a source that is
    not a labels CSV, or a CSV without one of :data:`TRAINING_COLUMNS` (only its header is read).
    The training commands (``cv``, ``train``, ``learning-curve``, ``table1``, ``highlighter
    train``) call it on their ``--labels``.

    Raises
    ------
    LabelsError
        Naming the file, the missing column(s) and the columns it has.
    """
    path = Path(labels)
    if path.suffix.lower() != ".csv":
        what = "a folder" if path.is_dir() else "not a .csv file"
        raise LabelsError(f"{str(path)!r}: {what}; training reads its songs and hit scores from a labels "
                          f"CSV with the columns {list(TRAINING_COLUMNS)}")
    columns = list(read_text_table(path, "labels", nrows=0).columns)
    missing = [c for c in TRAINING_COLUMNS if c not in columns]
    if missing == ["hit_score"]:
        raise LabelsError(f"{str(path)!r}: missing column 'hit_score' (training needs a hit score per "
                          f"song; found {columns})")
    if missing:
        raise LabelsError(f"{str(path)!r}: missing column(s) {missing} (training needs a labels CSV with "
                          f"{list(TRAINING_COLUMNS)}; found {columns})")


def _warn_linked(folder: Path, refs: list[SongRef]) -> None:
    """Warn when one file of a folder is listed under several names (symbolic or hard links):
    each name is processed, and ranked, as a song of its own."""
    names: dict[tuple[int, int], list[str]] = {}
    for r in refs:
        try:
            st = os.stat(r.path)
        except OSError:
            continue  # reported when it is decoded
        names.setdefault((st.st_dev, st.st_ino), []).append(r.song_id)
    linked = [ids for ids in names.values() if len(ids) > 1]
    if linked:
        shown = "; ".join(" = ".join(map(repr, ids)) for ids in linked[:N_SHARED])
        log.warning("%r: %d file(s) appear under more than one name (links: %s%s); each name is processed and "
                    "ranked as a song of its own", str(folder), len(linked), shown,
                    " ..." if len(linked) > N_SHARED else "")


def resolve_source(
    source: str | os.PathLike, allow_outside: bool = False, warn: bool = True
) -> tuple[list[SongRef], list[Rejected]]:
    """A folder, a labels CSV or one audio file -> songs to process and rows refused up front
    (``warn``: say when a folder lists one file under two names)."""
    source = Path(source)
    if source.is_dir():
        refs = list_folder(source)
        named = [r for r in refs if _utf8(r.song_id) and _utf8(r.path)]
        rejected = [Rejected(printable(r.song_id), printable(r.path), NOT_UTF8) for r in refs if r not in named]
        if warn:
            _warn_linked(source, named)
        return named, rejected
    if is_audio_name(source.name) and (source.exists() or source.is_symlink()):
        if not _utf8(str(source.absolute())):
            return [], [Rejected(printable(source.name), printable(str(source.absolute())), NOT_UTF8)]
        return [SongRef(source.name, str(source.absolute()))], []  # decoding reports a broken one
    if source.suffix.lower() == ".csv":
        refs, rejected, problems = read_labels(source, allow_outside)
        for p in problems:
            log.warning("%s", p)
        return refs, rejected
    if source.exists():
        raise LabelsError(f"{str(source)!r}: expected a folder of audio files, an audio file or a labels .csv")
    raise LabelsError(f"{str(source)!r}: no such folder or labels CSV")


#: why a folder given for its audio is refused when it holds none
NO_AUDIO = (f"no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)}; folders whose names start "
            "with '.' are skipped)")


def no_audio_found(folder: str | os.PathLike, doing: str) -> LabelsError:
    """The refusal of a folder that holds no audio file (``doing``: what it was given for,
    e.g. ``rank``, ``compare with (--reference)``)."""
    return LabelsError(f"{str(folder)!r}: {NO_AUDIO}; nothing to {doing}: check the path")


def reference_source(reference: str | os.PathLike) -> Path:
    """A ``--reference`` (a labels CSV or a folder of songs to compare with), checked before
    any song is ranked: LabelsError when it does not exist or is a folder without audio."""
    src = Path(reference)
    if not src.exists():
        raise LabelsError(f"reference={str(reference)!r}: no such labels CSV or folder")
    if src.is_dir() and not list_folder(src):
        raise no_audio_found(src, "compare with (--reference)")
    return src


def audio_arguments(paths: Iterable[str | os.PathLike]) -> list[str | Rejected]:
    """The files a command over audio files (``tags``, ``highlight``) runs on, in the order
    given: each argument as it is, a folder replaced by its audio files (recursive and sorted,
    as ``rank`` lists them, each as the folder joined with its relative path). A folder without
    audio, or a file in one whose name is not UTF-8, is a :class:`Rejected` in its place; the
    files are decoded by the command, which reports a bad one.
    """
    entries: list[str | Rejected] = []
    for arg in map(str, paths):
        if not Path(arg).is_dir():
            entries.append(arg)
            continue
        named = {r.song_id for r in resolve_source(arg)[0]}  # (and a warning for a file listed twice)
        listed = [os.path.join(arg, r.song_id) if r.song_id in named else
                  Rejected(printable(r.song_id), printable(os.path.join(arg, r.song_id)), NOT_UTF8)
                  for r in list_folder(arg)]  # in rank's order
        entries += listed or [Rejected(arg, arg, NO_AUDIO)]
    return entries


def audio_results(paths, run) -> tuple[int, Iterator[tuple[str, object]]]:
    """``(path, result)`` of each file of a command over audio files, in the order given (a
    folder: its audio files, :func:`audio_arguments`): ``run(files)`` returns an iterator of
    ``(path, result)`` of the files, called here so that its usage errors raise before any
    file; an argument refused before decoding (a folder without audio) gets its
    :class:`AudioLoadError` in its place. Returns ``(number of files, iterator)``."""
    entries = audio_arguments(paths)
    done = run([e for e in entries if not isinstance(e, Rejected)])

    def results():
        for e in entries:
            yield (e.path, AudioLoadError(e.path, e.reason)) if isinstance(e, Rejected) else next(done)

    return len(entries), results()


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def labelled_names(source: str | os.PathLike | None) -> dict[str, tuple[str, str]]:
    """``{song_id: (artist, title)}`` from a labels CSV's own ``artist`` and ``title`` columns
    ('' where a cell or the column is missing); ``{}`` for a folder, an audio file, None or an
    unreadable CSV (its problems are reported where its songs are read)."""
    if source is None or Path(source).suffix.lower() != ".csv" or not Path(source).is_file():
        return {}
    try:
        table = read_text_table(source)
    except LabelsError:
        return {}
    if "song_id" not in table or not ({"artist", "title"} & set(table.columns)):
        return {}
    artist = table["artist"] if "artist" in table else pd.Series("", index=table.index)
    title = table["title"] if "title" in table else pd.Series("", index=table.index)
    names: dict[str, tuple[str, str]] = {}
    for sid, a, t in zip(table["song_id"].str.strip(), artist, title, strict=True):
        names.setdefault(sid, (a.strip(), t.strip()))  # a repeated id: its first row, as read_labels
    return names


def song_names(source, song_ids, paths, artists=None) -> tuple[list[str], list[str]]:
    """Artist and title of each song, for rankings and catalogues: the labels CSV ``source``'s
    own ``artist`` and ``title`` columns when it is one (``artists``, e.g. a store manifest's
    artist column, come first), and the files' own tags where those leave a gap
    (:func:`hitrank.audio.file_tags`).

    Parameters
    ----------
    source : the folder, labels CSV or audio file the songs came from (None: tags only)
    song_ids, paths : (n,) the songs' ids and audio files
    artists : (n,) known artists ('' or NaN where unknown), or None

    Returns
    -------
    (artists, titles) : two lists of n str ('' where nothing names them)
    """
    song_ids, paths = list(song_ids), list(paths)
    known = [_text(a) for a in artists] if artists is not None else [""] * len(song_ids)
    labelled = labelled_names(source)
    pairs = [labelled.get(str(s), ("", "")) for s in song_ids]
    need = [i for i, (k, (a, t)) in enumerate(zip(known, pairs, strict=True)) if not (k or a) or not t]
    tag_artists, tag_titles = audio.file_tags([paths[i] for i in need])
    tags = {i: (ta, tt) for i, ta, tt in zip(need, tag_artists, tag_titles, strict=True)}
    out_artists = [k or a or tags.get(i, ("", ""))[0] for i, (k, (a, _)) in enumerate(zip(known, pairs, strict=True))]
    out_titles = [t or tags.get(i, ("", ""))[1] for i, (_, t) in enumerate(pairs)]
    return out_artists, out_titles

