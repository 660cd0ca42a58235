"""Audio decoding: read only the frames a segment needs, down-mix, resample.

All decoding goes through libsndfile (``soundfile``), which reads WAV, FLAC, OGG/Vorbis,
Opus and MP3 without ffmpeg. Every failure is raised as :class:`AudioLoadError` naming the
file and the reason, so a batch can record it and go on.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .constants import SAMPLE_RATE, SEGMENT_SECONDS, UNSUPPORTED_AUDIO_EXTENSIONS
from .errors import AudioLoadError
from .truncation import OGG_CAPTURE, UNKNOWN_FRAMES, mp3_truncation, ogg_truncation, truncation

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-5  # linear full-scale; a segment whose peak is below this is treated as silent
FRAME_SECONDS = 0.05  # the frames audible_seconds judges
AUDIBLE_DBFS = -60.0  # a frame quieter than this (RMS, its own mean removed: a DC level) holds no sound
MIN_AUDIBLE_SECONDS = 0.25  # analysed audio with less sound than this is treated as silent (seven 20 ms
# clicks of a 6 s metronome hold 0.5 s; one click, a one-sample or a 0.1 s file 0.05-0.15 s)
MIN_SONG_SECONDS = 1.0  # a file shorter than this is treated as silent: its padded segment is nearly all
# padding, and a score of it would describe the padding (the descriptors refuse such files too)
FRAMES_AT_ONCE = 1200  # frames judged per step (a minute): a long song needs no float copy of itself
CANCELLED_MIX = 0.01  # a down-mix below 1% (-40 dB) of its first channel's RMS: the channels cancel
MAX_PEAK = 10.0  # linear full-scale (+20 dBFS): float samples beyond it are broken levels, not music
RESAMPLE_QUALITY = "HQ"  # soxr quality, the same as librosa's default 'soxr_hq'


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about a file, before any decoding."""

    path: str
    samplerate: int  # Hz
    frames: int  # samples per channel, as the header claims
    channels: int

    @property
    def duration(self) -> float:
        """Duration in seconds, as the header claims."""
        return self.frames / self.samplerate


@dataclass(frozen=True)
class Segment:
    """A decoded mono segment at the analysis rate, and where it came from."""

    audio: np.ndarray  # (n_samples,) float32, mono, at ``sr``
    sr: int  # Hz
    start: float  # s, segment start in the song
    end: float  # s, segment end in the song (start + segment length, even when padded)
    duration: float  # s, duration of the whole song
    padded: bool  # True when the song was shorter than the segment and was zero-padded
    silent: bool = False  # True when the segment holds no sound (is_silent; kept only on request)


def check_file(path: Path) -> None:
    """AudioLoadError naming ``path`` unless it is a readable, non-empty regular file (a broken
    link, a missing file, a folder, a pipe or device, no read permission, 0 bytes)."""
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13: a loop is a RuntimeError, since 3.13 an OSError (ELOOP)
            raise AudioLoadError(path, "symbolic link loop (links that point to each other)") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise AudioLoadError(path, "symbolic link loop (links that point to each other)") from None
        raise AudioLoadError(path, "broken symbolic link (its target does not exist)")
    if not path.exists():
        raise AudioLoadError(path, "file does not exist")
    if path.is_dir():
        raise AudioLoadError(path, "is a directory, not an audio file")
    if not path.is_file():
        raise AudioLoadError(path, "not a regular file (a pipe, socket or device?); save the audio to a file first")
    if not os.access(path, os.R_OK):
        raise AudioLoadError(path, "permission denied (file is not readable)")
    if path.stat().st_size == 0:
        raise AudioLoadError(path, "file is 0 bytes")


#: bytes of the decoder's own notes shown with ``-v`` (a damaged MP3 makes libmpg123 write many)
DECODER_NOTE_BYTES = 2000
#: bytes of them searched for signs that it dropped data
DECODER_SCAN_BYTES = 1 << 16
#: libmpg123's words when it dropped data and decoded on (``Note: Skipped 16 bytes in input.``,
#: ``[src/libmpg123/layer3.c:...] error: part2_3_length ...``)
DAMAGE_NOTES = ("Skipped ", "] error: ")
#: held while file descriptor 2 is redirected: one capture at a time (a nested or concurrent
#: one passes the notes through instead of redirecting the redirection)
_CAPTURE = threading.Lock()


@contextmanager
def decoder_notes(path: str | os.PathLike) -> Iterator[None]:
    """Catch what the decoding libraries write straight to the process's stderr while ``path``
    is opened or read, and log it with the file's name.

    libmpg123, libsndfile's MP3 decoder, writes notes such as ``Note: Illegal Audio-MPEG-Header
    ... Trying to resync...`` to file descriptor 2 itself, naming no file: in a batch nobody
    could tell which file they are about. They are logged at debug level (``-v``); when the file
    then decodes although the decoder skipped damaged bytes, a warning names it (once per file
    and process: its audio may hold a glitch). When it fails, hitrank's own error names the file
    and the reason. Only the main thread captures, one capture at a time; where file descriptor
    2 cannot be redirected (closed, no temporary file) the notes go through as before.
    """
    saved = caught = None
    if threading.current_thread() is threading.main_thread() and _CAPTURE.acquire(blocking=False):
        try:
            caught = tempfile.TemporaryFile()
            if sys.stderr is not None:  # None when Python started with file descriptor 2 closed
                sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            if caught is not None:
                caught.close()
            _CAPTURE.release()
            saved = None
    if saved is None:
        yield
        return
    failed = False
    try:
        os.dup2(caught.fileno(), 2)
        yield
    except BaseException:
        failed = True
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        _CAPTURE.release()
        with caught:
            caught.seek(0)
            text = caught.read(DECODER_SCAN_BYTES).decode("utf-8", errors="replace")
        if text.strip():
            log.debug("%r: the decoder noted: %s", str(path), " ".join(text[:DECODER_NOTE_BYTES].split()))
            if not failed and any(w in text for w in DAMAGE_NOTES):
                _warn_damaged(str(path))


@functools.lru_cache(maxsize=64)
def _warn_damaged(path: str) -> None:
    """The warning of :func:`decoder_notes`, once per file (the last 64 files remembered)."""
    log.warning("%r: the decoder skipped damaged data and went on (-v shows its notes); the audio "
                "may hold a glitch: download, copy or export the file again if it sounds wrong", path)


def _open(path: Path) -> sf.SoundFile:
    check_file(path)
    return _decoder(path)


def _decoder(path: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        suffix = path.suffix.lower()
        if suffix in UNSUPPORTED_AUDIO_EXTENSIONS:  # a WAV named .m4a still decodes (by content)
            raise AudioLoadError(path, f"the {suffix} format cannot be decoded here (libsndfile reads WAV, FLAC, "
                                       f"OGG/Opus, MP3, AIFF); convert the file, e.g. `ffmpeg -i IN{suffix} "
                                       "OUT.flac`") from None
        reason = str(exc).split(":")[-1].strip() or type(exc).__name__
        if "not a regular file" in reason:  # libsndfile's words for a format it does not recognise
            reason = "unknown or damaged format"
        raise AudioLoadError(path, f"cannot decode ({reason}); not a supported audio file?") from None
    except OSError as exc:
        raise AudioLoadError(path, f"cannot open ({exc.strerror or exc})") from None


def info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file, and check that the file is not cut off.

    Every loader calls this before decoding. A truncated file (a cut-off download or copy) is
    refused rather than read as a shorter song: see :func:`hitrank.truncation.truncation` for
    what is judged. A file whose header records no length (a FLAC written as a stream) is
    refused too: nothing could tell where its middle 30 s are without decoding all of it.

    Raises
    ------
    AudioLoadError
        If the file is missing, empty, unreadable, not decodable, truncated, or has no audio.
    """
    path = Path(path)
    check_file(path)
    try:
        with decoder_notes(path):
            result, cut = _header(path)
    except OSError as exc:  # reading header bytes ourselves
        raise AudioLoadError(path, f"cannot read ({exc.strerror or exc})") from None
    if cut:
        raise AudioLoadError(path, f"file is truncated: {cut}; {TRUNCATED_FIX}")
    if result.frames <= 0:
        raise AudioLoadError(path, "file holds no audio frames")
    if result.frames >= UNKNOWN_FRAMES:
        raise AudioLoadError(path, "the header records no length (a FLAC written as a stream?); "
                                   "re-encode the file, e.g. to WAV or to a FLAC with its length")
    return result


def _header(path: Path) -> tuple[AudioInfo | None, str | None]:
    """libsndfile's view of a file, and why the file is cut off (None: whole, or not judged)."""
    # an MP3 is judged before libsndfile opens it: mpg123 prints a warning of its own on a
    # cut-off one
    cut = mp3_truncation(path)
    if cut:
        return None, cut
    try:
        f = _decoder(path)
    except AudioLoadError:
        # an Ogg file cut inside its first pages does not even open: say so, if so
        cut = ogg_truncation(path) if _starts_with(path, OGG_CAPTURE) else None
        if cut is None:
            raise
        return None, cut
    with f:
        result = AudioInfo(str(path), int(f.samplerate), int(f.frames), int(f.channels))
        if result.samplerate <= 0 or result.channels <= 0:
            raise AudioLoadError(path, f"invalid header (rate {result.samplerate}, "
                                       f"{result.channels} channels)")
        return result, truncation(path, f)


#: the advice that ends every "file is truncated" error
TRUNCATED_FIX = "download, copy or export the file again"


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average channels: ``(n, channels) -> (n,)`` float32."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    # a strided numpy mean over axis 1 is 10-30x slower than this matrix-vector product
    # (for two channels both compute (a + b) / 2 with one rounding: identical results)
    data = data.astype(np.float32, copy=False)
    return data @ np.full(data.shape[1], 1.0 / data.shape[1], dtype=np.float32)


def resample(y: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono signal with soxr (HQ), ``(n,) -> (round(n * sr_out / sr_in),)``."""
    if sr_in == sr_out:
        return y
    return soxr.resample(y, sr_in, sr_out, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def read_frames(path: str | os.PathLike, start: int, n: int) -> np.ndarray:
    """Decode ``n`` frames from frame ``start`` (native rate), down-mixed to mono.

    Returns an array of shape ``(m,)`` float32 with ``m <= n`` (fewer at the end of the file).

    Raises
    ------
    AudioLoadError
        On decode errors, truncated data in the middle of a file, and NaN/inf samples.
    """
    path = Path(path)
    with decoder_notes(path), _open(path) as f:
        try:
            if start > 0:
                f.seek(start)
            data = f.read(n, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioLoadError(path, f"decoding failed reading frames {start} to {start + n} of the file "
                                  f"(truncated or damaged?): {exc}") from None
    y = to_mono(data)
    if not np.all(np.isfinite(y)):  # before choosing a channel: NaN in any channel is refused
        raise AudioLoadError(path, "audio contains NaN or infinite samples")
    if data.shape[1] > 1:
        y = _unless_cancelled(path, data, y)
    peak = _peak(y)
    if peak > MAX_PEAK:  # only float files can: integer samples end at full scale
        raise AudioLoadError(path, f"samples reach {peak:.4g} times full scale ({20 * np.log10(peak):+.0f} dBFS): "
                                   "floating-point audio written without scaling? Rescale it to [-1, 1]")
    return y


def _unless_cancelled(path: Path, data: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The down-mix ``y`` (n,) of ``data`` (n, channels), or the first channel when the channels
    cancel in the mix (a channel in opposite polarity: the mix would be near silence while the
    channels hold sound), with a warning (once per file and process). The levels are judged on
    every 8th sample (the same answer, an eighth of the work)."""
    def rms(x: np.ndarray) -> float:
        x = np.ascontiguousarray(x[::8], dtype=np.float32)
        return float(np.sqrt(np.dot(x, x) / max(len(x), 1)))

    first = data[:, 0]
    level = rms(first)
    if level <= 10 ** (AUDIBLE_DBFS / 20) or rms(y) >= CANCELLED_MIX * level:
        return y
    _warn_cancelled(str(path))
    return np.ascontiguousarray(first, dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _warn_cancelled(path: str) -> None:
    """The warning of :func:`_unless_cancelled`, once per file (the last 64 files remembered)."""
    log.warning("%r: the channels cancel when mixed to mono (one is in opposite polarity?): "
                "analysing the first channel", path)


def mid30_window(duration: float, seconds: float = SEGMENT_SECONDS) -> tuple[float, float]:
    """The Mid-30 window: ``seconds`` centred on the middle of a song of ``duration`` s.

    Songs shorter than the window start at 0 (they are zero-padded at the end).
    """
    start = max(0.0, (duration - seconds) / 2.0)
    return start, start + seconds


def load_window(
    path: str | os.PathLike,
    start: float,
    seconds: float = SEGMENT_SECONDS,
    sr: int = SAMPLE_RATE,
    meta: AudioInfo | None = None,
    allow_silent: bool = False,
) -> Segment:
    """Decode ``seconds`` of audio from ``start`` (s), mono at ``sr``; zero-pad short songs.

    Only the frames of the window are decoded (soundfile seek), never the whole song. A
    silent segment is an AudioLoadError, or with ``allow_silent`` a Segment flagged ``silent``.

    Returns
    -------
    Segment
        ``audio`` has exactly ``int(sr * seconds)`` samples.
    """
    meta = meta or info(path)
    sr_in = meta.samplerate
    first = int(round(start * sr_in))
    want = int(round(seconds * sr_in))
    want = max(0, min(want, meta.frames - first))
    y = read_frames(path, first, want)
    if len(y) < want:
        # The header promised more frames than the file holds (truncated or corrupt file).
        if len(y) < 0.5 * want or meta.duration > seconds:
            raise AudioLoadError(
                path,
                f"file is truncated: header claims {meta.frames} frames, "
                f"only {first + len(y)} could be decoded",
            )
    return _finish(path, resample(y, sr_in, sr), sr, start, seconds, meta.duration, allow_silent)


def _peak(y: np.ndarray) -> float:
    """The largest absolute sample of ``y`` (n,), without a copy of it."""
    return max(float(np.max(y, initial=0.0)), -float(np.min(y, initial=0.0)))


def audible_seconds(y: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """How much of some audio holds sound.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio, linear full scale.
    sr : int
        Its sample rate (Hz).

    Returns
    -------
    float
        Seconds in the :data:`FRAME_SECONDS` frames whose RMS, each frame's own mean (a DC
        level) removed, is above :data:`AUDIBLE_DBFS` (a last partial frame is not judged).
    """
    hop = max(1, int(round(sr * FRAME_SECONDS)))
    n = len(y) // hop
    least = hop * 10.0 ** (AUDIBLE_DBFS / 10.0)  # a frame's sum of squares at AUDIBLE_DBFS
    audible = 0
    for first in range(0, n, FRAMES_AT_ONCE):
        frames = y[first * hop: min(n, first + FRAMES_AT_ONCE) * hop].reshape(-1, hop).astype(np.float32)
        frames = frames - frames.mean(axis=1, keepdims=True)
        audible += int(np.count_nonzero(np.einsum("ij,ij->i", frames, frames) > least))
    return audible * hop / sr


def is_silent(y: np.ndarray, sr: int = SAMPLE_RATE, duration: float | None = None) -> bool:
    """Whether some audio holds nothing to analyse.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio (an analysed segment, or a whole song).
    sr : int
        Its sample rate (Hz).
    duration : float, optional
        The whole file's length (s), when ``y`` is a segment of it padded to its length.

    Returns
    -------
    bool
        True for digital silence (peak below :data:`SILENCE_PEAK`), for audio with less than
        :data:`MIN_AUDIBLE_SECONDS` of sound (:func:`audible_seconds`): a constant (DC) level,
        one click, a file of a fraction of a second padded to a segment, a segment that falls
        in a quiet stretch of a song; and for a file shorter than :data:`MIN_SONG_SECONDS`
        (``duration``).
    """
    if duration is not None and duration < MIN_SONG_SECONDS:
        return True
    if _peak(y) < SILENCE_PEAK:
        return True
    return audible_seconds(y, sr) < MIN_AUDIBLE_SECONDS


def silence_reason(y: np.ndarray, sr: int = SAMPLE_RATE, duration: float | None = None) -> str:
    """Why :func:`is_silent` judged mono audio ``y`` (n,) at ``sr`` Hz (of a file of ``duration``
    s) silent, in words for a message: the file too short, ``"digital silence"``, or how much
    sound it found against how much is needed."""
    if duration is not None and duration < MIN_SONG_SECONDS:
        return f"the file is {duration:.2f} s long, at least {MIN_SONG_SECONDS:g} s needed"
    if _peak(y) < SILENCE_PEAK:
        return "digital silence"
    return (f"{audible_seconds(y, sr):.2f} s above {AUDIBLE_DBFS:.0f} dBFS, at least {MIN_AUDIBLE_SECONDS:g} s "
            "needed: a constant level, a click, a file too short, or a quiet stretch of the song?")


def silent_message(y: np.ndarray, sr: int = SAMPLE_RATE, duration: float | None = None, where: str = "") -> str:
    """The words of an error or warning about audio that :func:`is_silent` judged to hold
    nothing to score: ``"too short (...)"`` for a file under :data:`MIN_SONG_SECONDS`, else
    ``"silent{where} (...)"`` (``where`` e.g. ``" in the analysed segment"``), the reason from
    :func:`silence_reason`."""
    if duration is not None and duration < MIN_SONG_SECONDS:
        return f"too short ({silence_reason(y, sr, duration)})"
    return f"silent{where} ({silence_reason(y, sr, duration)})"


def _finish(path, y: np.ndarray, sr: int, start: float, seconds: float, duration: float,
            allow_silent: bool = False) -> Segment:
    """Pad or trim to exactly ``seconds``, refuse (or flag) silence, wrap as a Segment."""
    n_out = int(round(seconds * sr))
    padded = len(y) < n_out
    if padded:
        y = np.pad(y, (0, n_out - len(y)))
    elif len(y) > n_out:
        y = y[:n_out]
    silent = is_silent(y, sr, duration)
    if silent and not allow_silent:
        raise AudioLoadError(path, "audio is " + silent_message(y, sr, duration, " in the analysed segment"))
    return Segment(np.ascontiguousarray(y, dtype=np.float32), sr, start, start + seconds, duration,
                   padded, silent)


def crop(path, y: np.ndarray, sr: int, start: float, duration: float,
         seconds: float = SEGMENT_SECONDS, allow_silent: bool = False) -> Segment:
    """Cut ``seconds`` from ``start`` out of an already decoded song ``y`` (n,) at ``sr``."""
    first = int(round(start * sr))
    return _finish(path, y[first: first + int(round(seconds * sr))], sr, start, seconds, duration,
                   allow_silent)


def load_mid30(path: str | os.PathLike, sr: int = SAMPLE_RATE, allow_silent: bool = False) -> Segment:
    """Decode the Mid-30 segment of a song (30 s centred on its middle), mono at ``sr``."""
    meta = info(path)
    start, _ = mid30_window(meta.duration)
    return load_window(path, start, SEGMENT_SECONDS, sr, meta, allow_silent)


def load(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """Decode a whole file, mono at ``sr``. Returns ``(audio (n,) float32, duration s)``."""
    meta = info(path)
    y = read_frames(path, 0, meta.frames)
    if len(y) < 0.5 * meta.frames:
        raise AudioLoadError(
            path, f"file is truncated: header claims {meta.frames} frames, only {len(y)} decoded"
        )
    return resample(y, meta.samplerate, sr), len(y) / meta.samplerate


def read_tags(path: str | os.PathLike) -> dict:
    """The text tags libsndfile reads from a file's container (ID3 for MP3, Vorbis comments
    for FLAC / OGG, LIST-INFO for WAV): ``{'artist': ..., 'title': ..., ...}``, only the
    non-empty ones; ``{}`` when the file has none or cannot be opened."""
    try:
        with decoder_notes(path), sf.SoundFile(str(path)) as f:
            tags = f.copy_metadata()
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        return {}
    return {k: v.strip() for k, v in tags.items() if isinstance(v, str) and v.strip()}


def file_tags(paths) -> tuple[list[str], list[str]]:
    """``(artists, titles)`` of audio files from their own tags ('' where absent)."""
    tags = [read_tags(p) for p in paths]
    return [t.get("artist", "") for t in tags], [t.get("title", "") for t in tags]
