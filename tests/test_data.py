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


# ----------------------------------------------------------------------------- A/B uniformity
def test_ab_pairs_uniform_over_pairs_with_an_a_song():
    rng = np.random.default_rng(5)
    idx, scores, artists = _setup(rng)
    above = scores > scores.mean()
    n_a, n_b = int(above.sum()), int((~above).sum())
    n_aa, n_ab = n_a * (n_a - 1) // 2, n_a * n_b
    want = n_aa / (n_aa + n_ab)
    draws, per_draw = 60, 300  # 18 000 pairs in all
    aa = 0
    for _ in range(draws):
        p = sample_pairs("ab", idx, scores, artists, per_draw, rng)
        aa += int((above[p[:, 0]] & above[p[:, 1]]).sum())
    share = aa / (draws * per_draw)
    sd = np.sqrt(want * (1 - want) / (draws * per_draw))  # binomial: an upper bound without replacement
    assert abs(share - want) < 4 * sd, (share, want)


def test_ab_pairs_exhaustive_without_replacement():
    rng = np.random.default_rng(0)
    scores = np.array([10.0, 9.0, 8.0, 1.0, 1.0, 1.0, 1.0])  # A = first 3
    idx = np.arange(7)
    p = sample_pairs("ab", idx, scores, np.array([""] * 7), 1000, rng)
    got = {tuple(sorted(x)) for x in p.tolist()}
    want = {(i, j) for i in range(7) for j in range(i + 1, 7) if i < 3}
    assert len(p) == len(want) == 3 + 3 * 4 and got == want


def test_ab_pairs_use_only_training_songs():
    rng = np.random.default_rng(3)
    scores = rng.lognormal(0, 2, 300)
    idx = np.sort(rng.choice(300, 150, replace=False))
    p = sample_pairs("ab", idx, scores, np.array([""] * 300), 2000, rng)
    assert np.isin(p, idx).all() and (p[:, 0] != p[:, 1]).all()
    mean = scores[idx].mean()
    assert ((scores[p[:, 0]] > mean) | (scores[p[:, 1]] > mean)).all()
    assert len({tuple(sorted(x)) for x in p.tolist()}) == len(p) == 2000


# ----------------------------------------------------------------------------- folds by song id
def _ids(n, prefix="song"):
    return np.array([f"{prefix}{i:05d}" for i in range(n)])


def _test_chunks(folds, ids):
    return [frozenset(ids[te]) for _, _, te in folds]


def test_id_folds_do_not_depend_on_row_order(rng):
    ids = _ids(503)
    folds = make_folds(len(ids), 10, seed=11, ids=ids)
    order = rng.permutation(len(ids))
    shuffled = make_folds(len(ids), 10, seed=11, ids=ids[order])
    assert _test_chunks(folds, ids) == _test_chunks(shuffled, ids[order])
    for (tr, va, _), (tr2, va2, _) in zip(folds, shuffled, strict=True):
        assert set(ids[tr]) == set(ids[order][tr2]) and set(ids[va]) == set(ids[order][va2])


def test_id_folds_have_their_own_seed():
    ids = _ids(400)
    assert _test_chunks(make_folds(400, 10, 1, ids=ids), ids) != _test_chunks(
        make_folds(400, 10, 2, ids=ids), ids)
    assert _test_chunks(make_folds(400, 10, 1, ids=ids), ids) == _test_chunks(
        make_folds(400, 10, 1, ids=ids), ids)


def test_dropping_one_song_moves_few_others():
    n, k = 1000, 10
    ids = _ids(n)
    before = {s: f for f, (_, _, te) in enumerate(make_folds(n, k, 7, ids=ids)) for s in ids[te]}
    for drop in (0, 321, 999):
        rest = np.delete(ids, drop)
        after = {s: f for f, (_, _, te) in enumerate(make_folds(n - 1, k, 7, ids=rest))
                 for s in rest[te]}
        moved = sum(before[s] != after[s] for s in rest)
        assert moved <= k, moved  # at most one song crosses each chunk boundary


def test_id_folds_8_1_1_balanced_and_each_song_tested_once():
    for n in (1000, 1003, 57):
        ids = _ids(n)
        folds = make_folds(n, 10, seed=3, ids=ids)
        tested = np.concatenate([te for _, _, te in folds])
        assert sorted(tested) == list(range(n))
        sizes = [len(te) for _, _, te in folds]
        assert max(sizes) - min(sizes) <= 1
        for f, (tr, va, te) in enumerate(folds):
            assert np.array_equal(va, folds[(f + 1) % 10][2])
            assert len(tr) + len(va) + len(te) == n
            assert not (set(tr) & set(va)) and not (set(tr) & set(te)) and not (set(va) & set(te))


def test_id_folds_refuse_bad_ids():
    with pytest.raises(ConfigError, match="duplicate"):
        make_folds(4, 3, 0, ids=["a", "b", "a", "c"])
    with pytest.raises(ConfigError, match="ids"):
        make_folds(5, 3, 0, ids=["a", "b", "c"])


def test_artist_aware_id_folds_keep_artists_together_and_are_stable(rng):
    n = 600
    ids = _ids(n)
    artists = rng.integers(0, 80, n).astype(str)
    artists[:40] = ""  # unknown artist: each song on its own, not one giant group
    folds = make_folds(n, 10, seed=0, groups=artists, ids=ids)
    for tr, va, te in folds:
        known = lambda sel: set(artists[sel]) - {""}  # noqa: E731
        assert not known(te) & known(tr) and not known(va) & known(tr)
    sizes = [len(te) for _, _, te in folds]
    largest_artist = np.unique(artists[artists != ""], return_counts=True)[1].max()
    assert max(sizes) - min(sizes) <= 2 * largest_artist  # each cut is off by under one artist
    unknown_chunks = {f for f, (_, _, te) in enumerate(folds) for i in te if artists[i] == ""}
    assert len(unknown_chunks) > 1
    order = rng.permutation(n)
    again = make_folds(n, 10, seed=0, groups=artists[order], ids=ids[order])
    assert _test_chunks(folds, ids) == _test_chunks(again, ids[order])
