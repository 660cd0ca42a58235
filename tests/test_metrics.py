import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import ndcg_score

from hitrank.errors import ParameterError
from hitrank.metrics import n_top, ranking_metrics


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_implementations(seed):
    rng = np.random.default_rng(seed)
    y = rng.lognormal(0, 2, 300)
    p = y * rng.lognormal(0, 1.5, 300)
    m = ranking_metrics(y, p)
    k = n_top(300, 0.1)
    assert k == 30 and m["n_top"] == 30
    assert m["ndcg"] == pytest.approx(ndcg_score([y], [p], k=k), abs=1e-10)
    top = np.argsort(-y)[:k]
    assert m["kendall"] == pytest.approx(kendalltau(y[top], p[top])[0])
    assert m["spearman"] == pytest.approx(spearmanr(y[top], p[top])[0])
    assert m["spearman_all"] == pytest.approx(spearmanr(y, p)[0])


def test_perfect_and_reversed():
    y = np.arange(1, 101, dtype=float)
    m = ranking_metrics(y, y)
    assert m["ndcg"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0)
    assert m["spearman"] == pytest.approx(1.0) and m["recall"] == 1.0
    r = ranking_metrics(y, -y)
    assert r["kendall"] == pytest.approx(-1.0) and r["spearman"] == pytest.approx(-1.0)
    assert r["recall"] == 0.0 and r["ndcg"] < 0.2


def test_monotone_transform_of_prediction_changes_nothing(rng):
    y = rng.lognormal(0, 2, 200)
    p = rng.normal(size=200)
    a, b = ranking_metrics(y, p), ranking_metrics(y, np.exp(3 * p) + 5)
    for k in ("ndcg", "kendall", "spearman", "recall"):
        assert a[k] == pytest.approx(b[k])


def test_hand_made_ndcg():
    y = np.array([3.0, 2.0, 1.0, 0.0] + [0.0] * 16)  # 20 songs -> top 2
    p = np.array([2.0, 3.0, 1.0, 0.0] + [0.0] * 16)  # the two best swapped
    ideal = 3 + 2 / np.log2(3)
    got = 2 + 3 / np.log2(3)
    assert ranking_metrics(y, p)["ndcg"] == pytest.approx(got / ideal)


def test_constant_prediction_scores_zero_correlation():
    y = np.arange(50, dtype=float)
    m = ranking_metrics(y, np.ones(50))
    assert m["kendall"] == 0.0 and m["spearman"] == 0.0


def test_bad_inputs():
    with pytest.raises(ParameterError, match="finite"):
        ranking_metrics([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ParameterError, match="top="):
        ranking_metrics([1.0, 2.0], [1.0, 2.0], top=0)


# ----------------------------------------------------------------------------- ties
def test_constant_prediction_ndcg_does_not_depend_on_row_order(rng):
    y = rng.lognormal(0, 2, 200)
    p = np.ones(200)
    k = n_top(200, 0.1)
    want = ndcg_score([y], [p], k=k, ignore_ties=False)
    got = set()
    for _ in range(20):
        order = rng.permutation(200)
        m = ranking_metrics(y[order], p)
        got.add(round(m["ndcg"], 12))
        assert m["ndcg"] == pytest.approx(want, abs=1e-12)
        assert m["recall"] == pytest.approx(0.1, abs=1e-12)  # expected overlap of a random pick
    assert len(got) == 1


@pytest.mark.parametrize("seed", range(40))
def test_tied_predictions_match_sklearn_tie_averaged_ndcg(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(5, 400))
    y = rng.lognormal(0, 2, n) * (rng.random(n) < 0.8)  # some zero gains
    p = rng.integers(0, int(rng.integers(1, 12)), n).astype(float)  # few levels: many ties
    top = float(rng.choice([0.05, 0.1, 0.2, 0.5, 1.0]))
    k = n_top(n, top)
    m = ranking_metrics(y, p, top)
    assert m["ndcg"] == pytest.approx(ndcg_score([y], [p], k=k, ignore_ties=False), abs=1e-10)


def _expected_recall_by_enumeration(y, p, k, rng, n_draws=20000):
    """Monte-Carlo oracle: break ties at random many times and average the overlap."""
    total = 0.0
    for _ in range(n_draws):
        u, v = rng.random(len(y)), rng.random(len(y))
        top_p = set(np.lexsort((u, -p))[:k])
        top_y = set(np.lexsort((v, -y))[:k])
        total += len(top_p & top_y) / k
    return total / n_draws


def test_recall_with_ties_is_the_expected_overlap(rng):
    y = np.array([5.0, 4.0, 3.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    p = np.array([1.0, 2.0, 2.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    k = n_top(10, 0.3)  # 3 songs: pred ties straddle the cut (4 songs at 2.0), truth ties too
    want = _expected_recall_by_enumeration(y, p, k, rng)
    assert ranking_metrics(y, p, 0.3)["recall"] == pytest.approx(want, abs=0.01)


def test_all_metrics_are_invariant_to_row_order_with_ties(rng):
    for _ in range(20):
        n = int(rng.integers(5, 120))
        y = rng.integers(0, 6, n).astype(float)  # tied truths too, also at the cut
        p = rng.integers(0, 4, n).astype(float)
        ref = ranking_metrics(y, p, 0.2)
        order = rng.permutation(n)
        got = ranking_metrics(y[order], p[order], 0.2)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key


def test_predictions_are_ranked_in_float32_precision(rng):
    y = rng.lognormal(0, 2, 100)
    p = np.ones(100)
    noisy = p + rng.normal(0, 1e-9, 100)  # below float32 resolution at 1.0 (6e-8)
    a, b = ranking_metrics(y, p), ranking_metrics(y, noisy)
    for key in ("ndcg", "recall", "kendall", "spearman", "kendall_all", "spearman_all"):
        assert a[key] == pytest.approx(b[key], abs=1e-12), key


def test_predictions_beyond_float32_range_stay_finite():
    y = np.arange(1.0, 21.0)
    m = ranking_metrics(y, np.linspace(0, 1e300, 20))
    assert 0.0 <= m["ndcg"] <= 1.0 and np.isfinite(m["kendall"])


def test_signed_labels_rank_with_gains_shifted_by_the_minimum():
    """Net liking in [-1, 1]: nDCG's gains are the labels minus their minimum; the
    correlations and recall are those of the unshifted labels (they are shift-invariant)."""
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(3)
    y = rng.uniform(-1, 1, 80)
    p = y + rng.normal(0, 0.5, 80)
    m = ranking_metrics(y, p)
    shifted = ranking_metrics(y - y.min(), p)
    assert m == pytest.approx(shifted)
    k = m["n_top"]
    assert m["ndcg"] == pytest.approx(ndcg_score([y - y.min()], [p], k=k))
    # non-negative labels are their own gains: unchanged from the paper's definition
    assert ranking_metrics(y - y.min() + 1, p)["ndcg"] == pytest.approx(ndcg_score([y - y.min() + 1], [p], k=k))
    # the batch version agrees row by row
    from hitrank.metrics import top_metrics_batch

    b = top_metrics_batch(np.stack([y, -y]), np.stack([p, p]))
    assert b["ndcg"][0] == pytest.approx(m["ndcg"])
    assert b["ndcg"][1] == pytest.approx(ranking_metrics(-y, p)["ndcg"])
