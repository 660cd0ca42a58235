"""Cross-validation folds of spectrogram runs: grouped by artist or by any labels column
(``cv.group_by``, ``--group-by``), never splitting a group, the choice recorded in the run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from hitrank.config import load_config
from hitrank.cv import fold_groups, folds_of
from hitrank.data import Dataset
from hitrank.errors import ConfigError


def _dataset(n=60, columns=None):
    ids = np.array([f"s{i:03d}" for i in range(n)])
    return Dataset(ids, np.zeros((n, 1, 1), np.float16), np.arange(n, dtype=float),
                   np.array([f"artist{i // 3}" for i in range(n)]), {}, columns=columns or {})


def _assert_no_group_split(folds, groups):
    for tr, va, te in folds:
        assert not set(groups[te]) & (set(groups[tr]) | set(groups[va]))
        assert not set(groups[va]) & set(groups[tr])
    assert sorted(np.concatenate([te for _, _, te in folds])) == list(range(len(groups)))


@pytest.mark.parametrize("overrides,column", [(["cv.group_by=genre"], "genre"), (["cv.group_by=artist"], "artist"),
                                              (["cv.artist_aware=true"], "artist")])
def test_folds_keep_every_group_on_one_side(overrides, column, rng):
    genre = rng.choice([f"g{i}" for i in range(12)], 60)
    ds = _dataset(columns={"genre": genre})
    cfg = load_config("table1/a_simple_cnn_mid30", ["cv.folds=4", *overrides])
    groups = fold_groups(cfg, ds)
    np.testing.assert_array_equal(groups, genre if column == "genre" else ds.artists)
    _assert_no_group_split(folds_of(cfg, ds), groups)


def test_the_default_folds_are_the_papers_and_a_column_that_was_not_read_is_an_error():
    ds = _dataset()
    cfg = load_config("table1/a_simple_cnn_mid30", ["cv.folds=4"])
    assert fold_groups(cfg, ds) is None
    tests = [te for _, _, te in folds_of(cfg, ds)]
    assert {len(t) for t in tests} == {15}  # songs one by one: equal chunks
    with pytest.raises(ConfigError, match="cv.group_by='genre'.*--labels"):
        folds_of(load_config("table1/a_simple_cnn_mid30", ["cv.group_by=genre"]), ds)
    with pytest.raises(ConfigError, match="artist_aware"):
        load_config("table1/a_simple_cnn_mid30", ["cv.group_by=genre", "cv.artist_aware=true"])


def test_spectrogram_cv_groups_folds_by_a_labels_column(corpus, tmp_path, capsys):
    from hitrank.cli import main

    labels = pd.read_csv(corpus / "labels.csv")
    labels["session"] = [f"take{i % 5}" for i in range(len(labels))]  # 5 groups across artists
    labels["genre"] = np.where(np.arange(len(labels)) % 2 == 0, "pop", "rock")
    # a second row of one song_id is left out and named: the run goes on and exits 1 (some input failed)
    pd.concat([labels, labels.head(1)]).to_csv(corpus / "labels_session.csv", index=False)  # relative paths
    run = tmp_path / "cv"
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--labels", str(corpus / "labels_session.csv"),
                 "--out", str(run), "--group-by", "session", "--within", "genre", "--folds", "3",
                 "--set", "train.epochs=1", "-q"]) == 1
    assert "duplicate song_id (first on line 2)" in capsys.readouterr().err
    pred = pd.read_csv(run / "predictions.csv")
    session = labels.set_index("song_id").loc[pred.song_id, "session"].to_numpy()
    assert pd.Series(pred.fold.to_numpy()).groupby(session).nunique().max() == 1  # no group split
    assert json.loads((run / "summary.json").read_text())["group_by"] == "session"
    assert yaml.safe_load((run / "config.yaml").read_text())["cv"]["group_by"] == "session"
    # the stratum-mean baseline joins the random and oracle rows: in compare and in the report
    capsys.readouterr()
    assert main(["compare", str(run)]) == 0
    table = capsys.readouterr().out
    for row in ("cv: random ranking", "cv: oracle (the labels)", "cv: genre mean", "spearman within genre"):
        assert row in table and row in (run / "report.html").read_text()
    assert "genre" in pd.read_csv(run / "predictions.csv").columns
    # a store records only the artist: another column needs the labels CSV
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--store", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "x"), "--group-by", "session", "-q"]) == 2
    assert "--labels" in capsys.readouterr().err


def test_summary_json_is_strict_and_compare_reads_an_undefined_metric(tmp_path):
    """Fold records whose metric is undefined (NaN) leave its fold mean undefined:
    summary.json writes null (strict JSON, which jq and browsers read, where Python's json
    would write NaN), and the comparison table reads it back and prints nan."""
    from hitrank.cv import summarize
    from hitrank.cvreport import comparison_table, load_run
    from hitrank.metrics import ranking_metrics

    cfg = load_config("table1/a_simple_cnn_mid30")
    rng = np.random.default_rng(0)
    for f in range(2):
        y = rng.lognormal(0, 1, 20)
        pred = y + rng.normal(0, 0.1, 20)
        pd.DataFrame({"song_id": [f"s{f}_{i}" for i in range(20)], "fold": f, "hit_score": y,
                      "pred_z": pred, "pred": pred}).to_csv(tmp_path / f"pred_{f:02d}.csv", index=False)
        (tmp_path / f"fold_{f:02d}.json").write_text(json.dumps(
            {"fold": f, "n_test": 20, **ranking_metrics(y, pred, 0.1),
             "spearman": float("nan")}))
    summarize(cfg, tmp_path, 40, 1.0, "cpu")
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text
    summary = json.loads(text)
    assert summary["spearman_mean"] is None and summary["ndcg_mean"] is not None
    table = comparison_table([load_run(tmp_path)])
    assert table["spearman"].iloc[-1].startswith("nan")


def _labels_with(corpus, tmp_path, scores=None, n=None) -> str:
    """The corpus's labels (its first ``n`` songs) with other ``scores``, in ``tmp_path``."""
    (tmp_path / "audio").symlink_to(corpus / "audio")
    labels = pd.read_csv(corpus / "labels.csv").head(n)
    if scores is not None:
        labels["hit_score"] = scores
    labels.to_csv(tmp_path / "labels.csv", index=False)
    return str(tmp_path / "labels.csv")


@pytest.mark.parametrize("command", ["cv", "train"])
@pytest.mark.parametrize("case,message", [
    ("equal", "hit_score is 0.5 for every one of the 24 songs; nothing to rank: give scores that differ"),
    ("two", "only 2 song(s) with a usable hit_score; cv.folds=10 needs at least 20 (2 to rank in each fold's "
            "test and validation chunk): label at least 6 songs"),
    ("negative", "train.target='log' needs hit scores > 0"),
])
def test_labels_that_cannot_train_are_refused_before_extraction(corpus, tmp_path, capsys, monkeypatch,
                                                                command, case, message):
    """Before: every score equal gave exit 0 and nDCG 1.000 (cv); two songs named the cache
    store; a negative score under the log target was found after extraction."""
    from hitrank.cli import main

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    scores = {"equal": 0.5, "two": None, "negative": np.r_[-1.0, np.linspace(0.1, 1, 23)]}[case]
    labels = _labels_with(corpus, tmp_path, scores, 2 if case == "two" else None)
    assert main([command, "--labels", labels, "--out", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_folds_too_small_to_rank_name_a_number_of_folds(store, tmp_path, capsys):
    """10 songs in 10 folds left one song per test chunk: "need at least 2 songs to rank, got 1"
    after training (train: its validation chunk). Now a ConfigError before any training."""
    from hitrank.cli import main
    from hitrank.data import check_fold_sizes, make_folds

    with pytest.raises(ConfigError, match=r"cv.folds=10 cuts the 10 songs into chunks as small as 1 song\(s\), "
                                          r"but each test chunk needs at least 2 to rank: use fewer folds "
                                          r"\(e.g. --folds 5;"):
        check_fold_sizes(make_folds(10, 10, 0, ids=[f"s{i}" for i in range(10)]))
    assert check_fold_sizes(make_folds(10, 5, 0, ids=[f"s{i}" for i in range(10)]))
    with pytest.raises(ConfigError, match=r"label at least 6 songs"):  # 5 songs: no number of folds will do
        check_fold_sizes(make_folds(5, 3, 0, ids=[f"s{i}" for i in range(5)]))
    assert main(["train", "--store", str(store), "--out", str(tmp_path / "run"), "--folds", "20", "-q"]) == 2
    assert "use fewer folds" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_diverged_model_fails_the_run_and_says_why(store, tmp_path, capsys):
    """lr 1e30 makes every prediction NaN: before, cv and train exited 0 printing metrics of a
    ranking by nothing (a warning hidden by -q); now exit 1 and a line saying what to change."""
    from hitrank.cli import main

    for command in ("cv", "train"):
        out = tmp_path / command
        assert main([command, "--store", str(store), "--out", str(out), "--folds", "3", "--set", "train.epochs=1",
                     "--set", "train.lr=1e30", "-q"]) == 1
        err = capsys.readouterr().err
        assert "predictions are NaN or inf: the model diverged" in err and "--set train.lr=1e+29" in err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["non_finite"] == (summary["n_songs"] if command == "cv" else summary["n_val"]) > 0
    assert main(["cv", "--store", str(store), "--out", str(tmp_path / "fine"), "--folds", "3",
                 "--set", "train.epochs=1", "-q"]) == 0
    assert json.loads((tmp_path / "fine" / "summary.json").read_text())["non_finite"] == 0


def test_a_resumed_cv_trains_a_damaged_fold_again(store, tmp_path, caplog):
    """A fold whose record or checkpoint was cut short (a full disk, a partial copy) counted as
    done: a JSONDecodeError traceback (record), or success with a checkpoint that `rank`
    refused later. Now the fold is named and trained again."""
    import zipfile

    from hitrank.cli import main

    args = ["cv", "--store", str(store), "--out", str(tmp_path / "run"), "--folds", "3", "--set", "train.epochs=1", "-q"]
    assert main(args) == 0
    before = pd.read_csv(tmp_path / "run" / "predictions.csv")
    (tmp_path / "run" / "fold_01.json").write_text('{"ndcg": 0.3')
    pt = tmp_path / "run" / "fold_02.pt"
    pt.write_bytes(pt.read_bytes()[:1000])
    pred = tmp_path / "run" / "pred_00.csv"
    pred.write_text("\n".join(pred.read_text().splitlines()[:-2]) + "\n")  # two rows cut off: still parses
    assert main(args) == 0
    assert "fold 1's files" in caplog.text and "fold 2's files" in caplog.text and "fold 0's files" in caplog.text
    assert zipfile.is_zipfile(pt) and json.loads((tmp_path / "run" / "fold_01.json").read_text())["fold"] == 1
    after = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert len(after) == len(before) and set(after.song_id) == set(before.song_id)
