"""CV reports: `hitrank cv` writes report.html with plots; `hitrank compare` puts runs next to
the paper's rows with paired Wilcoxon tests over folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hitrank.cli import main
from hitrank.cvreport import PAPER, paired


def test_cv_writes_a_report_and_compare_prints_the_table(tmp_path, store, capsys):
    runs = []
    for cfg in ("a_simple_cnn_mid30", "i_siamese_ab_hl30"):
        out = tmp_path / f"<b>{cfg}"
        args = ["cv", "--config", f"configs/table1/{cfg}.yaml", "--store", str(store), "--out", str(out),
                "--folds", "3", "--set", "train.epochs=2", "-q"]
        if cfg.startswith("i_"):
            args += ["--set", "features.segment=mid30", "--set", "pairs.w=[0.5]"]
        assert main(args) == 0
        assert (out / "report.html").stat().st_size > 500 and (out / "report_folds.png").exists()
        runs.append(str(out))
    capsys.readouterr()
    assert main(["compare", *runs, "--html", str(tmp_path / "cmp.html")]) == 0
    out = capsys.readouterr().out
    assert "(a) paper" in out and "0.0725" in out and "(i) paper" in out and "wilcoxon p" in out
    page = (tmp_path / "cmp.html").read_text()
    assert "&lt;b&gt;a_simple_cnn_mid30" in page and "<b>a_simple" not in page
    assert (tmp_path / "cmp_folds.png").exists() and (tmp_path / "cmp_curves.png").exists()
    assert main(["compare", str(tmp_path)]) == 2  # not a run folder: one clear error


def test_paired_statistics():
    fa = pd.DataFrame({"fold": range(10), "ndcg": np.linspace(0.5, 0.6, 10)})
    fb = pd.DataFrame({"fold": range(10), "ndcg": np.linspace(0.3, 0.4, 10)})
    t = paired({"folds": fa}, {"folds": fb}, "ndcg")
    assert t["r"] == 1.0 and t["p"] < 0.01 and t["mean_diff"] == pytest.approx(0.2)
    t = paired({"folds": fa}, {"folds": fa}, "ndcg")
    assert t["p"] == 1.0 and t["r"] == 0.0
    assert len(PAPER) == 12
