"""Uncertainty of the metrics: pooled bootstrap intervals, fold spread, chance and ceiling,
on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hitrank.errors import ParameterError
from hitrank.metrics import ranking_metrics
from hitrank.uncertainty import (
    MIN_RELIABLE_TOP,
    fold_summary,
    oracle,
    pooled_metrics,
    random_baseline,
    small_top_warning,
    stratified_resamples,
)


def _corpus(n=1000, k=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng, rng.lognormal(0, 1.5, n), np.arange(n) % k


def test_perfect_predictor_intervals_contain_one():
    _, y, folds = _corpus()
    r = pooled_metrics(y, y, folds, n_boot=200)
    lo, hi = r["ci"]["ndcg"]
    assert lo <= 1.0 <= hi + 1e-12 and r["pooled"]["ndcg"] == pytest.approx(1.0)
    assert r["ci"]["recall"][1] == pytest.approx(1.0)
    assert r["per_fold"]["ndcg"]["mean"] == pytest.approx(1.0)


def test_random_predictions_interval_contains_zero_kendall():
    rng, y, folds = _corpus()
    r = pooled_metrics(y, rng.normal(size=len(y)), folds, n_boot=300)
    for m in ("kendall", "spearman"):
        lo, hi = r["ci"][m]
        assert lo < 0 < hi, (m, lo, hi)


def test_good_model_interval_excludes_chance():
    rng, y, folds = _corpus()
    r = pooled_metrics(y, y * rng.lognormal(0, 0.3, len(y)), folds, n_boot=300)
    assert r["ci"]["kendall"][0] > 0.2 and r["ci"]["spearman"][0] > 0.3
    assert r["ci"]["ndcg"][0] <= r["pooled"]["ndcg"] <= r["ci"]["ndcg"][1]


def test_pooled_point_is_the_metric_of_the_whole_pool_and_per_fold_uses_ddof1():
    rng, y, folds = _corpus(n=600, k=6)
    p = y + rng.normal(0, 2, len(y))
    r = pooled_metrics(y, p, folds, n_boot=50)
    assert r["pooled"] == ranking_metrics(y, p, 0.1)
    assert r["n_top"] == 60 and r["n_songs"] == 600 and r["fold_n_top"] == 10
    per = [ranking_metrics(y[folds == f], p[folds == f])["kendall"] for f in range(6)]
    s = r["per_fold"]["kendall"]
    assert s["mean"] == pytest.approx(np.mean(per)) and s["std"] == pytest.approx(np.std(per, ddof=1))
    assert s["se"] == pytest.approx(np.std(per, ddof=1) / np.sqrt(6)) and s["n"] == 6
    assert r["warnings"] == []


def test_bootstrap_is_seeded_and_deterministic():
    rng, y, folds = _corpus(n=400)
    p = y * rng.lognormal(0, 1, len(y))
    a = pooled_metrics(y, p, folds, n_boot=100, seed=3)
    assert pooled_metrics(y, p, folds, n_boot=100, seed=3) == a
    assert pooled_metrics(y, p, folds, n_boot=100, seed=4)["ci"] != a["ci"]


def test_resamples_keep_every_stratum_size():
    strata = np.repeat([2, 0, 1], [5, 3, 7])
    chunks = list(stratified_resamples(strata, 23, seed=0, chunk_elements=15 * 4))
    assert [len(c) for c in chunks] == [4] * 5 + [3]
    idx = np.concatenate(chunks)
    assert idx.shape == (23, 15) and (strata[idx] == np.sort(strata)[None]).all()
    again = np.concatenate(list(stratified_resamples(strata, 23, seed=0, chunk_elements=60)))
    assert np.array_equal(idx, again)


def test_small_top_warning_below_ten():
    assert MIN_RELIABLE_TOP == 10
    assert small_top_warning(9) is not None and "9 songs" in small_top_warning(9)
    assert small_top_warning(2) is not None and small_top_warning(10) is None
    _, y, folds = _corpus(n=200, k=10)  # 20 songs a fold: top 10% = 2 songs
    r = pooled_metrics(y, y, folds, n_boot=20)
    assert r["fold_n_top"] == 2 and any("only 2 songs in a fold's top fraction" in w for w in r["warnings"])
    # the pooled set is not a fold, and fewer folds do not enlarge it
    _, y, folds = _corpus(n=50, k=5)
    (pooled,) = [w for w in pooled_metrics(y, y, folds, n_boot=20)["warnings"] if "a fold" not in w]
    assert pooled.startswith("only 5 songs in the pooled out-of-fold top fraction (fewer than 10): ")
    assert "a fold's" not in pooled and "fewer folds" not in pooled


def test_random_baseline_and_oracle():
    _, y, folds = _corpus(n=2000)
    base = random_baseline(y, folds, n_draws=200, seed=0)
    for m in ("kendall", "spearman"):
        assert abs(base[m]["mean"]) < 3 * base[m]["std"] / np.sqrt(200) + 0.01
        assert base[m]["lo"] < 0 < base[m]["hi"]
    assert base["recall"]["mean"] == pytest.approx(0.1, abs=0.02)  # chance overlap = top
    assert 0 < base["ndcg"]["mean"] < 0.5
    assert random_baseline(y, folds, n_draws=200, seed=0) == base
    top = oracle(y, folds)
    assert all(v == pytest.approx(1.0) for v in top.values())
    whole = oracle(y)  # no folds: the whole set
    assert whole["ndcg"] == pytest.approx(1.0)


def test_fold_summary_and_bad_inputs():
    s = fold_summary([0.1, 0.2, 0.3])
    assert s["mean"] == pytest.approx(0.2) and s["std"] == pytest.approx(0.1) and s["n"] == 3
    assert np.isnan(fold_summary([0.5])["std"])
    with pytest.raises(ParameterError, match="folds"):
        pooled_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], folds=[0, 1])
    with pytest.raises(ParameterError, match="n_boot"):
        pooled_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_boot=0)
    with pytest.raises(ParameterError, match="finite"):
        oracle([np.nan, 2.0, 3.0])
