"""CV reports: `hitrank cv` writes report.html with plots; `hitrank compare` puts runs next to
the paper's rows with paired Wilcoxon tests over folds."""

from __future__ import annotations

import json

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


# ----------------------------------------------------------------------------- pairing by songs
def _fake_run(tmp_path, name, ids, folds, y, pred, top=0.1):
    """A run folder as `hitrank cv` writes it: predictions.csv, folds.csv, summary.json."""
    from hitrank.metrics import ranking_metrics

    run = tmp_path / name
    run.mkdir()
    pd.DataFrame({"song_id": ids, "fold": folds, "hit_score": y, "pred_z": pred, "pred": pred}
                 ).to_csv(run / "predictions.csv", index=False)
    rows = []
    for f in np.unique(folds):
        sel = folds == f
        rows.append({"fold": int(f), "n_test": int(sel.sum()),
                     **ranking_metrics(y[sel], pred[sel], top)})
    fr = pd.DataFrame(rows)
    fr.to_csv(run / "folds.csv", index=False)
    summary = {"name": name, "n_songs": len(ids), "folds": len(rows),
               **{f"{m}_mean": float(fr[m].mean()) for m in ("ndcg", "kendall", "spearman")},
               **{f"{m}_std": float(fr[m].std(ddof=0)) for m in ("ndcg", "kendall", "spearman")}}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.yaml").write_text(f"cv:\n  top_fraction: {top}\n")
    return run


def _corpus(n=600, k=5, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.array([f"s{i:04d}" for i in range(n)])
    y = rng.lognormal(0, 1.5, n)
    folds = np.arange(n) % k
    return rng, ids, y, folds


def test_paired_refuses_folds_with_other_test_songs(tmp_path):
    from hitrank.cvreport import load_run

    rng, ids, y, folds = _corpus()
    good = y * rng.lognormal(0, 0.3, len(y))
    a = load_run(_fake_run(tmp_path, "a", ids, folds, y, good))
    shuffled = rng.permutation(folds)  # same songs, other folds (another fold_seed)
    b = load_run(_fake_run(tmp_path, "b", ids, shuffled, y, rng.normal(size=len(y))))
    t = paired(a, b, "ndcg")
    assert t["n"] == 0 and np.isnan(t["p"]) and t["shared_songs"] == len(ids)
    assert "differ" in t["note"]
    # same folds except fold 0: Wilcoxon over the 4 folds with the same test songs
    partly = folds.copy()
    swap = np.flatnonzero(folds == 0)[:3], np.flatnonzero(folds == 1)[:3]
    partly[swap[0]], partly[swap[1]] = 1, 0
    c = load_run(_fake_run(tmp_path, "c", ids, partly, y, rng.normal(size=len(y))))
    t = paired(a, c, "ndcg")
    assert t["n"] == 3 and t["folds_differ"] == 2 and "3 of 5" in t["note"]


def test_paired_bootstrap_finds_the_better_run_and_is_seeded(tmp_path):
    from hitrank.cvreport import load_run, paired_bootstrap

    rng, ids, y, folds = _corpus()
    a = load_run(_fake_run(tmp_path, "a", ids, folds, y, y * rng.lognormal(0, 0.2, len(y))))
    b = load_run(_fake_run(tmp_path, "b", ids, folds, y, rng.normal(size=len(y))))
    boot = paired_bootstrap(a, b, n_boot=300, seed=1)
    for m in ("ndcg", "kendall", "spearman"):
        r = boot[m]
        assert r["lo"] > 0 and r["p_a_better"] > 0.99 and r["lo"] <= r["diff"] <= r["hi"], (m, r)
        assert r["n_songs"] == len(ids)
    assert paired_bootstrap(a, b, n_boot=300, seed=1) == boot
    assert paired_bootstrap(a, b, n_boot=300, seed=2)["ndcg"]["lo"] != boot["ndcg"]["lo"]
    same = paired_bootstrap(a, a, n_boot=100, seed=0)["kendall"]
    assert same["lo"] == same["hi"] == same["diff"] == 0.0 and same["p_a_better"] == 0.0


def test_paired_bootstrap_on_shared_songs_only(tmp_path):
    from hitrank.cvreport import load_run, paired_bootstrap

    rng, ids, y, folds = _corpus()
    pred = y * rng.lognormal(0, 0.5, len(y))
    a = load_run(_fake_run(tmp_path, "a", ids, folds, y, pred))
    keep = np.arange(len(ids)) >= 50  # b failed 50 songs: other test chunks
    b = load_run(_fake_run(tmp_path, "b", ids[keep], folds[keep], y[keep], pred[keep]))
    t = paired(a, b, "ndcg")
    assert t["shared_songs"] == len(ids) - 50 and t["n"] < 5 and "550 of 600/550" in t["note"]
    boot = paired_bootstrap(a, b, n_boot=200, seed=0)["ndcg"]
    assert boot["n_songs"] == len(ids) - 50
    assert boot["diff"] == 0.0 and boot["lo"] == boot["hi"] == 0.0  # same predictions on shared songs


def test_pairwise_columns_and_html(tmp_path):
    from hitrank.cvreport import PAIRWISE_COLUMNS, load_run, pairwise, write_cv_report

    rng, ids, y, folds = _corpus(n=300)
    runs = [load_run(_fake_run(tmp_path, n, ids, folds, y, y * rng.lognormal(0, s, len(y))))
            for n, s in (("a", 0.2), ("b", 1.0), ("c", 3.0))]
    table = pairwise(runs, n_boot=100)
    assert list(table.columns) == list(PAIRWISE_COLUMNS)
    assert len(table) == 3 * 3 and (table["songs"] == 300).all() and (table["folds"] == 5).all()
    page = write_cv_report(runs, tmp_path / "r.html").read_text()
    assert "bootstrap" in page and "P(a&gt;b)" in page


def test_compare_names_a_damaged_run_folder_and_a_file_given_as_one(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"name": "x", ')  # cut short
    (tmp_path / "run" / "folds.csv").write_text("fold,ndcg\n0,0.5\n")
    (tmp_path / "ranking.csv").write_text("rank,song_id\n")
    for run, reason in ((tmp_path / "run", "damaged run folder"), (tmp_path / "ranking.csv", "not a run folder"),
                        (tmp_path / "typo", "typo' does not exist")):
        assert main(["compare", str(run), str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and reason in err and "Traceback" not in err


@pytest.mark.parametrize("summary,reason", [
    ("[1, 2]", "summary.json holds a list, not a mapping"),
    ('{"name": "x", "ndcg_mean": "abc"}', "summary.json's ['ndcg_mean'] is not a number (or not a count)"),
    ('{"name": "x", "n_songs": -3, "folds": "three"}',  # an edited file: before, shown as it was
     "summary.json's ['n_songs', 'folds'] are not a number (or not a count)"),
])
def test_compare_names_a_summary_of_the_wrong_shape(tmp_path, capsys, summary, reason):
    """Before: AttributeError / ValueError tracebacks (exit 3)."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(summary)
    (tmp_path / "run" / "folds.csv").write_text("fold,ndcg\n0,0.5\n")
    assert main(["compare", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {str(tmp_path / 'run')!r}: damaged run folder: {reason}; run `hitrank cv` again"
