"""Atomic file writes: a temporary file beside the target, then a rename, so a reader (or a
crash) never sees a half-written file; strict JSON text for the files other tools read; the
line numbers of a CSV's rows, for messages that name them."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on an
    exception it is removed and ``path`` is left untouched."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename == str(tmp):  # name the file the user asked for
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
