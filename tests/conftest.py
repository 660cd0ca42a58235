"""Shared fixtures: a small synthetic corpus and its feature store, made once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_AUDIO = SHARED / "audio"
SHARED_DATA = SHARED / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """24 synthetic songs (WAV, 22050 Hz mono) with labels.csv and truth.csv."""
    from hitrank.synth import synthesize

    out = tmp_path_factory.mktemp("corpus")
    synthesize(out, 24, seed=7, fmt="wav", sr=22050, progress=False)
    return out


@pytest.fixture(scope="session")
def store(corpus, tmp_path_factory) -> Path:
    from hitrank.extract import extract

    out = tmp_path_factory.mktemp("store")
    rep = extract(corpus / "labels.csv", out, progress=False)
    assert rep.failed == 0
    return out


def write_tone(path, seconds=40.0, sr=22050, freq=440.0, channels=1, subtype="PCM_16"):
    """A sine tone file (a song with a known pitch); returns the mono signal written."""
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    data = np.repeat(y[:, None], channels, axis=1) if channels > 1 else y
    sf.write(str(path), data, sr, subtype=subtype)
    return y
