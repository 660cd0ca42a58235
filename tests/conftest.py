"""Shared fixtures: a small synthetic corpus and its feature store, made once per session; the
authors' released models imported into a temporary cache; and a sandbox for the whole run.

Tests never read the user's cache or home: before any test module imports hitrank, this file
points ``HITRANK_CACHE``, ``HOME`` and hypothesis's storage (its example database, otherwise
``.hypothesis/`` in the working folder) at fresh temporary folders, removed at the end of the
run; child processes inherit them. Tests that need ``../shared`` skip with a reason when it is
absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_AUDIO = SHARED / "audio"
SHARED_DATA = SHARED / "data"
HSP_CNN = SHARED / "reference" / "hsp_cnn"  # the authors' released weights (HSP_CNN repository)

# The sandbox: set at import, so that it holds before hitrank or any library reads them.
_SANDBOX = Path(tempfile.mkdtemp(prefix="hitrank-tests-"))
_SAVED_ENV = {k: os.environ.get(k) for k in ("HITRANK_CACHE", "HOME", "HYPOTHESIS_STORAGE_DIRECTORY",
                                             "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")}
os.environ["HITRANK_CACHE"] = str(_SANDBOX / "cache")
os.environ["HOME"] = str(_SANDBOX / "home")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(_SANDBOX / "hypothesis")
(_SANDBOX / "home").mkdir()
for _var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):  # default under HOME
    os.environ.pop(_var, None)


def pytest_unconfigure(config):
    for key, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(_SANDBOX, ignore_errors=True)


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


@pytest.fixture(scope="session")
def quick_run(store, tmp_path_factory) -> Path:
    """A `hitrank train` run of the simple CNN (Mid-30) on ``store``, one epoch: a model of
    the real architecture, whatever it learned (its run.json records ``store``)."""
    from hitrank.cli import main

    out = tmp_path_factory.mktemp("quick_run") / "m"
    assert main(["train", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--store", str(store),
                 "--out", str(out), "--set", "train.epochs=1", "-q"]) == 0
    return out


@pytest.fixture(scope="session")
def imported_cache(tmp_path_factory) -> Path:
    """A cache folder holding the authors' released models (JYnet, yu2018-kkbox,
    yu2018-kkbox-hl30), imported once per session with ``hitrank pretrained import`` from
    ``../shared/reference/hsp_cnn``; skips when that folder is absent. Point
    ``HITRANK_CACHE`` at it (``monkeypatch.setenv``) to use the models."""
    if not (HSP_CNN / "ret30.mdl").is_dir():
        pytest.skip(f"the authors' released weights are not at {HSP_CNN} (../shared/reference/hsp_cnn)")
    from hitrank.cli import main

    cache = tmp_path_factory.mktemp("imported_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("HITRANK_CACHE", str(cache))
    try:
        assert main(["pretrained", "import", str(HSP_CNN)]) == 0
    finally:
        mp.undo()
    return cache


def write_tone(path, seconds=40.0, sr=22050, freq=440.0, channels=1, subtype="PCM_16"):
    """A sine tone file (a song with a known pitch); returns the mono signal written."""
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    data = np.repeat(y[:, None], channels, axis=1) if channels > 1 else y
    sf.write(str(path), data, sr, subtype=subtype)
    return y
