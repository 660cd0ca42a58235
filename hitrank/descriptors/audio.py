"""Describing songs: files and folders of audio -> Spotify-style descriptors
(``hitrank descriptors FOLDER``).

Each song is decoded whole (up to 10 minutes, at its own rate, mono) and described by a named
extractor of :mod:`hitrank.descriptors.extractors` (``hybrid`` by default; ``librosa``); with
``tags=True`` also the 50 MTT tag probabilities of the whole song as ``tag_<name>`` (spaces
become underscores: ``tag_male_vocal``), from the musicnn port. A folder is journalled song by
song (it resumes) and records the extractor it was made with (``descriptors.json``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import audio
from ..constants import TAGS
from ..corpus import no_audio_found, resolve_source
from ..engines import get_engine
from ..errors import AudioLoadError, HitrankError
from ..extract import ExtractReport
from ..fileio import atomic_write_text, output_folder
from ..journal import Journal
from ..tags import segment_tags
from .extractors import (
    DEFAULT_EXTRACTOR,
    LEGACY_EXTRACTOR,
    MIN_SECONDS,
    check_available,
    describe,
    needs_tags,
)

log = logging.getLogger(__name__)

MAX_SECONDS = 600.0  # songs longer than 10 minutes are described from their first 10 minutes


def tag_columns() -> list[str]:
    """The 50 ``tag_<name>`` columns of ``tags=True``, in :data:`hitrank.constants.TAGS` order."""
    return [f"tag_{t.replace(' ', '_')}" for t in TAGS]


def describe_file(path: str | os.PathLike, tags: bool = False, extractor: str = DEFAULT_EXTRACTOR) -> dict:
    """Decode a song (whole, up to 10 minutes, at its own rate) and describe it with the
    named extractor (:mod:`hitrank.descriptors.extractors`); with ``tags`` also the 50
    ``tag_*`` columns. AudioLoadError on bad files."""
    meta = audio.info(path)
    if meta.duration < MIN_SECONDS:
        raise AudioLoadError(path, f"too short to describe ({meta.duration:.2f} s; "
                                   f"need >= {MIN_SECONDS:g} s)")
    seg = audio.load_window(path, 0.0, min(meta.duration, MAX_SECONDS), meta.samplerate, meta)
    tag_vec = (segment_tags(seg.audio, meta.samplerate, scope="song")
               if tags or needs_tags(extractor) else None)
    out = describe(seg.audio, meta.samplerate, extractor, tags=tag_vec)
    out["duration_ms"] = meta.duration * 1000.0
    if tags:
        out.update(zip(tag_columns(), map(float, tag_vec), strict=True))
    bad = [k for k, v in out.items() if not np.isfinite(v)]
    if bad:
        raise AudioLoadError(path, f"descriptors {bad} are not finite (corrupt audio?)")
    return out


def _work(item):
    sid, path, tags, extractor = item
    try:
        return sid, describe_file(path, tags, extractor), ""
    except AudioLoadError as exc:
        return sid, None, exc.reason
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        return sid, None, f"{type(exc).__name__}: {exc}"


def describe_folder(source: str | os.PathLike, out: str | os.PathLike, workers: int = 1,
                    progress: bool = True, allow_outside: bool = False,
                    tags: bool = False, extractor: str = DEFAULT_EXTRACTOR) -> ExtractReport:
    """Describe every song of a folder or labels CSV into ``out/descriptors.csv``.

    Songs are journalled one line each in ``out/descriptors.jsonl`` as they finish, so an
    interrupted run resumes; ``descriptors.csv`` (``song_id, path, artist, hit_score`` when
    known, then the descriptors) and ``failures.csv`` are rewritten atomically at the end.
    ``tags=True`` adds the 50 ``tag_*`` columns; ``extractor`` names the descriptor
    extractor (recorded in ``descriptors.json``); a folder keeps the choices it was made with.
    """
    check_available(extractor)  # a missing optional library stops the run before any work
    from tqdm import tqdm

    if workers < 1:
        raise HitrankError(f"workers={workers}; need at least 1")
    refs, rejected = resolve_source(source, allow_outside)
    if not refs and not rejected:  # as `extract` and `rank` refuse it, before --out is made
        raise no_audio_found(source, "describe")
    out = output_folder(out, "descriptors", HitrankError)
    meta = out / "descriptors.json"
    if meta.is_file():
        made = json.loads(meta.read_text())
        if made.get("tags", False) != tags:
            raise HitrankError(f"{str(out)!r} was made {'with' if not tags else 'without'} --tags; "
                               "use another --out folder")
        if made.get("extractor", LEGACY_EXTRACTOR) != extractor:
            raise HitrankError(f"{str(out)!r} was made with --extractor "
                               f"{made.get('extractor', LEGACY_EXTRACTOR)}, not {extractor}; use "
                               "another --out folder")
    atomic_write_text(meta, json.dumps({"tags": tags, "extractor": extractor, "format": 2}))
    report = ExtractReport(out, total=len(refs) + len(rejected), song_ids=[r.song_id for r in refs])
    report.failures += [(r.song_id, r.path, r.reason) for r in rejected]
    journal = Journal(out / "descriptors.jsonl")
    done = journal.read()
    todo = [r for r in refs if r.song_id not in done]
    report.skipped = len(refs) - len(todo)
    items = [(r.song_id, r.path, tags, extractor) for r in todo]
    by_id = {r.song_id: r for r in refs}
    try:
        with get_engine("local", workers) as run:
            for sid, desc, reason in tqdm(run(_work, items), total=len(items), unit="song",
                                          desc="descriptors", disable=not progress):
                if desc is None:
                    log.error("%r: %s", by_id[sid].path, reason)
                    report.failures.append((sid, by_id[sid].path, reason))
                    continue
                done[sid] = {"song_id": sid, **desc}
                journal.append(done[sid])
                journal.sync()
                report.new += 1
    finally:
        journal.close()
        _write_tables(out, refs, done, report.failures)
    return report


def _write_tables(out: Path, refs, done: dict, failures: list) -> None:
    rows = []
    for r in refs:
        if r.song_id in done:
            rec = {"song_id": r.song_id, "path": r.path, "artist": r.artist}
            if np.isfinite(r.hit_score):
                rec["hit_score"] = r.hit_score
            rec.update({k: v for k, v in done[r.song_id].items() if k != "song_id"})
            rows.append(rec)
    for name, frame in (("descriptors.csv", pd.DataFrame(rows)),
                        ("failures.csv", pd.DataFrame(failures, columns=["song_id", "path", "error"]))):
        atomic_write_text(out / name, frame.to_csv(index=False))
