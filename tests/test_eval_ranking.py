"""scripts/eval_ranking.py: a ranking CSV scored against labels, with the stratum-mean
baseline of the training labels (the held-out-half table of docs/real-music.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "eval_ranking.py"


def _labels(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    genre = np.array(["rock", "pop", "jazz", "NA"])[np.arange(n) % 4]  # 'NA': a name (a market), not missing
    level = pd.Series(genre).map({"rock": 1.0, "pop": 0.5, "jazz": -0.5, "NA": -1.0}).to_numpy()
    return pd.DataFrame({"song_id": [f"s{seed}_{i}" for i in range(n)],
                         "path": [f"audio/{g}/{seed}_{i:03d}.ogg" for i, g in enumerate(genre)],
                         "artist": [f"a{i // 3}" for i in range(n)], "genre": genre,
                         "hit_score": level + rng.normal(0, 0.5, n)})


def _run(*args) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), *map(str, args), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_baseline_and_paired_difference(tmp_path):
    train, test = _labels(60, 0), _labels(40, 1)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    rng = np.random.default_rng(2)
    # a ranking of the test files, found under another folder: joined by <genre>/<file>
    ranking = pd.DataFrame({"path": ["/elsewhere/" + "/".join(p.split("/")[-2:]) for p in test.path],
                            "score": test.hit_score + rng.normal(0, 0.3, len(test))})
    ranking.to_csv(tmp_path / "ranking.csv", index=False)
    ev = _run(tmp_path / "test.csv", tmp_path / "ranking.csv", "--within", "genre", "--group-by", "artist",
              "--baseline-labels", tmp_path / "train.csv")
    assert ev["resampled"] == "groups"
    assert sorted(ev["within"]["strata"]) == ["NA", "jazz", "pop", "rock"]
    assert ev["within"]["mean"]["spearman"] > 0.5  # the ranking follows the labels inside genres
    assert ev["baseline"]["spearman"] > 0.5  # the genres' levels rank the songs over all of them
    # the genre mean is constant inside a genre: the paired within difference is the model's own
    d = ev["model_minus_baseline"]
    assert d["within"]["diff"] == pytest.approx(ev["within"]["mean"]["spearman"])
    assert d["pooled"]["diff"] == pytest.approx(ev["pooled"]["spearman"] - ev["baseline"]["spearman"])


def test_baseline_needs_within(tmp_path):
    _labels(20, 0).to_csv(tmp_path / "l.csv", index=False)
    pd.DataFrame({"path": _labels(20, 0).path, "score": np.arange(20.0)}).to_csv(tmp_path / "r.csv", index=False)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "l.csv"), str(tmp_path / "r.csv"),
                          "--baseline-labels", str(tmp_path / "l.csv")], capture_output=True, text=True)
    assert out.returncode != 0 and "--within" in out.stderr


def test_cluster_bootstrap_batches_equal_one_resample_at_a_time():
    """strata._boot scores cluster resamples of one length as one batch: the same values as
    scoring each resample on its own."""
    from hitrank import strata
    from hitrank.metrics import top_metrics_batch

    rng = np.random.default_rng(3)
    y, p = rng.normal(size=60), rng.normal(size=60)
    idx = np.arange(60)
    units = strata._units(idx, np.array([f"g{i % 17}" for i in range(60)]))
    draws = strata._draw(idx, units, 300, rng)
    assert len({len(d) for d in draws}) > 1  # resamples of several lengths
    rho, ndcg = strata._boot(y, p, draws, top=0.1)
    one = [strata._row_spearman(y[d][None], p[d][None])[0] for d in draws]
    one_ndcg = [top_metrics_batch(y[d][None], p[d][None], 0.1)["ndcg"][0] for d in draws]
    np.testing.assert_allclose(rho, one, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ndcg, one_ndcg, rtol=0, atol=1e-12)
