import numpy as np
import pytest

from hitrank.data import Target, make_folds, sample_pairs
from hitrank.errors import ConfigError


def test_folds_8_1_1_and_each_song_tested_once():
    folds = make_folds(1000, 10, seed=3)
    tested = np.concatenate([te for _, _, te in folds])
    assert sorted(tested) == list(range(1000))
    for tr, va, te in folds:
        assert len(tr) == 800 and len(va) == 100 and len(te) == 100
        assert not (set(tr) & set(va)) and not (set(tr) & set(te)) and not (set(va) & set(te))
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(folds, make_folds(1000, 10, seed=3), strict=True))


def test_artist_aware_folds_keep_artists_together(rng):
    artists = rng.integers(0, 60, 500).astype(str)
    for tr, va, te in make_folds(500, 10, seed=0, groups=artists):
        assert not set(artists[te]) & set(artists[tr])
        assert not set(artists[va]) & set(artists[tr])


def test_folds_refuse_bad_sizes():
    with pytest.raises(ConfigError, match="at least 3"):
        make_folds(100, 2, 0)
    with pytest.raises(ConfigError, match="only 5 songs"):
        make_folds(5, 10, 0)


def _setup(rng, n=200):
    scores = rng.lognormal(0, 2, n)
    artists = np.array([f"a{i // 4}" if i < 120 else f"solo{i}" for i in range(n)])
    return np.arange(n), scores, artists


def test_naive_pairs_distinct(rng):
    idx, scores, artists = _setup(rng)
    p = sample_pairs("naive", idx, scores, artists, 500, rng)
    assert p.shape == (500, 2) and (p[:, 0] != p[:, 1]).all()
    assert len({tuple(sorted(x)) for x in p}) == 500


def test_ab_pairs_have_a_popular_song(rng):
    idx, scores, artists = _setup(rng)
    p = sample_pairs("ab", idx, scores, artists, 400, rng)
    above = scores > scores.mean()
    assert (above[p[:, 0]] | above[p[:, 1]]).all()
    assert len({tuple(sorted(x)) for x in p}) == len(p) == 400


def test_artist_pairs_same_artist_and_exhaustive(rng):
    idx, scores, artists = _setup(rng)
    p = sample_pairs("artist", idx, scores, artists, 10_000, rng)
    assert (artists[p[:, 0]] == artists[p[:, 1]]).all()
    assert len(p) == 30 * 6  # 30 artists with 4 songs: 6 pairs each; solo artists give none


def test_pairs_resampled_and_seedable():
    idx, scores, artists = _setup(np.random.default_rng(0))
    a = sample_pairs("ab", idx, scores, artists, 100, np.random.default_rng(1))
    b = sample_pairs("ab", idx, scores, artists, 100, np.random.default_rng(1))
    c = sample_pairs("ab", idx, scores, artists, 100, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("kind", ["raw", "log", "neg_inv_log10"])
def test_target_round_trip_and_monotone(kind, rng):
    y = rng.uniform(1e-6, 0.5, 100)
    t = Target.fit(kind, y)
    z = t.transform(y)
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    np.testing.assert_allclose(t.inverse(z), y, rtol=1e-9)
    assert (np.diff(z[np.argsort(y)]) >= 0).all()


def test_neg_inv_log10_needs_shares():
    with pytest.raises(ConfigError, match="neg_inv_log10"):
        Target.fit("neg_inv_log10", np.array([0.5, 3.0]))
