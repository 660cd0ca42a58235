"""Descriptor branch: tables, configs, history without leakage, models, baselines, audio
descriptors, playlist fit, and the real Spotify tables when ../shared/data is present."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hitrank import descriptors
from hitrank.cli import main
from hitrank.descriptors.config import DataConfig, config_from_dict, load_descriptor_config
from hitrank.descriptors.cv import run_cv
from hitrank.descriptors.extractors import DEFAULT_EXTRACTOR, describe_audio
from hitrank.descriptors.history import earlier_songs, history_features
from hitrank.descriptors.learners import LEARNERS, LearnerSpec
from hitrank.descriptors.model import load_models
from hitrank.descriptors.prepare import prepare
from hitrank.descriptors.table import DESCRIPTORS, read_table, song_keys
from hitrank.errors import ConfigError, HitrankError, LabelsError

from .conftest import SHARED_DATA

CFG = "configs/descriptors/"
CFG_DIR = Path(descriptors.__file__).parent.parent / "configs" / "descriptors"
NEEDS_DATA = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                reason="../shared/data (real Spotify tables) is not present")


def planted_table(path, n=1200, seed=0, hit_rate=0.3):
    """A Spotify-layout table whose hits depend on danceability and energy (and noise)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "track": [f"song {i}" for i in range(n)],
        "artist": [f"artist {i % 150}" for i in range(n)],
        "danceability": rng.uniform(0, 1, n), "energy": rng.uniform(0, 1, n),
        "key": rng.integers(0, 12, n), "loudness": rng.uniform(-20, -3, n),
        "mode": rng.integers(0, 2, n), "speechiness": rng.uniform(0, 0.3, n),
        "acousticness": rng.uniform(0, 1, n), "instrumentalness": rng.uniform(0, 1, n),
        "liveness": rng.uniform(0, 1, n), "valence": rng.uniform(0, 1, n),
        "tempo": rng.uniform(60, 180, n), "duration_ms": rng.uniform(1.2e5, 3e5, n),
        "time_signature": 4, "decade": rng.choice([1960, 1970, 1980, 1990, 2000], n),
    })
    logit = 4 * (df.danceability - 0.5) + 3 * (df.energy - 0.5) + rng.normal(0, 0.7, n)
    df["target"] = (logit > np.quantile(logit, 1 - hit_rate)).astype(int)
    df["streams"] = np.exp(15 + 2 * logit).round()
    df.to_csv(path, index=False)
    return df


def quick(name, *extra):
    return load_descriptor_config(CFG + name + ".yaml", ["cv.folds=3", "train.epochs=15", *extra])


TREES = ("hist_gbdt", "random_forest")


def nonlinear_table(path, n=1500, seed=0):
    """Hits are songs of middling tempo AND extreme energy (either end): no linear boundary."""
    df = planted_table(path, n=n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    band = (df.tempo.between(90, 150)) & ((df.energy - 0.5).abs() > 0.25)
    df["target"] = (band ^ (rng.uniform(size=n) < 0.08)).astype(int)
    df.to_csv(path, index=False)
    return df


# ----------------------------------------------------------------------------- tables
def test_read_table_canonicalises_2023_layout(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(
        "track_name,artist(s)_name,streams,bpm,key,mode,danceability_%,energy_%,valence_%\n"
        "Caf\xe9,A,1\xa0000,120,C#,Major,80,50,40\n"
        'B,B,"2,500",90,,Minor,120,30,20\n'.encode("latin-1"))
    t = read_table(path)
    f = t.frame
    assert list(t.ids) == ["Caf\xe9", "B"] and list(t.artists) == ["A", "B"]
    assert f.tempo.tolist() == [120, 90] and f.key.iloc[0] == 1 and np.isnan(f.key.iloc[1])
    assert f["mode"].tolist() == [1, 0]
    assert f.danceability.iloc[0] == pytest.approx(0.8)
    assert np.isnan(f.danceability.iloc[1])  # 120% is out of range -> missing, not a model input
    assert set(t.present()) == {"tempo", "key", "mode", "danceability", "energy", "valence"}


def test_read_table_errors_name_the_file(tmp_path):
    with pytest.raises(LabelsError, match="no such table"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LabelsError, match="no descriptor columns"):
        read_table(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelsError, match="no .csv"):
        read_table(tmp_path / "empty")


def test_bad_targets_are_left_out_with_their_line(tmp_path):
    df = planted_table(tmp_path / "t.csv", n=60)
    df["target"] = df["target"].astype(object)
    df.loc[3, "target"] = "yes"
    df.loc[5, "target"] = 3
    df.to_csv(tmp_path / "t.csv", index=False)
    prep, problems = prepare(quick("topify_mlp", "data.keep_hits=1.0"), read_table(tmp_path / "t.csv"))
    assert len(prep.y) == 58 and set(np.unique(prep.y)) == {0.0, 1.0}
    assert any("line 5" in p and "'yes'" in p for p in problems)
    assert any("line 7" in p and "not 0 or 1" in p for p in problems)


def test_missing_feature_column_is_named(tmp_path):
    planted_table(tmp_path / "t.csv", n=40).drop(columns=["liveness"]).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(LabelsError, match="liveness"):
        prepare(quick("topify_mlp"), read_table(tmp_path / "t.csv"))


@pytest.mark.parametrize("override, match", [
    ("data.keep_hits=0", "keep_hits"), ("model.name=cnn", "model.name"),
    ("train.w=1.5", "train.w"), ("balance.method=adasyn", "balance.method"),
    ("data.bogus=1", "unknown key"), ("cv.folds=1", "cv.folds"),
    ("data.dedup=maybe", "data.dedup"), ("model.seeds=0", "model.seeds"),
    ("model.gbdt.max_leaf_nodes=1", "max_leaf_nodes"),
])
def test_descriptor_config_validation(override, match):
    with pytest.raises(ConfigError, match=match):
        load_descriptor_config(CFG + "topify_mlp.yaml", [override])


def test_history_lstm_needs_history():
    with pytest.raises(ConfigError, match="history"):
        load_descriptor_config(CFG + "niggli_lstm.yaml", ["data.history=false"])


def test_retired_train_device_is_refused_in_yaml_and_dropped_from_old_checkpoints(tmp_path):
    old = tmp_path / "old.yaml"  # a YAML written when descriptor configs had train.device
    old.write_text("branch: descriptors\ntrain:\n  epochs: 3\n  device: cpu\n")
    for path, overrides in ((old, []), (CFG + "topify_mlp.yaml", ["train.device=cuda"])):
        with pytest.raises(ConfigError, match=r"train\.device=.*always train on the CPU.*drop --device"):
            load_descriptor_config(path, overrides)
    cfg = quick("topify_mlp").to_dict()
    assert "device" not in cfg["train"]
    cfg["train"]["device"] = "cpu"  # what a checkpoint of an older hitrank holds
    assert config_from_dict(cfg) == quick("topify_mlp")
    for path in CFG_DIR.glob("*.yaml"):  # the packaged configs load
        assert load_descriptor_config(path).name == path.stem


def test_learners_are_specs_and_no_code_compares_their_names(tmp_path, monkeypatch):
    """What a model.name trains is read from its spec: a new spec trains with no other change,
    and no module of the branch compares a value with a learner's name."""
    assert {load_descriptor_config(p).model.name for p in CFG_DIR.glob("*.yaml")} <= set(LEARNERS)
    names = set(LEARNERS)
    for path in Path(descriptors.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = {c.value for side in [node.left, *node.comparators] for c in ast.walk(side)
                          if isinstance(c, ast.Constant)}
                assert not consts & names, f"{path.name}:{node.lineno} compares with a learner name"
    monkeypatch.setitem(LEARNERS, "wide_mlp", LearnerSpec("wide_mlp", many_seeds=True))
    with pytest.raises(ConfigError, match="model.seeds=2.*'mlp' or 'blend' or 'wide_mlp'"):
        quick("topify_mlp", "model.name=siamese_mlp", "model.seeds=2")
    planted_table(tmp_path / "t.csv", n=200)
    cfg = quick("topify_mlp", "model.name=wide_mlp", "model.seeds=2", "cv.folds=2",
                "train.epochs=2", "data.keep_hits=1.0")
    s = run_cv(cfg, read_table(tmp_path / "t.csv"), tmp_path / "run")
    assert s["choices"][0]["epochs"] and len(s["choices"][0]["epochs"]) == 2  # two seeds averaged
    assert load_models(tmp_path / "run")[0].parts["name"] == "descriptor_blend"


def test_one_default_extractor():
    from hitrank.cli import get_parser

    args = get_parser().parse_args(["descriptors", "songs", "--out", "d"])
    assert args.extractor == DEFAULT_EXTRACTOR == DataConfig().extractor == "hybrid"


# ----------------------------------------------------------------------------- history
def test_history_uses_strictly_earlier_songs_only():
    artists = np.array(["a", "a", "a", "b", "a", ""])
    order = np.array([1990, 1970, 1990, 1970, 1980, 1960.0])
    index, count = earlier_songs(artists, order, k=3)
    assert count.tolist() == [2, 0, 2, 0, 1, 0]  # same-decade songs are not history
    assert index[0].tolist() == [-1, 1, 4] and index[2].tolist() == [-1, 1, 4]
    assert index[4].tolist() == [-1, -1, 1]
    X = np.array([[1.0], [2.0], [3.0], [4.0], [6.0], [0.0]])
    y = np.array([1, 0, 1, 1, 1, 0.0])
    H, _ = history_features(X, y, artists, order)
    assert H[0].tolist() == pytest.approx([1, np.log1p(2), 0.5, 4.0])
    assert H[1].tolist() == [0, 0, 0, 0]
    # changing a song's own label never changes its own history features
    y2 = y.copy()
    y2[0] = 0
    assert np.array_equal(history_features(X, y2, artists, order)[0][0], H[0])


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("config", ["topify_mlp", "topify_smote", "topify_siamese", "niggli_balanced"])
def test_classifiers_learn_a_planted_signal(tmp_path, config):
    planted_table(tmp_path / "t.csv")
    cfg = quick(config, "data.keep_hits=1.0")
    s = run_cv(cfg, read_table(tmp_path / "t.csv"), tmp_path / "run")
    res = s["results"]
    assert res[cfg.name]["roc_auc"]["mean"] > 0.85
    assert res["majority"]["roc_auc"]["mean"] == 0.5
    assert list(res) == [cfg.name, "majority", "logistic", *TREES]  # tree baselines in every run
    assert all(res[t]["roc_auc"]["mean"] > 0.8 for t in TREES)
    assert set(pd.read_csv(tmp_path / "run" / "folds.csv").model) == set(res)
    assert res[cfg.name]["precision@10%"]["mean"] > 2 * s["prevalence"]
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert len(pred) == 1200 and pred.row.is_unique  # every real row tested once, no SMOTE rows
    assert pred.prediction.between(0, 1).all()
    imp = pd.read_csv(tmp_path / "run" / "importance.csv")
    assert set(imp.input.head(2)) == {"danceability", "energy"}
    assert (tmp_path / "run" / "importance.png").stat().st_size > 1000


def test_regression_and_history_models(tmp_path):
    planted_table(tmp_path / "t.csv")
    table = read_table(tmp_path / "t.csv")
    s = run_cv(quick("streams_mlp", "train.epochs=30"), table, tmp_path / "reg")
    assert s["results"]["streams_mlp"]["spearman_all"]["mean"] > 0.7
    assert s["results"]["mean"]["spearman_all"]["mean"] == 0
    assert list(s["results"]) == ["streams_mlp", "mean", "linear", *TREES]
    assert all(s["results"][t]["spearman_all"]["mean"] > 0.7 for t in TREES)
    s = run_cv(quick("niggli_lstm", "data.keep_hits=1.0"), table, tmp_path / "lstm")
    assert s["results"]["niggli_lstm"]["roc_auc"]["mean"] > 0.75
    assert set(TREES) <= set(s["results"])
    assert "importance" not in s


def test_cv_resumes_and_is_deterministic(tmp_path):
    planted_table(tmp_path / "t.csv", n=300)
    table = read_table(tmp_path / "t.csv")
    cfg = quick("topify_mlp", "train.epochs=3", "data.keep_hits=1.0")
    a = run_cv(cfg, table, tmp_path / "a")
    b = run_cv(cfg, table, tmp_path / "b")
    assert a["results"] == b["results"]
    (tmp_path / "a" / "fold_01.json").unlink()
    again = run_cv(cfg, table, tmp_path / "a")
    assert again["results"] == a["results"]


def test_holdout_by_decade(tmp_path):
    df = planted_table(tmp_path / "t.csv", n=600)
    s = run_cv(quick("topify_mlp", "cv.split=holdout", "data.keep_hits=1.0"), read_table(tmp_path / "t.csv"),
               tmp_path / "run")
    assert s["folds"] == 1
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert len(pred) == int((df.decade == 2000).sum())


def test_cli_cv_train_predict(tmp_path, capsys):
    planted_table(tmp_path / "t.csv", n=400)
    assert main(["cv", "--config", CFG + "topify_mlp.yaml", "--data", str(tmp_path / "t.csv"),
                 "--out", str(tmp_path / "run"), "--folds", "3", "--set", "train.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "roc_auc" in out and "logistic" in out and "majority" in out
    assert "hist_gbdt" in out and "random_forest" in out
    assert main(["train", "--config", CFG + "topify_mlp.yaml", "--data", str(tmp_path / "t.csv"),
                 "--out", str(tmp_path / "m"), "--set", "train.epochs=3"]) == 0
    new = pd.read_csv(tmp_path / "t.csv").drop(columns=["target"]).head(25)
    new["energy"] = new["energy"].astype(object)
    new.loc[2, "energy"] = "n/a"  # a bad cell is imputed, the row is still scored
    new.to_csv(tmp_path / "new.csv", index=False)
    for model in ("run", "m"):
        assert main(["predict", "--model", str(tmp_path / model), "--data", str(tmp_path / "new.csv"),
                     "--out", str(tmp_path / f"p_{model}.csv")]) == 0
        p = pd.read_csv(tmp_path / f"p_{model}.csv")
        assert len(p) == 25 and p.hit_probability.between(0, 1).all()
    assert pd.read_csv(tmp_path / "p_run.csv").n_models.iloc[0] == 3
    # a folder of tables, one unreadable: the others are scored, the bad one named, exit 1 (before: exit 2, nothing)
    (tmp_path / "tables").mkdir()
    new.to_csv(tmp_path / "tables" / "a.csv", index=False)
    (tmp_path / "tables" / "b.csv").write_text("energy,danceability\n")  # a header and no row
    new.head(3).to_csv(tmp_path / "tables" / "c.csv", index=False)
    assert main(["predict", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "tables"),
                 "--out", str(tmp_path / "p_tables.csv")]) == 1
    out, err = capsys.readouterr()
    assert f"1 table failed:\n  {str(tmp_path / 'tables' / 'b.csv')!r}: has no rows" in err
    p = pd.read_csv(tmp_path / "p_tables.csv")
    assert "scored 28 rows" in out and len(p) == 28
    # each row says which table and line it came from (row alone counts through every table)
    assert list(p.columns[:5]) == ["row", "source", "line", "id", "artist"]
    assert list(p.source) == [str(tmp_path / "tables" / "a.csv")] * 25 + [str(tmp_path / "tables" / "c.csv")] * 3
    assert list(p.line) == [*range(2, 27), 2, 3, 4] and list(p.row) == list(range(1, 29))
    assert np.allclose(p.hit_probability[25:], p.hit_probability[:3])  # the same songs, the same scores
    # an --out that is the scored table, or a run folder of another command or kind: refused, nothing lost
    before = (tmp_path / "new.csv").read_bytes(), (tmp_path / "run" / "summary.json").read_bytes()
    assert main(["predict", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "new.csv"),
                 "--out", str(tmp_path / "new.csv")]) == 2
    assert "is a table being scored (--data): it would be replaced" in capsys.readouterr().err
    assert main(["train", "--config", CFG + "topify_mlp.yaml", "--data", str(tmp_path / "t.csv"),
                 "--out", str(tmp_path / "run"), "--set", "train.epochs=3"]) == 2
    assert (f"{str(tmp_path / 'run')!r} holds a descriptor `cv` run of 'topify_mlp'; writing a descriptor "
            "`train` run of 'topify_mlp' there would replace or mix its files") in capsys.readouterr().err
    from hitrank.errors import StaleRunError
    from hitrank.runinfo import check_reuse

    with pytest.raises(StaleRunError, match="holds a descriptor `train` run of 'topify_mlp'; writing a spectrogram"):
        check_reuse(tmp_path / "m", "spectrogram", "cv", "a_simple_cnn_mid30")  # what cv and train call first
    check_reuse(tmp_path / "m", "descriptor", "train", "topify_mlp")  # the same run: it may resume there
    assert ((tmp_path / "new.csv").read_bytes(), (tmp_path / "run" / "summary.json").read_bytes()) == before
    # a spectrogram config with --data is refused with a pointer to the right configs
    assert main(["cv", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--data",
                 str(tmp_path / "t.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "configs/descriptors" in capsys.readouterr().err


# ----------------------------------------------------------------------------- audio
def _click_track(bpm=120.0, seconds=20.0, sr=22050):
    y = np.zeros(int(seconds * sr), np.float32)
    step = int(round(60 / bpm * sr))
    click = np.exp(-np.arange(800) / 80.0) * np.sin(2 * np.pi * 1500 * np.arange(800) / sr)
    for i in range(0, len(y) - 800, step):
        y[i:i + 800] += click.astype(np.float32)
    return 0.5 * y


def test_describe_audio_measures_what_it_says():
    sr = 22050
    d = describe_audio(_click_track(120.0), sr)
    assert d["tempo"] == pytest.approx(120, rel=0.05)
    assert d["danceability"] > 0.5
    t = np.arange(20 * sr) / sr
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0, 523.25)).astype(np.float32)
    c = describe_audio(0.1 * chord, sr)
    assert (c["key"], c["mode"]) == (0.0, 1.0)  # C major
    tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert describe_audio(tone, sr)["loudness"] == pytest.approx(10 * np.log10(0.1 ** 2 / 2), abs=0.2)
    for name, (lo, hi) in DESCRIPTORS.items():
        assert lo <= d[name] <= hi, name


def test_descriptors_folder_resumes_and_reports_failures(tmp_path, capsys):
    folder = tmp_path / "songs"
    folder.mkdir()
    for i, bpm in enumerate((90, 120, 150)):
        sf.write(folder / f"s{i}.wav", _click_track(bpm, 8.0), 22050)
    sf.write(folder / "silent.wav", np.zeros(22050 * 5, np.float32), 22050)
    (folder / "broken.mp3").write_bytes(b"not audio at all")
    sf.write(folder / "short.wav", _click_track(120, 0.5), 22050)
    out = tmp_path / "desc"
    assert main(["descriptors", str(folder), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "3 songs failed" in err and "broken.mp3" in err and "silent" in err and "short" in err
    d = pd.read_csv(out / "descriptors.csv")
    assert sorted(d.song_id) == ["s0.wav", "s1.wav", "s2.wav"]
    assert len(pd.read_csv(out / "failures.csv")) == 3
    # a second run only retries the failures; the journal keeps the finished songs
    lines = (out / "descriptors.jsonl").read_text().splitlines()
    assert main(["descriptors", str(folder), "--out", str(out)]) == 1
    assert "0 described, 3 already done, 3 failed" in capsys.readouterr().out
    assert (out / "descriptors.jsonl").read_text().splitlines() == lines
    # a journal line cut by a kill is ignored and that song redone
    (out / "descriptors.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])
    main(["descriptors", str(folder), "--out", str(out)])
    assert "1 described, 2 already done" in capsys.readouterr().out
    assert len(pd.read_csv(out / "descriptors.csv")) == 3


def test_rank_folder_with_descriptor_model(tmp_path, capsys):
    folder = tmp_path / "songs"
    folder.mkdir()
    rows = []
    for i, bpm in enumerate(np.linspace(70, 170, 12)):
        sf.write(folder / f"s{i:02d}.wav", _click_track(bpm, 6.0), 22050)
        rows.append({"song_id": f"s{i:02d}", "path": f"songs/s{i:02d}.wav", "hit_score": float(bpm) / 1000})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    assert main(["descriptors", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "d")]) == 0
    assert main(["train", "--config", CFG + "audio_descriptors.yaml", "--data",
                 str(tmp_path / "d" / "descriptors.csv"), "--out", str(tmp_path / "m"),
                 "--set", "train.epochs=5", "--set", "cv.val_fraction=0.2"]) == 0
    capsys.readouterr()
    assert main(["rank", str(folder), "--model", str(tmp_path / "m"), "--json",
                 "--cache", str(tmp_path / "cache")]) == 0
    ranking = json.loads(capsys.readouterr().out)["ranking"]
    assert sorted(r["song_id"] for r in ranking) == [f"s{i:02d}.wav" for i in range(12)]
    assert [r["rank"] for r in ranking] == list(range(1, 13))


# ----------------------------------------------------------------------------- playlist fit
def test_playlist_fit_separates_two_styles():
    from hitrank.descriptors.fit import PlaylistModel, evaluate_two_playlists

    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (300, 5))
    b = rng.normal(0, 1, (300, 5)) + np.array([1.5, 0, 0, 0, 0])
    res = evaluate_two_playlists(a, b, folds=5)
    assert res["fit"]["accuracy"] > 0.7 and res["logistic"]["accuracy"] > 0.7
    assert res["chance"]["accuracy"] == 0.5
    same = evaluate_two_playlists(a, rng.normal(0, 1, (300, 5)), folds=5)
    assert abs(same["fit"]["accuracy"] - 0.5) < 0.1  # no difference: chance, as the seed found
    m = PlaylistModel(a)
    assert m.fit(np.zeros((1, 5)))[0] > m.fit(np.full((1, 5), 3.0))[0]


def test_cli_fit_ranks_candidates(tmp_path, capsys):
    ref = planted_table(tmp_path / "ref.csv", n=100)
    cand = ref.head(20).copy()
    cand.loc[0, "loudness"] = 100  # out of range: imputed, still ranked
    cand.loc[1, ["danceability", "energy", "tempo"]] = [1.0, 1.0, 299]  # an outlier fits worst
    cand.to_csv(tmp_path / "cand.csv", index=False)
    assert main(["fit", "--reference", str(tmp_path / "ref.csv"), "--candidates", str(tmp_path / "cand.csv"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["ranking"]) == 20 and out["ranking"][-1]["id"] == "song 1"


def test_fit_refuses_sources_of_different_extractors_and_names_shared_songs(tmp_path, capsys, caplog):
    """Before: a librosa descriptors.csv was fitted against audio described by hybrid (other
    scales; fit scores near -680), and negatives equal to the reference went unremarked."""
    for name, extractor in (("a", "librosa"), ("b", "hybrid"), ("c", "librosa")):
        (tmp_path / name).mkdir()
        planted_table(tmp_path / name / "descriptors.csv", n=60, seed=ord(name))
        (tmp_path / name / "descriptors.json").write_text(json.dumps({"tags": False, "extractor": extractor}))
    a, b, c = (str(tmp_path / n / "descriptors.csv") for n in "abc")
    assert main(["fit", "--reference", a, "--candidates", b, "-q"]) == 2
    err = capsys.readouterr().err
    assert "described by different extractors" in err and "--extractor librosa" in err and "--extractor hybrid" in err
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        assert main(["fit", "--reference", a, "--candidates", c, "--negatives", a, "-q", "--json"]) == 0
    assert "60 song(s) are in both --reference and --negatives" in caplog.text


# ----------------------------------------------------------------------------- real tables
@NEEDS_DATA
def test_real_hit_predictor_table_beats_majority(tmp_path):
    table = read_table(SHARED_DATA / "spotify_hit_predictor")
    assert len(table) == 34708 and set(table.present()) == set(DESCRIPTORS)
    s = run_cv(quick("topify_mlp", "train.epochs=3"), table, tmp_path / "run")
    r = s["results"]
    assert r["topify_mlp"]["roc_auc"]["mean"] > 0.75 > r["majority"]["roc_auc"]["mean"]


@NEEDS_DATA
def test_real_streams_table_reports_its_corrupt_row(tmp_path):
    table = read_table(SHARED_DATA / "spotify_2023")
    assert len(table) == 953 and "loudness" not in table.present()
    prep, problems = prepare(quick("streams_mlp", "data.dedup=none"), table)
    assert len(prep.y) == 952 and len(problems) == 1 and "streams=" in problems[0]
    assert {"in_spotify_playlists", "in_deezer_playlists"}.isdisjoint(prep.names)
    prep, _ = prepare(quick("streams_mlp"), table)  # 4 songs listed twice (same artist + title)
    assert len(prep.y) == 948 and prep.dedup["rows_removed"] == 4
    prep, _ = prepare(quick("streams_with_context"), table)
    assert prep.names[-2:] == ["released_year", "artist_count"]


@NEEDS_DATA
def test_real_hit_predictor_duplicates_are_removed_before_splitting():
    table = read_table(SHARED_DATA / "spotify_hit_predictor")
    keys, found = song_keys(table, "uri")
    assert found["uri"] == "uri" and len(keys) - len(np.unique(keys)) == 410
    cfg = quick("hit_descriptors", "cv.split=holdout")
    prep, _ = prepare(cfg, table)
    d = prep.dedup
    assert d["rows_removed"] == 644 and len(prep.y) == 34708 - 644
    assert 0.9 < d["copies_agree_on_target"] < 1
    assert len(np.unique(prep.songs)) == len(prep.songs)
    assert prep.names[-2:] == ["chorus_hit", "sections"]


def test_no_table_is_a_clear_error():
    with pytest.raises(HitrankError):
        read_table([])


# ----------------------------------------------------------------------------- issue 19
def _with_copies(path, n=600):
    """A planted table plus copies: 30 songs of the 1960s listed again in the 2000s (same URI),
    10 more under a new URI (same artist, title and duration), 5 twice in the same decade."""
    df = planted_table(path, n=n)
    df["uri"] = [f"spotify:track:{i}" for i in range(n)]
    early = df[df.decade == 1960].index
    again = df.loc[early[:30]].assign(decade=2000)
    moved = df.loc[early[30:40]].assign(decade=2000, uri=[f"spotify:track:new{i}" for i in range(10)])
    twice = df.loc[early[40:45]]
    out = pd.concat([df, again, moved, twice], ignore_index=True)
    out.to_csv(path, index=False)
    return out, set(early[:45])


def test_duplicates_are_removed_before_every_split(tmp_path):
    df, copied = _with_copies(tmp_path / "t.csv")
    table = read_table(tmp_path / "t.csv")
    keys, _ = song_keys(table)
    assert len(np.unique(keys)) == 600 and len(np.unique(song_keys(table, "uri")[0])) == 610
    cfg = quick("topify_mlp", "data.keep_hits=1.0", "train.epochs=2")
    prep, _ = prepare(cfg, table)
    assert prep.dedup["rows_removed"] == 45 and prep.dedup["songs_with_copies"] == 45
    assert prep.dedup["copies_agree_on_target"] == 1.0
    assert set(prep.rows) == set(range(600))  # the earliest copy (the 1960s row) is kept
    for split in ("kfold", "holdout"):
        s = run_cv(load_descriptor_config(CFG + "topify_mlp.yaml", [
            "data.keep_hits=1.0", "train.epochs=2", "cv.folds=3", f"cv.split={split}"]),
            table, tmp_path / split)
        assert s["dedup"]["rows_removed"] == 45
        pred = pd.read_csv(tmp_path / split / "predictions.csv")
        song = keys[pred.row.to_numpy() - 1]
        assert len(np.unique(song)) == len(pred)  # every song tested once at most
        for f in pred.fold.unique():  # no song on both sides of any split
            test_rows = set(pred.row[pred.fold == f] - 1)
            train_songs = {keys[r] for r in prep.rows if r not in test_rows}
            assert not set(song[pred.fold.to_numpy() == f]) & train_songs
    held = pd.read_csv(tmp_path / "holdout" / "predictions.csv")
    assert len(held) == int((df.decade[:600] == 2000).sum())  # the 2000s copies are gone


def test_history_excludes_copies_of_the_song():
    artists = np.array(["a", "a", "a", "a"])
    order = np.array([1960, 1970, 2000, 1980.0])
    songs = np.array([7, 8, 7, 9])  # row 2 is row 0 listed again in a later decade
    index, count = earlier_songs(artists, order, k=3, songs=songs)
    assert count.tolist() == [0, 1, 2, 2] and index[2].tolist() == [-1, 1, 3]
    X = np.array([[1.0], [2.0], [1.0], [4.0]])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    H, _ = history_features(X, y, artists, order, songs)
    assert H[2].tolist() == pytest.approx([1, np.log1p(2), 0.0, 3.0])  # not its own hit
    H0, _ = history_features(X, y, artists, order)  # without song keys the copy would count
    assert H0[2][2] == pytest.approx(1 / 3)


def test_history_runs_drop_copies_before_history(tmp_path):
    _with_copies(tmp_path / "t.csv")
    prep, _ = prepare(quick("niggli_history", "data.keep_hits=1.0"), read_table(tmp_path / "t.csv"))
    assert prep.dedup["rows_removed"] == 45
    assert len(np.unique(prep.songs)) == len(prep.songs)


def test_gbdt_checkpoint_round_trip_is_identical(tmp_path):
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from hitrank.models.descriptor import TreeEnsemble, hgb_tree_arrays

    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 5))
    X[::9, 2] = np.nan
    y = ((X[:, 0] * X[:, 1] + np.nan_to_num(X[:, 2])) > 0).astype(int)
    for est, ref in ((HistGradientBoostingClassifier(max_iter=60, random_state=0), "decision_function"),
                     (HistGradientBoostingRegressor(max_iter=40, random_state=0), "predict")):
        est.fit(X, y)
        _, trees = TreeEnsemble.from_arrays(hgb_tree_arrays(est), 5)
        assert np.array_equal(trees(torch.from_numpy(X)).numpy(), getattr(est, ref)(X))
    # through hitrank: train, save, load (weights_only), predict: the same numbers
    nonlinear_table(tmp_path / "t.csv", n=600)
    for m in ("gbdt", "blend"):
        assert main(["train", "--config", CFG + "hit_descriptors.yaml", "--data", str(tmp_path / "t.csv"),
                     "--out", str(tmp_path / m), "--set", f"model.name={m}", "--set", "model.seeds=1",
                     "--set", "train.epochs=3", "--set", "model.gbdt.max_iter=80"]) == 0
        payload = torch.load(tmp_path / m / "model.pt", weights_only=True)  # plain tensors only
        assert payload["model"] in ("gbdt_trees", "descriptor_blend")
        table = read_table(tmp_path / "t.csv")
        model = load_models(tmp_path / m)[0]
        prep, _ = prepare(model.cfg, table, columns=model.columns, need_target=False)
        first = model.predict(prep)
        model.save(tmp_path / m / "again.pt", {})
        again = load_models(tmp_path / m / "again.pt")[0].predict(prep)
        assert np.array_equal(first, again) and np.ptp(first) > 0
        assert main(["predict", "--model", str(tmp_path / m), "--data", str(tmp_path / "t.csv"),
                     "--out", str(tmp_path / f"{m}.csv")]) == 0
        assert np.allclose(pd.read_csv(tmp_path / f"{m}.csv").hit_probability, first)


def test_headline_model_beats_logistic_on_a_nonlinear_signal(tmp_path):
    nonlinear_table(tmp_path / "t.csv")
    cfg = quick("hit_descriptors", "model.seeds=1", "train.epochs=20", "model.gbdt.max_iter=300")
    s = run_cv(cfg, read_table(tmp_path / "t.csv"), tmp_path / "run")
    r = s["results"]
    assert r["hit_descriptors"]["roc_auc"]["mean"] > r["logistic"]["roc_auc"]["mean"] + 0.2
    assert r["hit_descriptors"]["roc_auc"]["mean"] > 0.85
    assert len(s["choices"]) == 3 and all(0 <= c["gbdt_weight"] <= 1 for c in s["choices"])
    assert set(TREES) <= set(r)


def test_playlist_fit_classifier_never_below_logistic():
    from hitrank.descriptors.fit import choose_classifier, evaluate_two_playlists

    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (300, 4))
    ring = rng.normal(0, 1, (300, 4))
    ring[:, :2] *= 2.5 / np.linalg.norm(ring[:, :2], axis=1, keepdims=True)  # same mean, a ring
    res = evaluate_two_playlists(a, ring, folds=3)
    assert res["logistic"]["roc_auc"] < 0.65 < res["chosen"]["roc_auc"]  # linear fails, choice not
    assert res["choices"]["logistic"] < 3
    shifted = rng.normal(0, 1, (300, 4)) + np.array([0.8, 0, 0, 0])  # linear: logistic is right
    res = evaluate_two_playlists(a, shifted, folds=3)
    assert res["chosen"]["roc_auc"] >= res["logistic"]["roc_auc"] - 0.01
    assert res["chosen"]["accuracy"] >= res["logistic"]["accuracy"] - 0.02
    clf = choose_classifier(np.vstack([a, ring]), np.r_[np.ones(300), np.zeros(300)])
    assert clf.name != "logistic" and set(clf.report["val_roc_auc"]) == {"logistic", "dnn", "gbdt"}
    with pytest.raises(HitrankError, match="at least 5"):
        choose_classifier(a[:8], np.r_[np.ones(6), np.zeros(2)])


def test_fit_with_negatives_ranks_by_a_classifier(tmp_path):
    from hitrank.descriptors.fit import fit_sources

    df = planted_table(tmp_path / "all.csv", n=400)
    df[df.target == 1].to_csv(tmp_path / "ref.csv", index=False)
    df[df.target == 0].to_csv(tmp_path / "neg.csv", index=False)
    cand = df.head(60)
    cand.to_csv(tmp_path / "cand.csv", index=False)
    ranking, n_ref, failures = fit_sources(tmp_path / "ref.csv", tmp_path / "cand.csv",
                                           negatives=tmp_path / "neg.csv", progress=False)
    assert n_ref == int(df.target.sum()) and not failures
    assert ranking.attrs["model"] in ("logistic", "dnn", "gbdt") and ranking.fit.between(0, 1).all()
    hits = set(cand.track[cand.target == 1])
    top = ranking.head(len(hits)).id
    assert top.isin(hits).mean() > 0.7
    plain, _, _ = fit_sources(tmp_path / "ref.csv", tmp_path / "cand.csv", progress=False)
    assert plain.attrs["model"] == "fit_rule"


def test_a_descriptor_constant_over_the_reference_takes_no_part_in_the_fit():
    from hitrank.descriptors.fit import PlaylistModel

    rng = np.random.default_rng(0)
    ref = np.column_stack([rng.normal(size=20), np.full(20, 30000.0)])  # e.g. every preview lasts 30 s
    model = PlaylistModel(ref)
    same = np.array([[0.0, 30000.0], [0.0, 31000.0]])  # the second is one second longer
    far = np.array([[5.0, 30000.0]])
    fit = model.fit(np.vstack([same, far]))
    assert fit[0] == pytest.approx(fit[1]) and fit[2] < fit[0]


def test_cli_fit_says_when_no_candidate_file_could_be_described(tmp_path, capsys):
    planted_table(tmp_path / "ref.csv", n=100)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "memo.m4a").write_bytes(bytes(300))
    (bad / "empty.wav").write_bytes(b"")
    assert main(["fit", "--reference", str(tmp_path / "ref.csv"), "--candidates", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    # before: the message named the cache's internal descriptors.csv ("No columns to parse")
    assert f"{str(bad)!r}: none of its 2 audio file(s) could be described (first: " in err
    assert "descriptors.csv" not in err
