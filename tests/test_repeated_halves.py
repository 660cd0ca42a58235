"""hitrank.transfer.halves (and scripts/repeated_halves.py): random halves that keep groups
whole, the stratum-mean baseline of the training half, and a model with a planted
within-genre signal against it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hitrank.transfer import protocol
from hitrank.transfer.config import load_transfer_config
from hitrank.transfer.halves import halves, repeated_halves, summarize_halves

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "repeated_halves.py"


def test_halves_keep_each_group_whole_even_across_strata_and_split_each_stratum():
    rng = np.random.default_rng(0)
    stratum = np.repeat(["rock", "pop", "jazz"], 20)
    group = np.array([f"g{i // 2}" for i in range(60)])  # pairs of copies
    group[::7] = ""  # songs without a group: each a unit of its own
    group[[5, 25, 45]] = "spans"  # one artist in three genres
    seen = set()
    for _ in range(6):
        a = halves(stratum, group, rng)
        for g in set(group) - {""}:
            assert len(set(a[group == g])) == 1  # a group never sits on both sides
        for s in set(stratum):
            assert 0.3 < a[stratum == s].mean() < 0.7  # about half of each stratum
        seen.add(a.tobytes())
    assert len(seen) == 6  # the halves are drawn at random


def _data(tmp_path, n=160, seed=1):
    rng = np.random.default_rng(seed)
    genre = np.repeat(["classical", "rock", "pop", "electronic"], n // 4)
    level = pd.Series(genre).map({"classical": 1.0, "rock": 0.3, "pop": 0.0, "electronic": -0.3}).to_numpy()
    X = rng.normal(size=(n, 12))
    X[:, 0] += 3 * level  # the genre is audible
    y = level + 0.5 * X[:, 1] + rng.normal(0, 0.3, n)  # and so is what is liked within a genre
    ids = np.array([f"s{i:03d}" for i in range(n)])
    labels = pd.DataFrame({"song_id": ids, "genre": genre, "group": [f"g{i // 2}" for i in range(n)]}, index=ids)
    return protocol.Data(ids, X, y, labels.astype(str), params=None, store=tmp_path), genre, labels.group.to_numpy()


def test_a_within_genre_signal_beats_the_genre_mean_of_the_training_half(tmp_path):
    data, genre, group = _data(tmp_path)
    t = repeated_halves(load_transfer_config("real/ridge"), data, genre, group, splits=3, progress=False)
    assert len(t) == 6 and set(t.test_half) == {"A", "B"} and (t.train_songs + t.test_songs == 160).all()
    assert (t.spearman_within > 0.5).all() and (t.baseline_within.abs() < 1e-9).all()
    assert (t.spearman > t.baseline_spearman).all()
    # the baseline is the training half's genre means: computed by hand for the first split
    a = halves(genre, group, np.random.default_rng(0))
    means = pd.Series(data.y[a]).groupby(genre[a]).mean()
    by_hand = pd.Series(genre[~a]).map(means).to_numpy()
    from scipy.stats import spearmanr
    assert math.isclose(t.baseline_spearman[0], spearmanr(data.y[~a], by_hand)[0], abs_tol=1e-12)


def test_sample_weights_reach_the_fits(tmp_path):
    data, genre, group = _data(tmp_path)
    cfg = load_transfer_config("real/ridge")
    plain = repeated_halves(cfg, data, genre, group, splits=1, progress=False)
    data.weight = np.where(np.arange(160) % 2 == 0, 1.0, 0.0)  # odd songs left out of every fit
    weighted = repeated_halves(cfg, data, genre, group, splits=1, progress=False)
    assert not np.allclose(plain.spearman, weighted.spearman)


def test_summary_standard_error_does_not_vanish_with_more_halves():
    t = pd.DataFrame({"spearman": [0.1, 0.2, 0.3, np.nan] * 25, "train_songs": 100, "test_songs": 100})
    r = summarize_halves(t, "spearman")
    assert r["n"] == 75 and r["undefined"] == 25 and math.isclose(r["mean"], 0.2)
    assert r["se"] > r["sd"]  # n_test / n_train = 1: at least the spread of one half
    assert math.isclose(r["se"], math.sqrt((1 / 75 + 1) * r["sd"] ** 2))


def test_the_script_names_its_arguments():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--within" in out and "--split-by" in out and "--splits" in out
