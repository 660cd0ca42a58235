"""`hitrank demo` (the README's main job), at a tiny size: it runs end to end and reports
intervals, the random baseline, the oracle and the held-out ranks side by side."""

import pandas as pd
import pytest

from hitrank.cli import main


@pytest.mark.slow  # minutes on 2 cores: run by .ci/run with -m 'slow or scale'
def test_demo_reports_intervals_baselines_and_heldout_ranks(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path / "d"), "--songs", "24", "--heldout", "12", "--folds", "3",
            "--epochs", "1", "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pooled out-of-fold" in out and "random ranking" in out and "oracle (latents)" in out
    assert "Held-out check" in out and "predicted rank  true rank" in out
    assert out.count("[") >= 8  # every model and random cell has an interval
    for name in ("heldout_ranking.csv", "heldout_report.html", "cv_report.html"):
        assert (tmp_path / "d" / name).is_file()
    assert main(args) == 0  # a second run reuses everything
    # other settings: the demo's earlier run is trained again, not reported as this one's
    more = ["demo", "--out", str(tmp_path / "d"), "--songs", "30", "--heldout", "12", "--folds", "3",
            "--epochs", "1", "-q"]
    assert main(more) == 0
    assert "Cross-validated on 30 songs" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "d" / "runs" / "simple_cnn_hl30" / "predictions.csv")) == 30
