"""Append-only JSON-lines journals: the crash-safe record of per-file work.

One line per event, ``json.dumps(record)``; the last line of a key (``song_id``) wins. A line
cut by a crash is skipped when reading, so that file is simply redone. Used by the feature
store (its manifest is rebuilt from the journal) and by ``hitrank descriptors``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Journal:
    """A JSON-lines journal at ``path`` keyed by ``key``."""

    def __init__(self, path: str | os.PathLike, key: str = "song_id"):
        self.path = Path(path)
        self.key = key
        self._fh = None

    def read(self) -> dict[str, dict]:
        """The latest record of every key (empty when the journal does not exist)."""
        records: dict[str, dict] = {}
        if not self.path.is_file():
            return records
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: that item is redone
                if isinstance(rec, dict) and self.key in rec:
                    records[rec[self.key]] = rec
        return records

    def append(self, rec: dict) -> None:
        """Append one record (buffered; :meth:`sync` makes it durable)."""
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(rec, allow_nan=True) + "\n")

    def sync(self) -> None:
        """Flush and fsync what was appended."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None

    @property
    def is_open(self) -> bool:
        return self._fh is not None
