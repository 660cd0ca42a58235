"""End-to-end: train / cv / rank from configs on the session's tiny synthetic store."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from hitrank.checkpoint import load_checkpoint
from hitrank.cli import main
from hitrank.config import load_config
from hitrank.cv import run_cv
from hitrank.data import load_dataset
from hitrank.store import FeatureStore

QUICK = ["train.epochs=2", "train.patience=1", "cv.folds=3", "train.batch_size=8"]


def _cv(store, out, *overrides):
    cfg = load_config(None, [*QUICK, *overrides])
    ds, problems = load_dataset(FeatureStore.open(store))
    assert not problems
    return run_cv(cfg, ds, out, progress=False)


@pytest.mark.parametrize("sampling", ["none", "naive", "ab", "artist", "ab_artist"])
def test_cv_every_sampling(store, tmp_path, sampling):
    model = "simple_cnn" if sampling == "none" else "siamese"
    s = _cv(store, tmp_path / "run", f"model.name={model}", f"pairs.sampling={sampling}")
    assert s["folds"] == 3 and s["n_songs"] == 24
    for k in ("ndcg", "kendall", "spearman"):
        assert np.isfinite(s[f"{k}_mean"])
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    assert len(folds) == 3 and (folds.n_test == 8).all()
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert sorted(preds.song_id) == sorted(pd.read_csv(store / "manifest.csv").song_id)
    ck = load_checkpoint(tmp_path / "run" / "fold_00.pt")
    assert len(ck.members) == (2 if sampling == "ab_artist" else 1)
    if sampling == "ab_artist":
        assert sum(w for w, _ in ck.members) == pytest.approx(1.0)


def test_same_seed_same_metrics_and_resume(store, tmp_path):
    a = _cv(store, tmp_path / "a", "model.name=siamese", "pairs.sampling=ab")
    b = _cv(store, tmp_path / "b", "model.name=siamese", "pairs.sampling=ab")
    keys = [k for k in a if k.endswith(("_mean", "_std"))]
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    # a lost fold is recomputed identically on resume
    (tmp_path / "b" / "fold_01.json").unlink()
    c = _cv(store, tmp_path / "b", "model.name=siamese", "pairs.sampling=ab")
    assert {k: a[k] for k in keys} == {k: c[k] for k in keys}
    # the resumed run's time adds to the first one's (a resume never reports only its own part)
    assert c["seconds"] >= b["seconds"] > 0


def test_lost_fold_checkpoint_refused_then_retrained(store, tmp_path):
    from hitrank.errors import CheckpointError
    from hitrank.runinfo import find_checkpoints

    a = _cv(store, tmp_path / "a")
    (tmp_path / "a" / "fold_01.pt").unlink()
    # ranking with the two folds left would score differently from the run's evaluation: refused
    with pytest.raises(CheckpointError, match=r"fold_01\.pt missing \(2 of 3 fold checkpoints"):
        find_checkpoints(tmp_path / "a")
    # the same cv command retrains that fold (its record alone is not "done"), identically
    b = _cv(store, tmp_path / "a")
    assert len(find_checkpoints(tmp_path / "a")) == 3
    keys = [k for k in a if k.endswith(("_mean", "_std"))]
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_a_run_folder_of_other_songs_or_labels_is_refused_not_resumed(store, tmp_path):
    """Finished folds that tested other songs (songs added or removed since) or the same songs
    with other hit scores belong to another run: cv refuses the folder instead of printing
    their old metrics under the new song count."""
    from dataclasses import replace

    from hitrank.errors import StaleRunError

    cfg = load_config(None, QUICK)
    ds, _ = load_dataset(FeatureStore.open(store))
    run_cv(cfg, ds, tmp_path / "a", progress=False)
    keep = np.arange(len(ds)) != 5
    fewer = replace(ds, song_ids=ds.song_ids[keep], features=ds.features[keep],
                    scores=ds.scores[keep], artists=ds.artists[keep])
    with pytest.raises(StaleRunError, match=r"fold \d tested other songs \(\d+ test songs then, \d+ now; e\.g\. 'song_\d+' (gone|new)\).*another --out"):
        run_cv(cfg, fewer, tmp_path / "a", progress=False)
    relabelled = replace(ds, scores=ds.scores * 2)
    with pytest.raises(StaleRunError, match="other hit scores"):
        run_cv(cfg, relabelled, tmp_path / "a", progress=False)
    assert run_cv(cfg, ds, tmp_path / "a", progress=False)["n_songs"] == len(ds)  # the same: resumed
    # a song of a fold not yet finished relabelled: the run's fingerprint of all songs tells
    preds = pd.read_csv(tmp_path / "a" / "pred_02.csv", dtype={"song_id": str})
    (tmp_path / "a" / "fold_02.json").unlink()
    scores = ds.scores.copy()
    scores[list(ds.song_ids).index(preds.song_id[0])] += 1.0
    with pytest.raises(StaleRunError, match="trained on other songs or hit scores"):
        run_cv(cfg, replace(ds, scores=scores), tmp_path / "a", progress=False)


def test_checkpoint_is_plain_and_weights_only(store, tmp_path):
    _cv(store, tmp_path / "r")
    payload = torch.load(tmp_path / "r" / "fold_00.pt", weights_only=True)
    assert payload["feature_params"]["n_fft"] == 4096
    assert payload["members"][0]["model"] == "simple_cnn"
    assert json.dumps(payload["config"])  # plain types only


def test_cli_cv_train_rank(store, corpus, tmp_path, capsys):
    cfg = "configs/table1/a_simple_cnn_mid30.yaml"
    sets = sum((["--set", o] for o in QUICK), [])
    assert main(["cv", "--config", cfg, "--store", str(store), "--out", str(tmp_path / "cv"), "-q", *sets]) == 0
    assert "spearman@10%" in capsys.readouterr().out
    assert main(["train", "--config", cfg, "--store", str(store), "--out", str(tmp_path / "tr"), "-q", *sets]) == 0
    assert (tmp_path / "tr" / "model.pt").exists()
    assert "trained" in capsys.readouterr().out
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(3):
        (folder / f"s{i}.wav").symlink_to(corpus / "audio" / f"song_{i:05d}.wav")
    (folder / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    code = main(["rank", str(folder), "--model", str(tmp_path / "cv"), "--json", "-q",
                 "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "r.csv")])
    assert code == 1  # one file failed
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["ranking"]] == [1, 2, 3]
    assert out["ranking"][0]["score"] >= out["ranking"][-1]["score"]
    assert out["ranking"][0]["n_models"] == 3 and out["failures"][0]["song_id"] == "broken.wav"
    table = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    assert len(table) == 4 and list(table["rank"]) == ["1", "2", "3", ""]  # the failed file kept, last,
    assert table.song_id[3] == "broken.wav" and "cannot decode" in table.error[3]  # with its reason
    # the single trained model ranks too; a song removed from the folder is not ranked again
    (folder / "s0.wav").unlink()
    capsys.readouterr()
    assert main(["rank", str(folder), "--model", str(tmp_path / "tr" / "model.pt"), "-q", "--json",
                 "--cache", str(tmp_path / "cache")]) == 1
    assert sorted(r["song_id"] for r in json.loads(capsys.readouterr().out)["ranking"]) == ["s1.wav", "s2.wav"]


def test_cli_errors_are_one_line(tmp_path, capsys, store):
    assert main(["cv", "--config", "configs/table1/b_simple_cnn_mid30_tag.yaml", "--store", str(store),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()  # a store without tags does not serve a "+ tag" row
    assert err.startswith("error:") and "tags='segment'" in err and "\n" not in err
    # a Mid-30 store does not serve an HL-30 config
    assert main(["cv", "--config", "configs/table1/i_siamese_ab_hl30.yaml", "--store", str(store),
                 "--out", str(tmp_path / "x")]) == 2
    assert "segment='hl30'" in capsys.readouterr().err
    assert main(["cv", "--store", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "not a feature store" in capsys.readouterr().err


def test_hl30_row_from_labels_and_rank(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    sets = sum((["--set", o] for o in QUICK), [])
    assert main(["cv", "--config", "configs/table1/c_simple_cnn_hl30.yaml", "--labels",
                 str(corpus / "labels.csv"), "--out", str(tmp_path / "c"), "-q", *sets]) == 0
    payload = torch.load(tmp_path / "c" / "fold_00.pt", weights_only=True)
    assert payload["feature_params"]["segment"] == "hl30"
    assert payload["feature_params"]["highlighter"] == "fallback"
    capsys.readouterr()
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "a.wav").symlink_to(corpus / "audio" / "song_00005.wav")
    assert main(["rank", str(folder), "--model", str(tmp_path / "c"), "--json", "-q"]) == 0
    row = json.loads(capsys.readouterr().out)["ranking"][0]
    assert row["seg_end"] - row["seg_start"] == 30


def test_cv_killed_mid_fold_resumes_from_the_last_epoch(tmp_path, store, caplog):
    """SIGKILL during training: the rerun continues the interrupted fold from its last epoch
    state and ends with exactly the metrics of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    args = ["cv", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--store", str(store),
            "--folds", "3", "--set", "train.epochs=40", "--set", "train.patience=100", "-q"]
    assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    for attempt in range(3):  # a fast machine may finish fold 0 before the kill lands: retry
        out = tmp_path / f"killed{attempt}"
        proc = subprocess.Popen([sys.executable, "-m", "hitrank", *args, "--out", str(out)])
        state = out / "resume" / "fold_00" / "none_grid0.state"
        deadline = time.time() + 120
        while time.time() < deadline and not state.exists():
            time.sleep(0.002)
        assert state.exists(), "no training state was written"
        proc.send_signal(signal.SIGKILL)  # at once: after one or a few epochs of fold 0
        proc.wait(30)
        if not (out / "fold_00.json").exists():
            break
    assert not (out / "fold_00.json").exists()  # killed inside fold 0
    import logging

    caplog.set_level(logging.INFO, logger="hitrank.loop")
    assert main([*args, "--out", str(out)]) == 0
    assert any("resuming training from epoch" in r.getMessage() for r in caplog.records)
    cols = ["fold", "ndcg", "kendall", "spearman", "recall", "spearman_all", "best_epoch"]
    a = pd.read_csv(tmp_path / "clean" / "folds.csv")[cols]
    b = pd.read_csv(out / "folds.csv")[cols]
    pd.testing.assert_frame_equal(a, b)
    assert not (out / "resume" / "fold_00").exists()  # states are removed once a fold is done
    assert not (out / "resume").exists()  # and the folder once every fold is


def test_fold_processes_give_the_single_process_results(store, tmp_path):
    """cv.processes=2 (two one-thread workers, the CPU default) vs 1 (this process): the same
    folds and models; only float rounding of the thread count differs (stated tolerance: 1e-2
    on each prediction, 0.02 on each fold metric)."""
    import pandas as pd

    base = ["cv", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--store", str(store),
            "--folds", "3", "--set", "train.epochs=2", "-q"]
    assert main([*base, "--out", str(tmp_path / "one"), "--set", "cv.processes=1"]) == 0
    assert main([*base, "--out", str(tmp_path / "two"), "--set", "cv.processes=2"]) == 0
    a, b = (pd.read_csv(tmp_path / d / "predictions.csv").sort_values("song_id") for d in ("one", "two"))
    assert (a.fold.to_numpy() == b.fold.to_numpy()).all()
    assert abs(a.pred_z.to_numpy() - b.pred_z.to_numpy()).max() <= 1e-2
    fa, fb = (pd.read_csv(tmp_path / d / "folds.csv") for d in ("one", "two"))
    assert (abs(fa.ndcg - fb.ndcg) <= 0.02).all() and (fa.best_epoch == fb.best_epoch).all()


def test_cv_checks_the_config_once_and_splits_folds_in_one_place(store, tmp_path, monkeypatch):
    """The command layer checks a config (and computes its feature parameters) once per cv,
    and every fold split comes from cv.folds_of."""
    from hitrank import commands, config, cv

    checks, splits = [], []
    real_check, real_folds = config.check_available, cv.folds_of

    def check(cfg):
        checks.append(cfg.name)
        return real_check(cfg)

    def folds(cfg, ds):
        splits.append(cfg.name)
        return real_folds(cfg, ds)

    for module in (commands, cv):
        monkeypatch.setattr(module, "check_available", check)
    monkeypatch.setattr(cv, "folds_of", folds)
    res = commands.cross_validate("table1/a_simple_cnn_mid30", [*QUICK, "cv.processes=1"], store=store,
                                  out=tmp_path / "run", progress=False)
    assert res["summary"]["folds"] == 3 and (tmp_path / "run" / "report.html").is_file()
    assert checks == ["a_simple_cnn_mid30"] and splits == ["a_simple_cnn_mid30"]
