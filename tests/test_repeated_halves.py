"""scripts/repeated_halves.py: random halves that keep groups whole, and the mean over test
halves of a model with a planted within-genre signal against the genre-mean baseline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hitrank.transfer import protocol

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "repeated_halves.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("repeated_halves", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_halves_keep_each_group_on_one_side_and_split_each_stratum(script):
    rng = np.random.default_rng(0)
    stratum = np.repeat(["rock", "pop", "jazz"], 20)
    group = np.array([f"g{i // 2}" for i in range(60)])  # pairs of copies
    group[::7] = ""  # songs without a group: each a group of its own
    seen = set()
    for _ in range(5):
        a = script.halves(stratum, group, rng)
        for g in set(group) - {""}:
            assert len(set(a[group == g])) == 1  # a group never sits on both sides
        for s in set(stratum):
            assert 0.3 < a[stratum == s].mean() < 0.7  # about half of each stratum
        seen.add(a.tobytes())
    assert len(seen) == 5  # the halves are drawn at random


def test_a_within_genre_signal_beats_the_genre_mean_over_the_halves(script, monkeypatch, tmp_path, capsys):
    rng = np.random.default_rng(1)
    n, d = 160, 12
    genre = np.repeat(["classical", "rock", "pop", "electronic"], n // 4)
    level = pd.Series(genre).map({"classical": 1.0, "rock": 0.3, "pop": 0.0, "electronic": -0.3}).to_numpy()
    X = rng.normal(size=(n, d))
    X[:, 0] += 3 * level  # the genre is audible
    y = level + 0.5 * X[:, 1] + rng.normal(0, 0.3, n)  # and so is what is liked within a genre
    ids = np.array([f"s{i:03d}" for i in range(n)])
    labels = pd.DataFrame({"song_id": ids, "genre": genre, "group": [f"g{i // 2}" for i in range(n)]}, index=ids)
    data = protocol.Data(ids, X, y, labels.astype(str), params=None, store=tmp_path)
    monkeypatch.setattr(script, "load_data", lambda cfg, labels, workers=1: data)
    out = tmp_path / "halves.csv"
    script.main(["--config", "real/ridge", "--labels", "unused.csv", "--within", "genre", "--splits", "3",
                 "--out", str(out)])
    t = pd.read_csv(out)
    assert len(t) == 6 and set(t.test_half) == {"A", "B"} and (t.train_songs + t.test_songs == n).all()
    assert (t.spearman_within > 0.5).all() and (t.baseline_within.abs() < 1e-9).all()
    assert (t.spearman > t.baseline_spearman).all()
    text = capsys.readouterr().out
    assert "6 test halves" in text and "within genre above 0 in 100%" in text
