"""Batch feature extraction: SOURCE (folder or labels CSV) -> feature store.

Each song is decoded once (only its segment), turned into a log-mel and written to its row of
the store. Finished songs are skipped on re-runs, failures are recorded and the batch goes
on, and an interrupted run resumes where it stopped (see :mod:`hitrank.store`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio, embeddings, segments
from .corpus import no_audio_found, resolve_source
from .engines import get_engine
from .errors import AudioLoadError, HitrankError
from .features import FeatureParams
from .runtime import single_thread
from .store import FeatureStore
from .tags import check_tagger, segment_tags

log = logging.getLogger(__name__)

#: without a progress bar, extraction logs about this many progress lines ...
PROGRESS_LINES = 10
#: ... each after at least this many songs
PROGRESS_LINE_MIN_SONGS = 10


@dataclass
class ExtractReport:
    """What an extraction run did, counted over the songs of its source.

    ``ok`` (songs with features after the run) = ``skipped`` (already extracted before it)
    + ``new`` (extracted by it); ``failed`` songs have none.
    """

    store: Path
    total: int = 0  # songs in the source (including rejected rows)
    skipped: int = 0  # already done before this run
    new: int = 0  # extracted in this run
    failures: list = field(default_factory=list)  # (song_id, path, reason)
    silent: list = field(default_factory=list)  # (song_id, path): extracted, segment holds no sound
    song_ids: list = field(default_factory=list)  # every song listed in the source this run
    files: list = field(default_factory=list)  # the store's files (FeatureStore.files), e.g. tags.npy

    @property
    def ok(self) -> int:
        """Songs of the source with features after the run (extracted before it or by it)."""
        return self.skipped + self.new

    @property
    def failed(self) -> int:
        return len(self.failures)


def extract_song(path: str | os.PathLike, params: FeatureParams = FeatureParams(),
                 highlighter: str | os.PathLike | None = None):
    """Decode one song's segment and compute its log-mel.

    The segment method (:mod:`hitrank.segments`) decodes what it needs: Mid-30 only the middle
    30 s; HL-30 the whole song once, finds the highlight (``params.highlighter``: the fallback,
    or the attention checkpoint ``highlighter``) and cuts the 30 s out of the same audio.

    Returns
    -------
    feats : ndarray (n_mels, n_frames), ``params.dtype`` (float16; float32 for raw power)
    info : dict
        ``seg_start``, ``seg_end``, ``duration`` (s), ``padded`` and ``silent`` (the segment
        holds no sound, audio.is_silent: kept, flagged); the segment method's
        manifest fields (HL-30: ``method`` and ``curve``, the per-second importance curve as a
        JSON list); with ``params.tags`` also ``tags``, the (50,) float32 tag vector of the
        segment or of the whole song, from ``params.tagger``; with ``params.embedding`` also
        ``embedding``, the (embedding_dim,) float32 song embedding of that network
        (:mod:`hitrank.embeddings`) over the segment or the whole song; with
        ``params.contrast`` also ``contrast``, the (n_mels, n_frames) features of the song's
        contrast window (:meth:`hitrank.segments.Cut.contrast_mel`); with
        ``params.whole_song`` also ``whole``, the (n_mels, n_song_frames) log-mel of the whole
        song (:meth:`hitrank.segments.Cut.whole_mel`).

    Raises
    ------
    AudioLoadError
        When the file cannot be used; the message names the file and the reason.
    """
    cut = segments.get(params.segment).cut(path, params, highlighter)
    seg, extra = cut.segment, dict(cut.fields)
    with single_thread():
        mel = cut.mel(params).numpy().astype(params.dtype)
        if params.tags:
            extra["tags"] = _song_tags(path, params, seg.audio, cut.song)
        if params.embedding:
            extra["embedding"] = _song_embedding(path, params, seg.audio, cut.song)
        if params.contrast:
            extra["contrast"] = cut.contrast_mel(path, params).numpy().astype(params.dtype)
        if params.whole_song:
            extra["whole"] = cut.whole_mel(path, params).numpy().astype(params.dtype)
    # checked after the cast: raw power can overflow float16 (hence float32 for log='none')
    if not all(np.all(np.isfinite(a)) for a in (mel, extra.get("contrast", 0.0), extra.get("whole", 0.0))):
        raise AudioLoadError(path, "features are not finite (corrupt audio?)")
    for k in ("tags", "embedding"):  # the audio's log-mel is finite: the network is at fault
        if not np.all(np.isfinite(extra.get(k, 0.0))):
            raise AudioLoadError(path, f"the {k} network's output is not finite while the audio's log-mel is: "
                                       "check its weights (imported ones: `hitrank pretrained import PATH "
                                       "--force`)")
    if seg.silent:
        log.warning("%r: nothing to score, the audio is %s; kept, flagged silent=True (ranked last, left out of "
                    "training)", str(path), audio.silent_message(seg.audio, seg.sr, seg.duration, " in the analysed segment"))
    info = {"seg_start": round(seg.start, 4), "seg_end": round(seg.end, 4),
            "duration": round(seg.duration, 4), "padded": bool(seg.padded),
            "silent": bool(seg.silent), **extra}
    return mel, info


def _song_tags(path, params: FeatureParams, segment_audio: np.ndarray, song: np.ndarray | None):
    """The (50,) tag vector of the segment, or of the whole song (decoded again only when the
    segment method did not decode it)."""
    if params.tags == "segment":
        return segment_tags(segment_audio, params.sr, tagger=params.tagger)
    if song is not None:
        return segment_tags(song, params.sr, tagger=params.tagger, scope="song")
    return segment_tags(None, params.sr, whole=path, tagger=params.tagger)


def _song_embedding(path, params: FeatureParams, segment_audio: np.ndarray, song: np.ndarray | None):
    """The song embedding of the segment, or of the whole song (decoded again, at the
    network's own rate, only when the segment method did not decode it)."""
    try:
        if params.embedding_scope == "segment":
            return embeddings.embed_audio(segment_audio, params.sr, params.embedding)
        if song is not None:
            return embeddings.embed_audio(song, params.sr, params.embedding)
    except HitrankError as exc:  # e.g. shorter than one window of the network
        raise AudioLoadError(path, str(exc)) from None
    return embeddings.embed_file(path, params.embedding)


def _job(args):
    song_id, path, params, highlighter = args
    try:
        feats, info = extract_song(path, params, highlighter)
        return song_id, feats, info, ""
    except AudioLoadError as exc:
        return song_id, None, None, exc.reason
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
        return song_id, None, None, f"unexpected error ({type(exc).__name__}: {exc})"


def _crashed(job, reason: str):
    return job[0], None, None, reason


def extract(
    source: str | os.PathLike,
    out: str | os.PathLike,
    params: FeatureParams = FeatureParams(),
    workers: int = 1,
    progress: bool = True,
    allow_outside: bool = False,
    highlighter: str | os.PathLike | None = None,
    engine: str = "local",
    address: str | None = None,
    skip=(),
) -> ExtractReport:
    """Extract features of every song in ``source`` into the store ``out``.

    Parameters
    ----------
    source : folder of audio files (recursive) or labels CSV
    out : store folder (created if needed)
    params : feature parameters; a store refuses parameters other than its own
    workers : worker processes (1 = in this process); with ``engine="ray"`` and no
        ``address``, the CPUs of the local Ray instance (0 = all)
    progress : show a tqdm progress bar
    allow_outside : let a labels CSV point at files outside its folder
    highlighter : attention highlighter checkpoint for HL-30 (None: the fallback); make
        matching parameters with ``segments.params_for("hl30", highlighter)``
    engine : ``local`` (this machine) or ``ray`` (Ray tasks over shards of the song list; the
        store, its resume and its failure records are the same), see :mod:`hitrank.engines`
    address : Ray cluster address (``auto`` or ``HOST:PORT``); None starts a local instance
    skip : song ids of the source to leave out (``rank --since``: songs ranked before)

    Returns
    -------
    ExtractReport
    """
    from tqdm import tqdm

    # the segment method checks an attention checkpoint against the digest in params
    if segments.get(params.segment).resolve_highlighter(params, highlighter) is None and highlighter:
        raise HitrankError(f"highlighter={str(highlighter)!r} given, but features with segment="
                           f"{params.segment!r}, highlighter={params.highlighter!r} use none; "
                           "build the parameters with segments.params_for()")
    if params.tags:
        check_tagger(params.tagger)  # missing tagger weights stop the run before any work
    if params.embedding:
        embeddings.get(params.embedding).check()  # so do missing embedding weights
    least = 0 if engine == "ray" else 1  # the ray engine's 0: every CPU of the local instance
    if workers < least:
        raise HitrankError(f"workers={workers}; need at least {least}")
    refs, rejected = resolve_source(source, allow_outside)
    if skip:
        skip = set(skip)
        listed = len(refs) + len(rejected)
        refs = [r for r in refs if r.song_id not in skip]
        rejected = [r for r in rejected if r.song_id not in skip]
        log.info("%d of %d songs left out (done before)", listed - len(refs) - len(rejected), listed)
    report = ExtractReport(Path(out), total=len(refs) + len(rejected), song_ids=[r.song_id for r in refs])
    if not refs and not rejected and not skip:  # before the store is made
        raise no_audio_found(source, "extract")
    for r in rejected:
        log.error("%s", f"{r.path!r}: {r.reason}" if r.path else r.reason)
        report.failures.append((r.song_id, r.path, r.reason))
    with FeatureStore.create_or_open(out, params, segments.get(params.segment).manifest_fields) as store:
        store.plan([(r.song_id, r.path, r.artist, r.hit_score) for r in refs])
        done = store.done_ids()
        todo = [r for r in refs if r.song_id not in done]
        report.skipped = len(refs) - len(todo)
        report.files = store.files
        if report.skipped:
            log.info("%d of %d songs already extracted; %d to go", report.skipped, len(refs), len(todo))
        jobs = [(r.song_id, r.path, params, highlighter) for r in todo]
        paths = {r.song_id: r.path for r in todo}
        bar = tqdm(total=len(jobs), desc="extract", unit="song", disable=not progress)
        # without a progress bar (output to a file or pipe: a batch job's log), a line per tenth
        step = max(PROGRESS_LINE_MIN_SONGS, len(jobs) // PROGRESS_LINES)
        failed_here = 0
        if not progress and jobs:
            log.info("extracting %d songs into %s", len(jobs), out)
        try:
            with get_engine(engine, workers, address) as run:
                for n_done, (song_id, feats, info, reason) in enumerate(run(_job, jobs, _crashed), 1):
                    if feats is None:
                        failed_here += 1
                        log.error("%r: %s", paths[song_id], reason)
                        store.fail(song_id, reason)
                        report.failures.append((song_id, paths[song_id], reason))
                    else:
                        store.write(song_id, feats, info, **{k: info.pop(k, None) for k in store.side_names})
                        report.new += 1
                        if info.get("silent"):
                            report.silent.append((song_id, paths[song_id]))
                    bar.update()
                    if not progress and (n_done % step == 0 or n_done == len(jobs)):
                        log.info("extracted %d of %d songs (%d of them failed)", n_done, len(jobs), failed_here)
        finally:
            bar.close()
    return report
