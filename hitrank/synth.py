"""Synthetic pop corpus: real, listenable songs whose hit score is driven by their chorus.

The generative model (documented in docs/data.md, section "The synthetic corpus"):

* **Form.** intro, then ``n_chorus`` (2-4) choruses separated by verses (optionally a
  pre-chorus, and a bridge before the last chorus), then an outro. Section lengths are in
  bars and depend on the song, so chorus times differ from song to song and the middle 30 s
  holds a chorus for only part of the songs. Duration 90-300 s.
* **Layers.** drums (kick/snare/hat synthesised per artist style), bass (root notes), chord
  pad, a verse melody, and the *hook*: a lead motif that plays only in the chorus.
* **Hit score.** ``appeal = 1.0 z(hook salience) + 0.8 z(hook brightness) + 0.6 z(tempo fit)
  + 0.5 z(catchiness) + artist effect + noise``; ``hit_score = 1e-5 * exp(2.3 * appeal / sd)``,
  log-normal like a daily play-count share (about 87% of songs below the mean). Salience,
  brightness and catchiness are audible only in the chorus; the tempo everywhere. Every song
  is normalised to a random loudness drawn independently of its score, so loudness does not
  give hits away.

Every song is generated from ``numpy.random.default_rng([seed, index])`` and the artist
roster from ``default_rng([seed, n_songs])``: the same seed gives the same files.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import lfilter

from .engines import get_engine
from .errors import ParameterError
from .fileio import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"),
           "ogg": ("OGG", "VORBIS")}
MIN_SECONDS, MAX_SECONDS = 90.0, 300.0  # s, song length range
TEMPO_RANGE = (70.0, 160.0)  # bpm
TEMPO_SWEET, TEMPO_WIDTH = 122.0, 12.0  # bpm, centre and width of the "tempo band" hits favour
SALIENCE_RANGE = (-10.0, 2.0)  # dB, hook level relative to the accompaniment
LOUDNESS_RANGE = (-22.0, -13.0)  # dBFS RMS, song loudness (independent of the score)
SCORE_SIGMA = 2.3  # log-normal sigma of the hit score: ~87% of songs below the mean
SCORE_SCALE = 1e-5  # median hit score (a daily play-count share)
NOISE_SD = 0.4  # noise sd relative to the sd of the audible+artist signal
WEIGHTS = {"salience": 1.0, "brightness": 0.8, "tempo": 0.6, "catchiness": 0.5}
ARTIST_SD = 0.5  # sd of the per-artist effect (in units of a standardised factor)
WAVETABLE = 2048  # samples per cycle of the oscillator tables
OGG_BLOCK = 65536  # frames per write call (long Vorbis writes can crash libsndfile)

# Pre-computed moments of the tempo-fit factor under the uniform tempo prior.
_T = np.linspace(*TEMPO_RANGE, 100001)
_FIT = np.exp(-0.5 * ((_T - TEMPO_SWEET) / TEMPO_WIDTH) ** 2)
TEMPO_FIT_MEAN, TEMPO_FIT_SD = float(_FIT.mean()), float(_FIT.std())
_SIGNAL_SD = math.sqrt(sum(w * w for w in WEIGHTS.values()) + ARTIST_SD**2)
_TOTAL_SD = _SIGNAL_SD * math.sqrt(1 + NOISE_SD**2)

PROGRESSIONS = [(0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 4, 3), (3, 4, 0, 5), (0, 4, 3, 4)]
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])


def _uniform_z(x: float, lo: float, hi: float) -> float:
    """Standardise a U(lo, hi) variable to zero mean and unit variance."""
    return (x - (lo + hi) / 2) / ((hi - lo) / math.sqrt(12))


@dataclass
class Song:
    """Latent variables of one song (``truth.csv`` row) and its layout."""

    song_id: str
    artist: str
    tempo: float  # bpm
    key: int  # 0 = C ... 11 = B
    mode: str  # major | minor
    hook_salience: float  # dB
    hook_brightness: float  # 0..1
    catchiness: float  # 0..1
    tempo_fit: float  # 0..1
    artist_effect: float
    noise: float
    loudness: float  # dBFS RMS
    sections: list = field(default_factory=list)  # [(name, start_s, end_s)]
    duration: float = 0.0
    appeal: float = 0.0
    oracle: float = 0.0  # appeal without noise
    hit_score: float = 0.0

    @property
    def chorus_times(self) -> list:
        return [[round(s, 4), round(e, 4)] for n, s, e in self.sections if n == "chorus"]


@dataclass(frozen=True)
class ArtistStyle:
    """Timbre palette shared by an artist's songs."""

    kick_hz: float
    snare_tone: float
    hat_bright: float
    pad_rolloff: float
    bass_rolloff: float
    mix: tuple  # gains of drums, bass, pad, verse lead (linear)
    effect: float


def artist_roster(n_songs: int, seed: int) -> tuple[list[int], list[ArtistStyle]]:
    """Assign songs to artists: about 40% of songs by artists with several songs."""
    rng = np.random.default_rng([seed, n_songs, 7])
    assignment, styles = [], []
    i = 0
    while i < n_songs:
        k = 1 if rng.random() < 0.6 else int(rng.integers(2, 7))
        k = min(k, n_songs - i)
        styles.append(ArtistStyle(
            kick_hz=float(rng.uniform(45, 75)), snare_tone=float(rng.uniform(150, 260)),
            hat_bright=float(rng.uniform(0.3, 0.95)), pad_rolloff=float(rng.uniform(1.2, 2.6)),
            bass_rolloff=float(rng.uniform(1.0, 2.5)),
            mix=tuple(float(g) for g in 10 ** (rng.uniform(-4, 2, 4) / 20)),
            effect=float(rng.normal(0, ARTIST_SD)),
        ))
        assignment += [len(styles) - 1] * k
        i += k
    order = rng.permutation(n_songs)  # spread an artist's songs over the corpus
    return [assignment[j] for j in order], styles


def _layout(rng, tempo: float, n_chorus: int) -> list:
    """Sections as (name, n_bars); verse lengths are tuned to land in 90-300 s."""
    bar = 240.0 / tempo
    target = rng.uniform(120, 270)
    verse_bars = int(rng.choice([8, 12, 16]))
    chorus_bars = int(rng.choice([8, 8, 16]))
    pre = rng.random() < 0.4
    bridge = rng.random() < 0.6
    intro, outro = int(rng.choice([2, 4, 8])), int(rng.choice([2, 4, 8]))

    def build(vb):
        secs = [("intro", intro)]
        for k in range(n_chorus):
            if k == 0 or not (bridge and k == n_chorus - 1):
                secs.append(("verse", vb if k < 2 else max(8, vb // 2)))
                if pre:
                    secs.append(("prechorus", 4))
            else:
                secs.append(("bridge", 8))
            secs.append(("chorus", chorus_bars))
        secs.append(("outro", outro))
        return secs

    secs = build(verse_bars)
    total = sum(b for _, b in secs) * bar
    while total < target and verse_bars < 32:
        verse_bars += 4
        secs = build(verse_bars)
        total = sum(b for _, b in secs) * bar
    while total > MAX_SECONDS:  # slow songs: shorten verses, then choruses, then drop one
        if verse_bars > 4:
            verse_bars -= 4
        elif chorus_bars > 8:
            chorus_bars = 8
        elif n_chorus > 2:
            n_chorus -= 1
        else:
            intro, outro = 2, 2
            secs = build(verse_bars)
            break
        secs = build(verse_bars)
        total = sum(b for _, b in secs) * bar
    while total < MIN_SECONDS:  # fast songs: add an instrumental verse before the outro
        secs.insert(-1, ("verse", 8))
        total = sum(b for _, b in secs) * bar
    return secs


def song_id(index: int) -> str:
    """The id (and file name stem) of song ``index``."""
    return f"song_{index:05d}"


def draw_song(index: int, seed: int, artist_id: int, style: ArtistStyle) -> Song:
    """Draw the latent variables and the form of song ``index``."""
    rng = np.random.default_rng([seed, index])
    tempo = float(rng.uniform(*TEMPO_RANGE))
    s = Song(
        song_id=song_id(index), artist=f"artist_{artist_id:04d}", tempo=round(tempo, 3),
        key=int(rng.integers(12)), mode=str(rng.choice(["major", "minor"])),
        hook_salience=float(rng.uniform(*SALIENCE_RANGE)), hook_brightness=float(rng.uniform()),
        catchiness=float(rng.uniform()),
        tempo_fit=float(np.exp(-0.5 * ((tempo - TEMPO_SWEET) / TEMPO_WIDTH) ** 2)),
        artist_effect=style.effect, noise=float(rng.normal(0, NOISE_SD * _SIGNAL_SD)),
        loudness=float(rng.uniform(*LOUDNESS_RANGE)),
    )
    bar = 240.0 / tempo
    t = 0.0
    for name, bars in _layout(rng, tempo, int(rng.integers(2, 5))):
        s.sections.append((name, t, t + bars * bar))
        t += bars * bar
    s.duration = t
    s.oracle = (
        WEIGHTS["salience"] * _uniform_z(s.hook_salience, *SALIENCE_RANGE)
        + WEIGHTS["brightness"] * _uniform_z(s.hook_brightness, 0, 1)
        + WEIGHTS["tempo"] * (s.tempo_fit - TEMPO_FIT_MEAN) / TEMPO_FIT_SD
        + WEIGHTS["catchiness"] * _uniform_z(s.catchiness, 0, 1)
        + s.artist_effect
    )
    s.appeal = s.oracle + s.noise
    s.hit_score = float(SCORE_SCALE * np.exp(SCORE_SIGMA * s.appeal / _TOTAL_SD))
    return s


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=256)
def _wavetable(rolloff: float, n_harm: int) -> np.ndarray:
    """One cycle with harmonic amplitudes k**-rolloff, peak-normalised. (WAVETABLE,)"""
    ph = np.arange(WAVETABLE) * (2 * np.pi / WAVETABLE)
    k = np.arange(1, max(1, n_harm) + 1)
    table = (np.sin(np.outer(k, ph)) * (k ** -rolloff)[:, None]).sum(0)
    return (table / np.abs(table).max()).astype(np.float32)


def _tone(freq: float, n: int, sr: int, rolloff: float, attack: float, decay: float) -> np.ndarray:
    """A note of ``n`` samples from a harmonic wavetable with an attack/decay envelope."""
    n_harm = int(min(24, (sr / 2) // freq))
    table = _wavetable(rolloff, n_harm)
    idx = (np.arange(n, dtype=np.float64) * (freq * WAVETABLE / sr)).astype(np.int64) % WAVETABLE
    t = np.arange(n, dtype=np.float32) / sr
    env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
    env[-min(n, int(0.01 * sr)):] *= np.linspace(1, 0, min(n, int(0.01 * sr)), dtype=np.float32)
    return table[idx] * env


def _drums(rng, sr: int, style: ArtistStyle) -> dict:
    n = int(0.35 * sr)
    t = np.arange(n, dtype=np.float32) / sr
    f = style.kick_hz + 90 * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)
    noise = rng.standard_normal(n).astype(np.float32)
    snare_noise = lfilter([1, -1], [1, -0.6], noise) * np.exp(-t / 0.07)
    snare = 0.6 * snare_noise + 0.5 * np.sin(2 * np.pi * style.snare_tone * t) * np.exp(-t / 0.05)
    a = 0.3 + 0.65 * style.hat_bright  # brighter hats: less low-pass smoothing of the noise
    hat = lfilter([1, -1], [1], lfilter([a], [1, -(1 - a)], noise))[: n // 3] * np.exp(-t[: n // 3] / 0.02)
    return {k: (v / np.abs(v).max()).astype(np.float32) for k, v in
            {"kick": kick, "snare": snare, "hat": hat}.items()}


def _add(buf: np.ndarray, at: int, wave: np.ndarray, gain: float) -> None:
    end = min(len(buf), at + len(wave))
    if end > at:
        buf[at:end] += gain * wave[: end - at]


def _midi_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def _rms(x: np.ndarray, stride: int = 5) -> float:
    """RMS estimated on every ``stride``-th sample (plenty for a gain, 5x cheaper)."""
    x = x[::stride]
    return math.sqrt(float(np.dot(x, x)) / max(1, len(x)) + 1e-12)


def render(song: Song, style: ArtistStyle, sr: int, stereo: bool, rng) -> np.ndarray:
    """Render a song with ``rng`` (a numpy Generator) for its notes and noises.

    Notes and drum hits are rendered once per distinct (pitch, length) and overlap-added.

    Returns (n_samples,) or (n_samples, 2) float32 in [-1, 1].
    """
    n_total = int(song.duration * sr) + sr  # one second of release tail
    beat = 60.0 / song.tempo
    step = beat / 4  # 16th note, s
    scale = MAJOR if song.mode == "major" else MINOR
    root = 48 + song.key
    drums = _drums(rng, sr, style)
    prog_v = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    prog_c = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    g_drums, g_bass, g_pad, g_verse = style.mix
    bar_len = 4 * beat
    cache: dict = {}
    # The hook gets its own buffer (its gain depends on the accompaniment in the choruses);
    # in stereo the pad and verse line are panned, so they get theirs too.
    bufs = {"bed": np.zeros(n_total, np.float32), "hook": np.zeros(n_total, np.float32)}
    if stereo:
        bufs["pad"] = np.zeros(n_total, np.float32)
        bufs["verse"] = np.zeros(n_total, np.float32)
    pad_buf, verse_buf = bufs.get("pad", bufs["bed"]), bufs.get("verse", bufs["bed"])

    def note(kind, midi, n, rolloff, attack, decay):
        key = (kind, midi, n)
        if key not in cache:
            cache[key] = _tone(_midi_hz(midi), n, sr, rolloff, attack, decay)
        return cache[key]

    def chord(degree):
        key = ("chord", degree)
        if key not in cache:
            n = int(bar_len * sr)
            ms = [root + 12 + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
            cache[key] = sum(_tone(_midi_hz(m), n, sr, style.pad_rolloff, 0.08, 1.5 * bar_len)
                             for m in ms) / 3
        return cache[key]

    # Hook motif (chorus): 2 bars of 8th notes; catchier hooks move by step and repeat exactly.
    motif_len = 16
    max_leap = 1 + int(round(4 * (1 - song.catchiness)))
    deg = [int(rng.integers(0, 5))]
    for _ in range(motif_len - 1):
        deg.append(int(np.clip(deg[-1] + rng.integers(-max_leap, max_leap + 1), -2, 9)))
    rests = rng.random(motif_len) < 0.25
    hook_roll = 2.6 - 2.1 * song.hook_brightness  # harmonic rolloff: brighter = flatter spectrum
    verse_roll = float(rng.uniform(1.6, 2.8))
    verse_n = int(4 * step * sr)
    # the verse line sits 6 dB (times the artist's mix gain) below the pad
    g_line = g_verse * 0.5 * g_pad * _rms(chord(prog_v[0])) / _rms(
        note("verse", root + 12, verse_n, verse_roll, 0.03, 0.6))
    for name, start, end in song.sections:
        n_bars = int(round((end - start) / bar_len))
        chorus = name == "chorus"
        prog = prog_c if chorus else prog_v
        for b in range(n_bars):
            t_bar = start + b * bar_len
            degree = prog[b % 4]
            if name != "intro" or b >= n_bars // 2:  # pad: one chord per bar
                _add(pad_buf, int(t_bar * sr), chord(degree), g_pad)
            if name not in ("intro", "outro"):  # bass: root on beats 1 and 3
                for half in (0, 2):
                    _add(bufs["bed"], int((t_bar + half * beat) * sr),
                         note("bass", root - 12 + scale[degree % 7], int(2 * beat * sr),
                              style.bass_rolloff, 0.01, beat), g_bass)
            if name in ("verse", "chorus", "prechorus", "bridge"):  # drums, fuller in the chorus
                for k in range(16):
                    at = int((t_bar + k * step) * sr)
                    if k in (0, 8) or (chorus and k == 10):
                        _add(bufs["bed"], at, drums["kick"], g_drums)
                    if k in (4, 12):
                        _add(bufs["bed"], at, drums["snare"], 0.8 * g_drums)
                    if (k % 2 == 0) or (chorus and k % 2 == 1):
                        _add(bufs["bed"], at, drums["hat"], (0.25 if k % 4 else 0.35) * g_drums)
            if chorus:  # the hook
                for k in range(8):
                    i = (b % 2) * 8 + k
                    if rests[i]:
                        continue
                    d = deg[i]
                    if rng.random() > 0.35 + 0.65 * song.catchiness:  # non-catchy hooks vary
                        d += int(rng.integers(-2, 3))
                    m = root + 12 + scale[d % 7] + 12 * (d // 7)
                    _add(bufs["hook"], int((t_bar + k * 2 * step) * sr),
                         note("hook", m, int(2 * step * sr), hook_roll, 0.01, 0.5), 1.0)
            elif name in ("verse", "bridge"):  # a neutral verse line, unrelated to the score
                for k in range(0, 8, 2):
                    if rng.random() < 0.3:
                        continue
                    m = root + 12 + scale[int(rng.integers(0, 7))]
                    _add(verse_buf, int((t_bar + k * 2 * step) * sr),
                         note("verse", m, verse_n, verse_roll, 0.03, 0.6), g_line)

    chorus_slices = [slice(int(s0 * sr), int(e0 * sr)) for n, s0, e0 in song.sections if n == "chorus"]

    def chorus_power(parts):
        return sum(_rms(sum(p[sl] for p in parts)) ** 2 for sl in chorus_slices)

    acc = [b for k, b in bufs.items() if k != "hook"]
    # hook salience = hook RMS relative to the accompaniment RMS within the choruses, in dB
    bufs["hook"] *= math.sqrt(chorus_power(acc) / max(chorus_power([bufs["hook"]]), 1e-12)) * (
        10 ** (song.hook_salience / 20))
    if stereo:
        pans = {"bed": 0.5, "pad": float(rng.uniform(0.2, 0.8)),
                "verse": float(rng.uniform(0.2, 0.8)), "hook": 0.5}
        mix = np.zeros((n_total, 2), np.float32)
        for k, buf in bufs.items():
            mix[:, 0] += buf * (math.sqrt(2) * math.cos(pans[k] * math.pi / 2))
            mix[:, 1] += buf * (math.sqrt(2) * math.sin(pans[k] * math.pi / 2))
    else:
        mix = bufs["bed"]
        mix += bufs["hook"]
    mix *= 10 ** (song.loudness / 20) / _rms(mix.reshape(-1))
    peak = max(float(mix.max()), -float(mix.min()))
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix


def write_audio(path: Path, audio: np.ndarray, sr: int, fmt: str) -> None:
    """Write audio atomically (temporary name, then rename)."""
    container, subtype = FORMATS[fmt]
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    if subtype == "PCM_16":  # numpy's float->int16 is ~5x faster than libsndfile's conversion
        audio = (audio * 32767.0).astype(np.int16)
    with atomic_path(path, ".part") as tmp, sf.SoundFile(
            str(tmp), "w", samplerate=sr, channels=channels, format=container, subtype=subtype) as f:
        block = OGG_BLOCK if fmt == "ogg" else len(audio)
        for i in range(0, len(audio), block):
            f.write(audio[i: i + block])


def _make_one(args) -> dict:
    index, seed, artist_id, style, out, sr, fmt, stereo = args
    song = draw_song(index, seed, artist_id, style)
    rel = f"audio/{song.song_id}.{fmt}"
    path = Path(out) / rel
    if not path.exists():
        write_audio(path, render(song, style, sr, stereo, np.random.default_rng([seed, index, 1])), sr, fmt)
    return {
        "song_id": song.song_id, "path": rel, "artist": song.artist, "hit_score": song.hit_score,
        "duration": round(song.duration, 4), "chorus_times": json.dumps(song.chorus_times),
        "sections": json.dumps([[n, round(s, 4), round(e, 4)] for n, s, e in song.sections]),
        "tempo": song.tempo, "key": song.key, "mode": song.mode,
        "hook_salience": song.hook_salience, "hook_brightness": song.hook_brightness,
        "catchiness": song.catchiness, "tempo_fit": song.tempo_fit,
        "artist_effect": song.artist_effect, "noise": song.noise, "loudness": song.loudness,
        "oracle": song.oracle, "appeal": song.appeal,
    }


def synthesize(
    out: str | os.PathLike,
    n_songs: int,
    seed: int = 0,
    fmt: str = "wav",
    sr: int = 44100,
    stereo: bool = False,
    workers: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Write a synthetic corpus: ``OUT/audio/*``, ``OUT/labels.csv`` and ``OUT/truth.csv``.

    Re-running with the same arguments skips songs whose file exists (resumable).

    Returns
    -------
    pandas.DataFrame
        The truth table, one row per song.
    """
    if fmt not in FORMATS:
        raise ParameterError(f"format={fmt!r}; expected one of {sorted(FORMATS)}")
    if n_songs < 1:
        raise ParameterError(f"songs={n_songs}; need at least 1")
    if sr < 8000:
        raise ParameterError(f"sr={sr}; need at least 8000 Hz")
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    assignment, styles = artist_roster(n_songs, seed)
    jobs = [(i, seed, assignment[i], styles[assignment[i]], str(out), sr, fmt, stereo)
            for i in range(n_songs)]
    from tqdm import tqdm

    # a song whose file exists is only drawn (cheap, here); worker processes render the rest,
    # so a rerun on a finished corpus starts none
    written = {i for i in range(n_songs) if (out / "audio" / f"{song_id(i)}.{fmt}").exists()}
    rows = {i: _make_one(jobs[i]) for i in sorted(written)}
    todo = [job for job in jobs if job[0] not in written]
    with (get_engine("local", workers) as run,
          tqdm(total=n_songs, initial=len(written), desc="synth", unit="song", disable=not progress) as bar):
        for job, row in zip(todo, run(_make_one, todo), strict=True):
            rows[job[0]] = row
            bar.update()
    truth = pd.DataFrame([rows[i] for i in range(n_songs)])
    _write_csv(truth[["song_id", "path", "artist", "hit_score"]], out / "labels.csv")
    _write_csv(truth.drop(columns=["path", "hit_score"]).assign(hit_score=truth["hit_score"]),
               out / "truth.csv")
    log.info("wrote %d songs to %s", n_songs, out)
    return truth


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))
