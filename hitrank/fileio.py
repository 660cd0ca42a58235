"""Atomic file writes: a temporary file beside the target, then a rename, so a reader (or a
crash) never sees a half-written file; strict JSON text for the files other tools read; the
line numbers of a CSV's rows, for messages that name them."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path


def is_system_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies under ``/dev/`` or ``/proc/`` (``/dev/stdout``, a link to file
    descriptor 1): written directly, never replaced or given a folder beside it."""
    return str(Path(os.path.abspath(path))).startswith(("/dev/", "/proc/"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on an
    exception it is removed and ``path`` is left untouched.

    A symbolic link is written through (the file it points to is replaced, the link kept); an
    existing path that is not a regular file (a named pipe, a device) and any path under
    ``/dev/`` or ``/proc/`` (``/dev/stdout`` redirected to a file) are yielded themselves and
    written directly, never replaced by a file.
    """
    path = Path(path)
    if is_system_path(path) or (path.exists() and not stat.S_ISREG(path.stat().st_mode) and not path.is_dir()):
        try:
            yield path
        except OSError as exc:
            exc.filename = exc.filename or str(path)
            raise
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    tmp = target.with_name(target.name + suffix)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename in (str(tmp), None):  # name the file the user asked for
            exc.filename = str(path)
        raise


def output_folder(path: str | os.PathLike, holds: str, error: type[Exception], create: bool = True) -> Path:
    """``path`` as a folder to write into, created with its parents when new (``create``; False:
    only checked, e.g. before any work).

    Raises ``error`` (the caller's :class:`hitrank.errors.HitrankError` kind) naming ``path``
    when a file is there: ``holds`` says what the folder is for (e.g. "a feature store").
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"{str(path)!r} is a file, not a folder for {holds}: name a folder (--out, --cache) that is "
                    f"new or holds {holds}")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, synced to disk."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a pipe or a terminal cannot be synced
            os.fsync(f.fileno())


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` atomically (checkpoints, training states)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def strict_json(obj, **kwargs) -> str:
    """JSON text of ``obj`` with every NaN or infinite number written as ``null``: strict JSON,
    which other tools (browsers, ``jq``) read, where Python's ``json`` would write ``NaN``.
    numpy scalars and arrays become numbers and lists; ``kwargs`` go to ``json.dumps``."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def _finite(v):
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy scalars and arrays
        return _finite(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


SAMPLE_BYTES = 1 << 16  # bytes read at the start, middle and end of a file before hashing all of it


def copies_of(paths, originals) -> dict[str, str]:
    """The files of ``paths`` whose bytes equal one of ``originals``' (copies under other names):
    ``{path: original}``. Only files of equal size are compared: first by three samples of
    :data:`SAMPLE_BYTES` (start, middle, end), and only where those agree by hashing the whole
    files, so songs of one fixed length (30 s previews) cost three small reads each, not a read
    of the catalogue. Unreadable files are no one's copy."""
    by_size: dict[int, list[str]] = {}
    for o in originals:
        with contextlib.suppress(OSError):
            by_size.setdefault(os.stat(o).st_size, []).append(str(o))
    digests: dict[tuple[str, bool], bytes | None] = {}

    def digest(path: str, whole: bool) -> bytes | None:
        if (path, whole) not in digests:
            h = hashlib.blake2b(digest_size=16)
            try:
                with open(path, "rb") as f:
                    if whole:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            h.update(block)
                    else:
                        size = os.fstat(f.fileno()).st_size
                        for at in (0, max(0, size // 2 - SAMPLE_BYTES // 2), max(0, size - SAMPLE_BYTES)):
                            f.seek(at)
                            h.update(f.read(SAMPLE_BYTES))
                digests[path, whole] = h.digest()
            except OSError:
                digests[path, whole] = None
        return digests[path, whole]

    def same(a: str, b: str) -> bool:
        return all(digest(a, whole) is not None and digest(a, whole) == digest(b, whole) for whole in (False, True))

    found = {}
    for p in map(str, paths):
        try:
            same_size = by_size.get(os.stat(p).st_size, [])
        except OSError:
            continue
        match = next((o for o in same_size if same(p, o)), None)
        if match is not None:
            found[p] = match
    return found


def row_lines(path: str | os.PathLike, n_rows: int) -> list[int]:
    """The line of the file on which each of a CSV's ``n_rows`` data rows starts (1-based; the
    header is line 1 when nothing precedes it), as ``pandas.read_csv`` reads it: blank and
    blank-looking lines are skipped, a quoted cell may span lines. Falls back to ``i + 2`` for
    row ``i`` when the file cannot be read this way or the rows do not match ``n_rows``."""
    lines, last = [], 0
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            for record in reader:
                start, last = last + 1, reader.line_num
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # pandas skips blank lines
                lines.append(start)
    except (OSError, csv.Error):
        lines = []
    lines = lines[1:]  # the header
    return lines if len(lines) == n_rows else [i + 2 for i in range(n_rows)]
