"""Property tests (hypothesis): the ranking metrics and the highlight window picker hold their
promises for any input, not just hand-picked cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hitrank.descriptors.evaluate import classification_metrics
from hitrank.metrics import ranking_metrics
from hitrank.thumbnail.window import pick_window

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
scores = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def truth_and_pred(draw, min_n=2, max_n=200):
    n = draw(st.integers(min_n, max_n))
    y = draw(arrays(np.float64, n, elements=scores))
    p = draw(arrays(np.float64, n, elements=finite))
    top = draw(st.floats(0.01, 1.0))
    return y, p, top


@settings(max_examples=200, deadline=None)
@given(truth_and_pred())
def test_metric_bounds(args):
    y, p, top = args
    m = ranking_metrics(y, p, top)
    assert 0.0 <= m["ndcg"] <= 1.0 + 1e-12
    for k in ("kendall", "spearman", "kendall_all", "spearman_all"):
        assert -1.0 - 1e-12 <= m[k] <= 1.0 + 1e-12, k
    assert 0.0 <= m["recall"] <= 1.0
    assert 2 <= m["n_top"] <= len(y) or m["n_top"] == len(y)


@st.composite
def truth_and_distinct_pred(draw):
    n = draw(st.integers(3, 150))
    y = draw(arrays(np.float64, n, elements=scores))
    p = np.array(draw(st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n, unique=True))) / 1000.0
    return y, p, draw(st.floats(0.01, 1.0))


@settings(max_examples=150, deadline=None)
@given(truth_and_distinct_pred(), st.sampled_from(["exp", "cube", "affine"]))
def test_metrics_invariant_to_monotone_transforms_of_the_prediction(args, kind):
    y, p, top = args  # distinct predictions: strict monotone maps keep the order
    f = {"exp": lambda x: np.exp(x / (np.abs(x).max() + 1)), "cube": lambda x: x ** 3,
         "affine": lambda x: 3 * x - 7}[kind]
    q = f(p)
    assume(len(np.unique(q)) == len(q))
    a, b = ranking_metrics(y, p, top), ranking_metrics(y, q, top)
    for k in ("ndcg", "kendall", "spearman", "recall", "kendall_all", "spearman_all"):
        assert a[k] == pytest.approx(b[k], abs=1e-9), k


@settings(max_examples=150, deadline=None)
@given(st.integers(3, 300), st.floats(0.05, 1.0), st.integers(0, 2**31))
def test_perfect_and_reversed_rankings(n, top, seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(n).astype(float) + 1.0  # distinct positive scores
    best = ranking_metrics(y, y, top)
    assert best["ndcg"] == pytest.approx(1.0) and best["recall"] == 1.0
    assert best["kendall"] == pytest.approx(1.0) and best["spearman"] == pytest.approx(1.0)
    worst = ranking_metrics(y, -y, top)
    assert worst["kendall"] == pytest.approx(-1.0) and worst["spearman"] == pytest.approx(-1.0)
    assert worst["ndcg"] < 1.0


@settings(max_examples=100, deadline=None)
@given(st.integers(10, 400), st.floats(0.05, 0.5), st.integers(0, 2**31))
def test_classification_metrics_bounds(n, rate, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    assume(0 < y.sum() < n)
    prob = rng.random(n)
    m = classification_metrics(y, prob)
    for k, v in m.items():
        assert 0.0 <= v <= 1.0, k
    assert classification_metrics(y, y.astype(float))["roc_auc"] == 1.0


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 3600.0), arrays(np.float64, st.integers(0, 4000),
                                      elements=st.one_of(st.floats(-10, 10), st.just(np.nan),
                                                         st.just(np.inf), st.just(-np.inf))))
def test_pick_window_any_song_any_curve(duration, curve):
    start = pick_window(curve, duration)
    assert start == int(start)
    assert 0.0 <= start <= max(0.0, duration - 30.0)
    if duration <= 30.0:
        assert start == 0.0


@settings(max_examples=200, deadline=None)
@given(st.integers(31, 1200), st.integers(0, 2**31))
def test_pick_window_finds_a_planted_peak(seconds, seed):
    rng = np.random.default_rng(seed)
    curve = rng.random(seconds) * 0.1
    peak = int(rng.integers(0, seconds - 30 + 1))
    curve[peak:peak + 30] += 1.0
    start = pick_window(curve, float(seconds))
    assert abs(start - peak) < 30  # the chosen window overlaps the planted one by more than half
    window_mass = curve[int(start):int(start) + 30].sum()
    assert window_mass >= curve[peak:peak + 30].sum() - 1e-9  # and is at least as heavy
