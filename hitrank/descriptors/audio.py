"""Spotify-style descriptors approximated from audio (``hitrank descriptors FOLDER``).

Spotify never published how its descriptors are computed; these are documented, transparent
approximations from librosa features of the whole song (mono, 22 050 Hz; STFT 2048 / hop 512),
on the same scales as the Spotify columns so the same configs run on both. They are *not*
Spotify's values: a model trained on a Spotify table should be retrained on these.

=================  =====================================================================
descriptor         computed as
=================  =====================================================================
duration_ms        decoded length
loudness           mean power in dBFS, ``10 log10(mean(y^2))``, clipped to [-80, 0]
tempo              ``librosa.beat.beat_track`` (BPM)
danceability       pulse clarity x beat regularity: highest normalised autocorrelation of
                   the onset envelope at lags of 0.3-1.0 s, times ``1 - CV`` of beat intervals
energy             ``0.6 * clip((loudness + 40) / 35) + 0.4 * clip(mean centroid / 3000 Hz)``
key, mode          Krumhansl-Schmuckler: mean chroma correlated with the 24 rotated key
                   profiles (key 0 = C; mode 1 = major)
speechiness        noisiness proxy: ``clip(5 * mean spectral flatness)``
acousticness       ``1 - clip(8 * share of power above 4 kHz)``
instrumentalness   ``1 - clip((share of power in 300-3400 Hz - 0.3) / 0.5)`` (voice band)
liveness           dynamics proxy: ``clip(std of frame loudness in dB / 20)``
valence            ``0.5 * mode + 0.5 * clip((tempo - 60) / 120)``
time_signature     3 if the onset autocorrelation is higher at 3 beats than at 4, else 4
=================  =====================================================================

Further columns (no Spotify equivalent): ``spectral_centroid_mean/std``, ``rolloff_mean``,
``flatness_mean``, ``zcr_mean``, ``onset_rate``, ``rms_db_std``, ``mfcc1..mfcc13`` (means); with
``tags=True`` also the 50 MTT tag probabilities of the whole song as ``tag_<name>`` (spaces
become underscores: ``tag_male_vocal``), from the musicnn port.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import audio
from ..corpus import resolve_source
from ..engines import get_engine
from ..errors import AudioLoadError, HitrankError
from ..extract import ExtractReport
from ..fileio import atomic_write_text
from ..journal import Journal

log = logging.getLogger(__name__)

SR = 22050
N_FFT, HOP = 2048, 512
MAX_SECONDS = 600.0  # songs longer than 10 minutes are described from their first 10 minutes
DEFAULT_EXTRACTOR = "hybrid"  # see hitrank.descriptors.extractors (chosen by measurement)
LEGACY_EXTRACTOR = "librosa"  # what folders described before the extractor was recorded used
EXTRA = (["spectral_centroid_mean", "spectral_centroid_std", "rolloff_mean", "flatness_mean",
          "zcr_mean", "onset_rate", "rms_db_std"] + [f"mfcc{i}" for i in range(1, 14)])
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _key_mode(chroma_mean: np.ndarray) -> tuple[int, int]:
    """Krumhansl key (0-11) and mode (1 major, 0 minor) of a (12,) mean chroma; C major when
    the chroma is flat (silence: no correlation to compute)."""
    best, key, mode = -np.inf, 0, 1
    if np.ptp(chroma_mean) == 0:
        return key, mode
    for m, prof in ((1, _MAJOR), (0, _MINOR)):
        for k in range(12):
            r = np.corrcoef(chroma_mean, np.roll(prof, k))[0, 1]
            if np.isfinite(r) and r > best:
                best, key, mode = r, k, m
    return key, mode


def describe_audio(y: np.ndarray, sr: int = SR) -> dict:
    """Descriptors of a mono signal ``y`` (n,) at ``sr`` (see the module table)."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2  # (1 + n_fft/2, T)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    total = S.sum(axis=0) + 1e-12
    power = float(np.mean(y.astype(np.float64) ** 2))
    loudness = max(-80.0, min(0.0, 10 * np.log10(power + 1e-12)))
    frame_db = 10 * np.log10(S.mean(axis=0) + 1e-12)
    oenv = librosa.onset.onset_strength(S=librosa.power_to_db(
        librosa.feature.melspectrogram(S=S, sr=sr, n_mels=64)), sr=sr, hop_length=HOP)
    tempo, beats = librosa.beat.beat_track(onset_envelope=oenv, sr=sr, hop_length=HOP)
    tempo = float(np.atleast_1d(tempo)[0])
    fps = sr / HOP
    ac = librosa.autocorrelate(oenv - oenv.mean(), max_size=int(4 * fps))
    ac = ac / ac[0] if ac[0] > 0 else np.zeros_like(ac)
    lo, hi = int(0.3 * fps), int(1.0 * fps)
    clarity = float(np.max(ac[lo:hi])) if hi < len(ac) else 0.0
    ibi = np.diff(beats) if len(beats) > 2 else np.array([1.0])
    regularity = 1.0 - min(1.0, float(np.std(ibi) / max(np.mean(ibi), 1e-9)))
    mag = np.sqrt(S)
    mag_sum = mag.sum(axis=0) + 1e-12
    centroid = freqs @ mag / mag_sum
    flatness = np.exp(np.mean(np.log(S + 1e-10), axis=0)) / (np.mean(S, axis=0) + 1e-10)
    rolloff = freqs[np.argmax(np.cumsum(mag, axis=0) >= 0.85 * mag_sum, axis=0)]
    chroma = librosa.feature.chroma_stft(S=S, sr=sr, tuning=0.0)
    key, mode = _key_mode(chroma.mean(axis=1))
    beat_lag = 60.0 / tempo * fps if tempo > 0 else 0
    ts = 4
    if beat_lag and int(4 * beat_lag) < len(ac):
        ts = 3 if ac[int(round(3 * beat_lag))] > ac[int(round(4 * beat_lag))] else 4
    voice = S[(freqs >= 300) & (freqs <= 3400)].sum(axis=0) / total
    high = S[freqs >= 4000].sum(axis=0).sum() / total.sum()
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=S, sr=sr)),
                                n_mfcc=13).mean(axis=1)
    seconds = len(y) / sr
    onsets = librosa.onset.onset_detect(onset_envelope=oenv, sr=sr, hop_length=HOP)
    out = {
        "danceability": _clip(max(0.0, clarity) * regularity),
        "energy": _clip(0.6 * _clip((loudness + 40) / 35) + 0.4 * _clip(float(centroid.mean()) / 3000)),
        "key": float(key), "loudness": float(loudness), "mode": float(mode),
        "speechiness": _clip(5 * float(flatness.mean())),
        "acousticness": _clip(1 - 8 * float(high)),
        "instrumentalness": _clip(1 - (float(voice.mean()) - 0.3) / 0.5),
        "liveness": _clip(float(np.std(frame_db)) / 20),
        "valence": _clip(0.5 * mode + 0.5 * _clip((tempo - 60) / 120)),
        "tempo": tempo, "duration_ms": seconds * 1000.0, "time_signature": float(ts),
        "spectral_centroid_mean": float(centroid.mean()), "spectral_centroid_std": float(centroid.std()),
        "rolloff_mean": float(rolloff.mean()),
        "flatness_mean": float(flatness.mean()),
        "zcr_mean": float(librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)[0].mean()),
        "onset_rate": len(onsets) / max(seconds, 1e-9), "rms_db_std": float(np.std(frame_db)),
    }
    out.update({f"mfcc{i + 1}": float(v) for i, v in enumerate(mfcc)})
    return out


def tag_columns() -> list[str]:
    from ..tags import TAGS

    return [f"tag_{t.replace(' ', '_')}" for t in TAGS]


def describe_file(path: str | os.PathLike, tags: bool = False, extractor: str = DEFAULT_EXTRACTOR) -> dict:
    """Decode a song (whole, up to 10 minutes, at its own rate) and describe it with the
    named extractor (:mod:`hitrank.descriptors.extractors`); with ``tags`` also the 50
    ``tag_*`` columns. AudioLoadError on bad files."""
    from ..tags import segment_tags
    from .extractors import describe, needs_tags

    meta = audio.info(path)
    if meta.duration < 1.0:
        raise AudioLoadError(path, f"too short to describe ({meta.duration:.2f} s; need >= 1 s)")
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
    from .extractors import check_available

    check_available(extractor)  # a missing optional library stops the run before any work
    from tqdm import tqdm

    if workers < 1:
        raise HitrankError(f"workers={workers}; need at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    refs, rejected = resolve_source(source, allow_outside)
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
                report.ok += 1
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
