"""Descriptor extractor registry: synthesised audio with known answers, ranges, bad input."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from hitrank.descriptors.extractors import (
    EXTRACTORS,
    NO_VOICE_TAGS,
    VOICE_TAGS,
    describe,
    describe_audio,
    low_energy_ratio,
    needs_tags,
)
from hitrank.descriptors.table import DESCRIPTORS
from hitrank.errors import HitrankError, ParameterError
from hitrank.tags import N_TAGS, TAGS

SR = 44100  # Hz
NEEDS_ESSENTIA = pytest.mark.skipif(importlib.util.find_spec("essentia") is None,
                                    reason="essentia is not installed (pip install 'hitrank[descriptors]')")
NEEDS_MUSICNN = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                   reason="musicnn is not installed (pip install --no-deps musicnn==0.1.0)")
NEUTRAL_TAGS = np.full(N_TAGS, 0.1)  # passing tags keeps musicnn out of the fast tests
MAJOR_TRIAD, MINOR_TRIAD = (0, 4, 7), (0, 3, 7)  # semitones above the root


def click_track(bpm: float, seconds: float = 20.0, sr: int = SR) -> np.ndarray:
    """Decaying 1 kHz clicks (10 ms) on every beat."""
    y = np.zeros(int(seconds * sr), np.float32)
    n = int(0.01 * sr)
    click = (np.sin(2 * np.pi * 1000 * np.arange(n) / sr) * np.exp(-np.arange(n) / (0.002 * sr)))
    for t in np.arange(0, seconds - 0.02, 60.0 / bpm):
        i = int(t * sr)
        y[i:i + n] += 0.8 * click
    return y


def tone(midi: float, seconds: float, sr: int = SR) -> np.ndarray:
    """A harmonic tone (6 partials, 1/k amplitudes)."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 7) if k * f0 < sr / 2)


def progression(tonic: int, minor: bool, seconds_per_chord: float = 2.0) -> np.ndarray:
    """I-IV-V-I (major) or i-iv-v-i (minor) triads over a bass root, twice, key ``tonic``."""
    triad = MINOR_TRIAD if minor else MAJOR_TRIAD
    chunks = []
    for degree in (0, 5, 7, 0) * 2:
        root = 60 + tonic + degree
        chord = sum(tone(root + i, seconds_per_chord) for i in triad) + tone(root - 12, seconds_per_chord)
        fade = np.minimum(1.0, np.linspace(0, 20, len(chord))) * np.minimum(1.0, np.linspace(20, 0, len(chord)))
        chunks.append(chord * fade)
    y = np.concatenate(chunks)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def speech_like(seconds: float = 20.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Syllable-like voiced bursts (~4 per second) in words separated by pauses."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * sr), np.float32)
    t = 0.0
    while t < seconds - 1.0:
        for _ in range(int(rng.integers(2, 5))):  # syllables of a word
            n = int(rng.uniform(0.12, 0.2) * sr)
            syl = tone(rng.uniform(50, 56), (n + 1) / sr, sr)[:n] * np.hanning(n)
            y[int(t * sr): int(t * sr) + n] += 0.3 * syl.astype(np.float32)
            t += n / sr + 0.03
        t += rng.uniform(0.2, 0.4)  # pause between words
    return y


def in_range(out: dict) -> None:
    for name, (lo, hi) in DESCRIPTORS.items():
        assert name in out, name
        assert np.isfinite(out[name]) and lo <= out[name] <= hi, (name, out[name])
    assert all(np.isfinite(v) for v in out.values())


# ----------------------------------------------------------------------------- registry
def test_unknown_extractor_is_a_one_line_error_listing_the_names():
    with pytest.raises(ParameterError) as exc:
        describe(np.zeros(SR * 2, np.float32), SR, extractor="madmom")
    msg = str(exc.value)
    assert "\n" not in msg and "'madmom'" in msg
    assert all(name in msg for name in EXTRACTORS)
    with pytest.raises(ParameterError, match="choose one of"):
        needs_tags("nope")


def test_needs_tags():
    assert needs_tags("librosa") is False
    assert needs_tags("hybrid") is True


@pytest.mark.parametrize("y, sr, match", [
    (np.zeros((SR * 2, 2), np.float32), SR, "mono"),
    (np.zeros(SR // 2, np.float32), SR, "at least 1 s"),
    (np.full(SR * 2, np.nan, np.float32), SR, "NaN"),
    (np.zeros(SR * 2, np.float32), 0, "sr=0"),
])
def test_bad_signal_is_rejected_before_work(y, sr, match):
    with pytest.raises(ParameterError, match=match):
        describe(y, sr, extractor="librosa")


@NEEDS_ESSENTIA
def test_bad_tags_are_rejected():
    y = click_track(120, 5.0)
    with pytest.raises(ParameterError, match=r"expected \(50,\)"):
        describe(y, SR, "hybrid", tags=np.zeros(10))
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        describe(y, SR, "hybrid", tags=np.full(N_TAGS, 2.0))


def test_missing_essentia_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "essentia", None)  # makes `import essentia` fail
    with pytest.raises(HitrankError) as exc:
        describe(click_track(120, 3.0), SR, "hybrid", tags=NEUTRAL_TAGS)
    assert "\n" not in str(exc.value) and "hitrank[descriptors]" in str(exc.value)


def test_librosa_extractor_is_todays_describe_audio():
    y = progression(0, False)[: 22050 * 4 * 2]  # already at 22050 Hz: no resampling
    assert describe(y, 22050, "librosa") == describe_audio(y, 22050)


# ----------------------------------------------------------------------------- hybrid
@NEEDS_ESSENTIA
@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_click_track_tempo(bpm):
    out = describe(click_track(bpm), SR, "hybrid", tags=NEUTRAL_TAGS)
    assert abs(out["tempo"] - bpm) <= 0.04 * bpm, out["tempo"]
    # a metronome is as regular as a pulse gets; noise has none
    noise = np.random.default_rng(0).normal(0, 0.1, 20 * SR).astype(np.float32)
    assert out["danceability"] > describe(noise, SR, "hybrid", tags=NEUTRAL_TAGS)["danceability"]


@NEEDS_ESSENTIA
@pytest.mark.parametrize("tonic, minor", [(7, False), (2, False), (9, True), (4, True)])
def test_chord_progression_key_and_mode(tonic, minor):
    out = describe(progression(tonic, minor), SR, "hybrid", tags=NEUTRAL_TAGS)
    assert (out["key"], out["mode"]) == (tonic, 0.0 if minor else 1.0)


@NEEDS_ESSENTIA
def test_louder_audio_has_more_energy_and_loudness():
    y = progression(0, False)
    quiet = describe(0.05 * y, SR, "hybrid", tags=NEUTRAL_TAGS)
    loud = describe(y * (0.9 / np.max(np.abs(y))), SR, "hybrid", tags=NEUTRAL_TAGS)
    assert loud["energy"] > quiet["energy"]
    assert loud["loudness"] > quiet["loudness"] + 20  # 25 dB apart


@NEEDS_ESSENTIA
def test_intense_tags_raise_energy():
    y = progression(0, False)
    calm, intense = NEUTRAL_TAGS.copy(), NEUTRAL_TAGS.copy()
    for name in ("loud", "fast", "rock", "metal"):
        intense[TAGS.index(name)] = 0.9
    assert describe(y, SR, "hybrid", tags=intense)["energy"] > describe(y, SR, "hybrid", tags=calm)["energy"]


@NEEDS_ESSENTIA
def test_tone_is_more_acoustic_than_white_noise():
    t = np.arange(10 * SR) / SR
    sine = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    noise = np.random.default_rng(1).normal(0, 0.1, len(t)).astype(np.float32)
    a_tone = describe(sine, SR, "hybrid", tags=NEUTRAL_TAGS)["acousticness"]
    a_noise = describe(noise, SR, "hybrid", tags=NEUTRAL_TAGS)["acousticness"]
    assert a_tone > 0.9 and a_noise < 0.1


@NEEDS_ESSENTIA
def test_digital_silence_does_not_make_a_tone_noise_like():
    t = np.arange(2 * SR) / SR
    sine = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    gapped = np.concatenate([sine, np.zeros(2 * SR, np.float32)] * 3)  # half the time silent
    assert describe(gapped, SR, "hybrid", tags=NEUTRAL_TAGS)["acousticness"] > 0.9


@NEEDS_ESSENTIA
def test_speech_like_pauses_raise_speechiness():
    speech = describe(speech_like(), SR, "hybrid", tags=NEUTRAL_TAGS)["speechiness"]
    music = describe(progression(0, False), SR, "hybrid", tags=NEUTRAL_TAGS)["speechiness"]
    assert speech > 0.5 > music


def test_low_energy_ratio_known_values():
    sr = 1000
    steady = np.ones(10 * sr)
    assert low_energy_ratio(steady, sr) == 0.0
    gated = np.tile(np.r_[np.ones(sr // 2), np.zeros(sr // 2)], 10)  # half of every second silent
    assert low_energy_ratio(gated, sr) == pytest.approx(0.5)
    assert low_energy_ratio(np.zeros(10 * sr), sr) == 0.0  # silence is skipped, not "speech"


@NEEDS_ESSENTIA
def test_voice_tags_lower_instrumentalness():
    y = progression(0, False)
    sung, instrumental = np.zeros(N_TAGS), np.zeros(N_TAGS)
    sung[[TAGS.index(t) for t in VOICE_TAGS]] = 0.6
    instrumental[[TAGS.index(t) for t in NO_VOICE_TAGS]] = 0.6
    assert describe(y, SR, "hybrid", tags=sung)["instrumentalness"] < 0.1
    assert describe(y, SR, "hybrid", tags=instrumental)["instrumentalness"] > 0.9


@NEEDS_ESSENTIA
@pytest.mark.parametrize("signal", ["music", "silence", "noise"])
def test_hybrid_values_are_finite_and_in_range(signal):
    y = {"music": progression(5, False) + click_track(100, 16.0),
         "silence": np.zeros(5 * SR, np.float32),
         "noise": np.random.default_rng(2).normal(0, 0.2, 5 * SR).astype(np.float32)}[signal]
    out = describe(y, SR, "hybrid", tags=NEUTRAL_TAGS)
    in_range(out)
    assert set(describe_audio(y[: 22050], 22050)) <= set(out)


@NEEDS_ESSENTIA
@NEEDS_MUSICNN
def test_hybrid_computes_tags_when_not_given():
    y = progression(0, False)
    own = describe(y, SR, "hybrid")
    from hitrank.tags import segment_tags

    given = describe(y, SR, "hybrid", tags=segment_tags(y, SR))
    in_range(own)
    assert own["instrumentalness"] == pytest.approx(given["instrumentalness"])
