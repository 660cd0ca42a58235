"""Descriptor extractors by name: ``describe(y, sr, extractor="hybrid")``.

Two extractors compute the Spotify-style descriptors of :data:`hitrank.descriptors.table.
DESCRIPTORS` from a mono signal; both return every key of :func:`describe_audio` (same names,
same Spotify-like ranges). Spotify never published how its descriptors are computed; these are
documented, transparent approximations on the same scales as the Spotify columns, so the same
configs run on both. They are *not* Spotify's values: a model trained on a Spotify table should
be retrained on these. ``hybrid`` is the default (:data:`DEFAULT_EXTRACTOR`, of ``hitrank
descriptors`` and of descriptor configs' ``data.extractor``).

``"librosa"``
    :func:`describe_audio` (hand-written librosa proxies, table below), at 22 050 Hz. Needs
    nothing beyond hitrank's own dependencies.
``"hybrid"``
    Each descriptor from the tool that agreed best with the Echo Nest values of real music in
    ``scripts/eval_descriptors_audio.py`` (choosing between principled definitions; no
    coefficient was fitted to the reference values). Needs Essentia
    (``pip install 'hitrank[descriptors]'``) and the musicnn MTT tag activations
    (:func:`hitrank.tags.segment_tags`, computed here when not passed in).

Definitions of the ``"librosa"`` extractor (:func:`describe_audio`: the whole song, mono,
22 050 Hz; STFT 2048 / hop 512):

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
``flatness_mean``, ``zcr_mean``, ``onset_rate``, ``rms_db_std``, ``mfcc1..mfcc13`` (means).

Definitions of the ``"hybrid"`` extractor (Essentia 2.1b6 classic algorithms run at 44.1 kHz,
librosa parts at 22 050 Hz, tags are the 50 musicnn MTT sigmoid activations):

=================  =====================================================================
descriptor         computed as
=================  =====================================================================
tempo              ``RhythmExtractor2013(method="multifeature")`` BPM (median error 0.03 %
                   on synthetic songs, librosa's 0.9 %), moved to the metrical level of
                   ``librosa.beat.beat_track`` (log-normal tempo prior at 120 BPM) when the
                   two agree up to a power of two within 4 %; librosa's BPM when Essentia
                   finds no pulse
danceability       beat clarity: ``RhythmExtractor2013`` multifeature confidence (agreement
                   of five beat trackers) / 5.32, its documented maximum
loudness           EBU R128 integrated loudness (``LoudnessEBUR128``, LUFS) of the mono
                   signal played on both channels, clipped to [-80, 0]
energy             ``0.5 * clip((loudness + 40) / 35) + 0.5 * I``: perceived loudness (the
                   librosa extractor's dB scale) and timbral intensity
                   ``I = h / (h + q)``, ``h`` = mean tag of (loud, fast, rock, metal),
                   ``q`` = mean tag of (quiet, soft, slow, ambient)
key, mode          ``KeyExtractor(profileType="krumhansl")`` (HPCP, Krumhansl-Kessler
                   profiles; key 0 = C; mode 1 = major)
acousticness       tonal vs noise-like spectrum: ``1 - clip(5 * mean spectral flatness)``,
                   flatness as in the librosa extractor (STFT 2048 / hop 512 at 22 050 Hz)
                   but averaged over sounding frames only (RMS >= -80 dBFS: digital
                   silence would count as perfectly flat)
instrumentalness   ``1 - v / (v + n)``, ``v`` = mean tag of the 15 voice tags (vocal,
                   vocals, voice, singing, male, female, man, woman, male vocal, female
                   vocal, male voice, female voice, choir, choral, opera), ``n`` = mean tag
                   of (no vocals, no vocal, no voice)
speechiness        pauses between words: share of 20 ms frames below half the mean RMS of
                   their 1 s window (Scheirer & Slaney 1997), averaged over non-silent
                   windows, divided by 0.5 and clipped (speech ~0.4, music < 0.3)
liveness           steadiness of loudness: ``clip(1 - DynamicComplexity / 20 dB)`` (audience
                   noise and room sound fill the pauses); on the development sample this
                   mostly follows loud, dense recordings, not audiences
valence            the librosa extractor's (``0.5 * mode + 0.5 * clip((tempo - 60) / 120)``
                   with librosa's own mode and tempo; with the mode and tempo above it
                   measured worse)
time_signature     as in the librosa extractor (onset autocorrelation at 3 vs 4 beats)
duration_ms        decoded length
=================  =====================================================================

Further ``"hybrid"`` columns: the librosa extractor's extra columns
(``spectral_centroid_mean`` ... ``mfcc13``) and the components above: ``lufs``,
``loudness_range`` (EBU R128 LRA, LU), ``rhythm_confidence`` (0-5.32), ``dfa_danceability``
(Essentia ``Danceability``, detrended fluctuation, about 0-3), ``dynamic_complexity`` (dB),
``key_strength``, ``flatness_sounding_mean``, ``low_energy_ratio``, ``tag_intensity_ratio``,
``tag_vocal_ratio`` and ``tempo_librosa`` (BPM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from .. import audio
from ..constants import N_TAGS, TAGS
from ..errors import HitrankError, ParameterError
from ..tags import check_tagger, segment_tags
from .extractor_names import (  # noqa: F401  (re-exported)
    DEFAULT_EXTRACTOR,
    EXTRACTOR_NAMES,
    LEGACY_EXTRACTOR,
)

log = logging.getLogger(__name__)

LIBROSA_SR = 22050  # Hz, rate of the librosa extractor
ESSENTIA_SR = 44100  # Hz, RhythmExtractor2013 and the Essentia defaults assume it
MIN_SECONDS = audio.MIN_SONG_SECONDS  # s, shortest signal described (as hitrank.descriptors.audio.describe_file)
ESSENTIA_REQUIREMENT = "essentia>=2.1b6.dev1389"
INSTALL_HINT = f"pip install 'hitrank[descriptors]'  (or: pip install '{ESSENTIA_REQUIREMENT}')"

# tempo
RHYTHM_MIN_BPM, RHYTHM_MAX_BPM = 40.0, 208.0  # BPM, RhythmExtractor2013's default search range
OCTAVE_TOLERANCE = 0.04  # relative; two BPMs agree "up to a power of two" within 4 %
MAX_TEMPO = 300.0  # BPM, upper end of DESCRIPTORS["tempo"]
# danceability
RHYTHM_CONFIDENCE_MAX = 5.32  # multifeature beat-tracker confidence, documented maximum
# loudness / energy
LOUDNESS_FLOOR, LOUDNESS_CEIL = -80.0, 0.0  # LUFS, clip range of ``loudness``
ENERGY_QUIET_DB, ENERGY_SPAN_DB = -40.0, 35.0  # dB, loudness scale of the librosa energy
ENERGY_LOUDNESS_WEIGHT = 0.5  # loudness and tag intensity weigh the same (not fitted)
# acousticness
FLATNESS_FULL = 5.0  # 1 / mean spectral flatness at which a spectrum counts as noise-like
N_FFT, HOP = 2048, 512  # samples at 22 050 Hz, the librosa extractor's STFT
POWER_FLOOR = 1e-10  # power floor inside the flatness logs (the librosa extractor's)
# speechiness
FRAME_SECONDS = 0.020  # s, RMS frame of the low-energy ratio
WINDOW_FRAMES = 50  # frames (1 s) per window whose mean RMS is the reference
LOW_ENERGY_FRACTION = 0.5  # a frame is "low energy" below this fraction of its window's mean
SPEECH_LOW_ENERGY_RATIO = 0.5  # low-energy ratio taken as all speech (speech ~0.4)
SILENT_RMS = 1e-4  # linear full-scale (-80 dBFS); windows quieter than this are skipped
# liveness
DYNAMIC_COMPLEXITY_SPAN_DB = 20.0  # dB, the librosa liveness scale, inverted

#: MTT tags (hitrank.tags.TAGS names) whose means define the tag-based descriptors.
VOICE_TAGS = ("vocal", "vocals", "voice", "singing", "male", "female", "man", "woman",
              "male vocal", "female vocal", "male voice", "female voice", "choir", "choral",
              "opera")
NO_VOICE_TAGS = ("no vocals", "no vocal", "no voice")
INTENSE_TAGS = ("loud", "fast", "rock", "metal")
CALM_TAGS = ("quiet", "soft", "slow", "ambient")
#: Krumhansl-Kessler key profiles (C major, C minor) of the librosa extractor's key estimate
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PITCHES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
            "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}


def _clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return float(min(hi, max(lo, x)))


# ----------------------------------------------------------------------------- librosa


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


def describe_audio(y: np.ndarray, sr: int = LIBROSA_SR) -> dict:
    """The librosa extractor's descriptors (str -> float, see the module table) of a mono
    signal ``y`` (n,) at ``sr`` Hz (22 050 Hz: the rate its constants assume)."""
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
    flatness = np.exp(np.mean(np.log(S + POWER_FLOOR), axis=0)) / (np.mean(S, axis=0) + POWER_FLOOR)
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


def librosa_extractor(y: np.ndarray, sr: int, tags: np.ndarray | None = None) -> dict:
    """The hand-written librosa descriptors (:func:`describe_audio`, str -> float) of mono
    float32 ``y`` (n,) at ``sr`` Hz, resampled to 22 050 Hz first; ``tags`` is ignored (this
    extractor uses none)."""
    return describe_audio(audio.resample(y, sr, LIBROSA_SR), LIBROSA_SR)


# ----------------------------------------------------------------------------- hybrid


def _essentia():
    """``essentia.standard``, quiet, or a one-line HitrankError saying how to install it."""
    try:
        import essentia
    except ImportError:
        raise HitrankError(f"the 'hybrid' descriptor extractor needs Essentia, which is not "
                           f"installed; run: {INSTALL_HINT}; or use --extractor librosa") from None
    essentia.log.infoActive = False  # before .standard: it logs a line about SVM models
    import essentia.standard as es

    return es


def _tag_mean(tags: np.ndarray, names: tuple) -> float:
    return float(np.mean([tags[TAGS.index(n)] for n in names]))


def _ratio(a: float, b: float) -> float:
    """``a / (a + b)`` for non-negative means, 0.5 when both are 0."""
    return a / (a + b) if a + b > 0 else 0.5


def low_energy_ratio(y: np.ndarray, sr: int) -> float:
    """Share of 20 ms frames below half the mean RMS of their 1 s window.

    Speech pauses between syllables and words, so about 40 % of its frames are "low energy";
    most music is near 0-20 %. Windows quieter than -80 dBFS are left out.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal at ``sr``.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    float
        In [0, 1]; 0 when no window is loud enough.
    """
    frame = max(1, int(round(FRAME_SECONDS * sr)))
    n_frames = len(y) // frame
    rms = np.sqrt(np.mean(np.square(y[: n_frames * frame].astype(np.float64)).reshape(n_frames, frame),
                          axis=1))
    n_win = n_frames // WINDOW_FRAMES
    if n_win == 0:
        return 0.0
    win = rms[: n_win * WINDOW_FRAMES].reshape(n_win, WINDOW_FRAMES)
    mean = win.mean(axis=1, keepdims=True)
    keep = mean[:, 0] >= SILENT_RMS
    if not keep.any():
        return 0.0
    return float(np.mean(win[keep] < LOW_ENERGY_FRACTION * mean[keep]))


def sounding_flatness(y: np.ndarray, sr: int) -> float:
    """Mean spectral flatness (geometric / arithmetic mean of the power spectrum) over the
    frames whose RMS is at least -80 dBFS, of mono ``y`` (n,) at ``sr`` Hz: a float in [0, 1]
    (0 = pure tones, 1 = white noise); 0 when every frame is silent."""
    import librosa

    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2  # (1 + N_FFT/2, T)
    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)[0]  # (T,)
    sounding = rms[: power.shape[1]] >= SILENT_RMS
    if not sounding.any():
        return 0.0
    power = power[:, sounding]
    flat = np.exp(np.mean(np.log(power + POWER_FLOOR), axis=0)) / (np.mean(power, axis=0) + POWER_FLOOR)
    return float(np.mean(flat))


def _octave_align(bpm: float, reference: float) -> float:
    """``bpm * 2**k`` closest to ``reference`` when they agree within 4 %, else ``bpm``."""
    if bpm <= 0 or reference <= 0:
        return bpm
    k = round(float(np.log2(reference / bpm)))
    moved = bpm * 2.0**k
    return moved if abs(reference / moved - 1.0) <= OCTAVE_TOLERANCE else bpm


def check_tags(tags) -> np.ndarray:
    """A (50,) finite tag vector in [0, 1], or ParameterError naming what is wrong."""
    tags = np.asarray(tags, dtype=np.float64)
    if tags.shape != (N_TAGS,):
        raise ParameterError(f"tags has shape {tags.shape}; expected ({N_TAGS},) in "
                             "hitrank.tags.TAGS order (hitrank.tags.segment_tags)")
    if not np.all(np.isfinite(tags)) or tags.min() < 0 or tags.max() > 1:
        raise ParameterError("tags must be finite probabilities in [0, 1] "
                             f"(got min {tags.min():g}, max {tags.max():g})")
    return tags


def hybrid_extractor(y: np.ndarray, sr: int, tags: np.ndarray | None = None) -> dict:
    """Descriptors from Essentia, musicnn tags and librosa (see the module table).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono float32 signal at ``sr``.
    sr : int
        Sample rate in Hz (resampled to 44.1 kHz for Essentia, 22 050 Hz for librosa).
    tags : np.ndarray, shape (50,), optional
        MTT tag activations in ``hitrank.tags.TAGS`` order; computed from ``y`` with
        :func:`hitrank.tags.segment_tags` when None (needs musicnn).

    Returns
    -------
    dict
        Every key of ``describe_audio`` plus the component columns of the module docstring.

    Raises
    ------
    HitrankError
        When Essentia (or, with ``tags=None``, musicnn) is not installed.
    """
    es = _essentia()
    if tags is None:
        tags = segment_tags(y, sr)
    tags = check_tags(tags)
    out = librosa_extractor(y, sr)
    y44 = np.ascontiguousarray(audio.resample(y, sr, ESSENTIA_SR), dtype=np.float32)

    bpm, _ticks, confidence, _estimates, _intervals = es.RhythmExtractor2013(method="multifeature")(y44)
    tempo_librosa = out["tempo"]
    if np.isfinite(bpm) and RHYTHM_MIN_BPM <= bpm <= RHYTHM_MAX_BPM:
        tempo = _octave_align(float(bpm), tempo_librosa)
    else:  # no pulse (silence, noise): Essentia returns out-of-range BPMs
        tempo, confidence = tempo_librosa, 0.0
    tempo = _clip(tempo, 0.0, MAX_TEMPO)

    _momentary, _short, lufs, lra = es.LoudnessEBUR128(sampleRate=ESSENTIA_SR)(
        np.stack([y44, y44], axis=1))
    loudness = _clip(float(lufs), LOUDNESS_FLOOR, LOUDNESS_CEIL)
    key_name, scale, key_strength = es.KeyExtractor(profileType="krumhansl", sampleRate=ESSENTIA_SR)(y44)
    key, mode = _PITCHES[key_name], 1 if scale == "major" else 0
    dfa, _ = es.Danceability(sampleRate=ESSENTIA_SR)(y44)
    dyn_complexity, _ = es.DynamicComplexity(sampleRate=ESSENTIA_SR)(y44)

    intensity = _ratio(_tag_mean(tags, INTENSE_TAGS), _tag_mean(tags, CALM_TAGS))
    vocal = _ratio(_tag_mean(tags, VOICE_TAGS), _tag_mean(tags, NO_VOICE_TAGS))
    y22 = audio.resample(y, sr, LIBROSA_SR)
    low = low_energy_ratio(y22, LIBROSA_SR)
    flatness = sounding_flatness(y22, LIBROSA_SR)
    loud01 = _clip((loudness - ENERGY_QUIET_DB) / ENERGY_SPAN_DB)
    out.update({
        "tempo": tempo,
        "danceability": _clip(float(confidence) / RHYTHM_CONFIDENCE_MAX),
        "loudness": loudness,
        "energy": _clip(ENERGY_LOUDNESS_WEIGHT * loud01 + (1 - ENERGY_LOUDNESS_WEIGHT) * intensity),
        "key": float(key), "mode": float(mode),
        "acousticness": _clip(1.0 - FLATNESS_FULL * flatness),
        "instrumentalness": _clip(1.0 - vocal),
        "speechiness": _clip(low / SPEECH_LOW_ENERGY_RATIO),
        "liveness": _clip(1.0 - float(dyn_complexity) / DYNAMIC_COMPLEXITY_SPAN_DB),
        "lufs": float(lufs), "loudness_range": float(lra),
        "rhythm_confidence": float(confidence), "dfa_danceability": float(dfa),
        "dynamic_complexity": float(dyn_complexity), "key_strength": float(key_strength),
        "flatness_sounding_mean": flatness,
        "low_energy_ratio": low, "tag_intensity_ratio": intensity, "tag_vocal_ratio": vocal,
        "tempo_librosa": float(tempo_librosa),
    })
    return out


# ----------------------------------------------------------------------------- registry

#: name -> (function, needs tags). Functions take ``(y (n,) float32, sr Hz, tags (50,) | None)``.
EXTRACTORS: dict[str, tuple[Callable[..., dict], bool]] = {
    "librosa": (librosa_extractor, False),
    "hybrid": (hybrid_extractor, True),
}
if tuple(EXTRACTORS) != EXTRACTOR_NAMES:  # the names configs are checked against
    raise ImportError(f"EXTRACTORS {list(EXTRACTORS)} and extractor_names.EXTRACTOR_NAMES "
                      f"{list(EXTRACTOR_NAMES)} must name the same extractors in the same order")


def _lookup(extractor: str) -> tuple[Callable[..., dict], bool]:
    try:
        return EXTRACTORS[extractor]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown descriptor extractor {extractor!r}; "
                             f"choose one of {', '.join(EXTRACTORS)}") from None


def check_available(extractor: str) -> None:
    """Raise (one line naming the install step) when ``extractor`` cannot run here."""
    _lookup(extractor)
    if extractor == "hybrid":
        _essentia()
        check_tagger("musicnn")


def needs_tags(extractor: str) -> bool:
    """Whether ``extractor`` uses the 50 MTT tag activations (then pass ``tags`` to
    :func:`describe`, or let it compute them from the signal)."""
    return _lookup(extractor)[1]


def describe(y: np.ndarray, sr: int, extractor: str = DEFAULT_EXTRACTOR,
             tags: np.ndarray | None = None) -> dict:
    """Spotify-style descriptors of a mono signal with the named extractor.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal at ``sr``, at least 1 s long, finite.
    sr : int
        Sample rate in Hz.
    extractor : str
        A name of :data:`EXTRACTORS` (``"librosa"`` or ``"hybrid"``).
    tags : np.ndarray, shape (50,), optional
        MTT tag activations of the same audio (``hitrank.tags.segment_tags``) for extractors
        that need them; computed from ``y`` when None. Ignored by the others.

    Returns
    -------
    dict
        str -> float; at least every descriptor of ``describe_audio``, in the ranges of
        :data:`hitrank.descriptors.table.DESCRIPTORS`.

    Raises
    ------
    ParameterError
        Unknown extractor, or a bad signal, rate or tag vector.
    HitrankError
        When the extractor's optional library is not installed.
    """
    fn, uses_tags = _lookup(extractor)
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr={sr!r}; expected a positive integer rate in Hz")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"y has shape {y.shape}; expected a mono signal of shape (n,) "
                             "(down-mix with hitrank.audio.to_mono)")
    if len(y) < MIN_SECONDS * sr:
        raise ParameterError(f"signal is {len(y) / sr:.3f} s long; need at least {MIN_SECONDS:g} s")
    if not np.all(np.isfinite(y)):
        raise ParameterError("signal contains NaN or infinite samples")
    y = y.astype(np.float32, copy=False)
    if uses_tags and tags is not None:
        tags = check_tags(tags)
    return fn(y, int(sr), tags if uses_tags else None)
