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
    with pytest.raises(ParameterError, match="non-negative"):
        ranking_metrics([-1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ParameterError, match="top="):
        ranking_metrics([1.0, 2.0], [1.0, 2.0], top=0)
