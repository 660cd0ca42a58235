"""Atomic file writes: a temporary file beside the target, then a rename, so a reader (or a
crash) never sees a half-written file; strict JSON text for the files other tools read."""

from __future__ import annotations

import contextlib
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
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
