"""Closest known songs (hitrank.neighbours, `rank --nearest`, `hitrank similar`): nearest
neighbours by cosine similarity, the fit to a reference catalogue, and the near-duplicate of a
song found first on real (synthesised) audio."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hitrank import neighbours
from hitrank.cli import main
from hitrank.errors import ParameterError


def _unit(rng, n, d):
    return neighbours.unit_rows(rng.normal(size=(n, d)))


def test_nearest_is_the_brute_force_order(rng):
    C, Q = _unit(rng, 300, 16), _unit(rng, 40, 16)
    idx, sim = neighbours.nearest(Q, C, 7)
    full = Q @ C.T
    assert np.array_equal(idx, np.argsort(-full, axis=1, kind="stable")[:, :7])
    assert np.allclose(sim, np.sort(full, axis=1)[:, ::-1][:, :7], atol=1e-6)
    # a song is not its own neighbour when the query is the catalogue
    idx, _ = neighbours.nearest(C, C, 3, exclude_self=True)
    assert not (idx == np.arange(len(C))[:, None]).any()
    # k larger than the catalogue: all of it
    assert neighbours.nearest(Q, C[:4], 10)[0].shape == (40, 4)


def test_split_cell_reads_back_what_neighbour_columns_write():
    assert neighbours.split_cell("a;b ; c") == ["a", "b", "c"] and neighbours.split_cell("") == []
    assert neighbours.split_cell(float("nan")) == [] and neighbours.split_cell(None) == []


def test_unit_rows_keeps_zero_rows(rng):
    V = np.vstack([rng.normal(size=(2, 5)), np.zeros((1, 5))])
    U = neighbours.unit_rows(V)
    assert np.allclose(np.linalg.norm(U[:2], axis=1), 1) and not U[2].any()


def test_fit_percentile_counts_ties_half():
    ref = np.array([0.1, 0.2, 0.2, 0.4])
    got = neighbours.fit_percentile(np.array([0.0, 0.2, 0.5, np.nan]), ref)
    assert np.allclose(got[:3], [0.0, 50.0, 100.0]) and np.isnan(got[3])
    assert np.isnan(neighbours.fit_percentile(np.array([0.3]), np.array([]))).all()


def test_neighbour_columns_and_fit(rng):
    C = _unit(rng, 50, 8)
    cat = neighbours.Catalogue("cat", np.array([f"s{i}" for i in range(50)]), np.array([""] * 50),
                               np.array(["a;b"] + [""] * 49, dtype=object),
                               np.r_[np.nan, np.arange(49.0)], C, "x")
    Q = np.vstack([C[0], C[0] * 0.0 + neighbours.unit_rows(rng.normal(size=(1, 8)))])
    cols = neighbours.neighbour_columns(Q, cat, k=3)
    first = cols.iloc[0]
    assert first["nearest"].split(";")[0] == "s0" and first["nearest_similarity"].startswith("1.0000")
    assert first["nearest_title"].split(";")[0] == "a,b"  # the separator never splits a title
    assert first["nearest_score"].split(";")[0] == ""  # unknown hit score
    # a copy of a catalogue song fits it at least as well as the song itself does among the others
    assert first["fit"] >= neighbours.fit_percentile(cat.self_fit(3)[:1], cat.self_fit(3))[0]
    assert 0 <= cols["fit"].min() and cols["fit"].max() <= 100
    with pytest.raises(ParameterError, match="widths differ"):
        neighbours.neighbour_columns(Q[:, :4], cat)


def test_model_vectors_average_the_fold_models_cosines(store):
    import torch

    from hitrank.models import build
    from hitrank.store import FeatureStore

    st = FeatureStore.open(store)
    ids = list(st.manifest.song_id[:6])
    X = torch.from_numpy(st.load(ids))

    class Fake:  # two "checkpoints" of one member each
        def __init__(self, seed):
            torch.manual_seed(seed)
            self.members = [(1.0, build("simple_cnn").eval())]
            self.uses_tags = False

    scorers = [Fake(0), Fake(1)]
    V = neighbours.model_vectors(scorers, X)
    assert np.allclose(np.linalg.norm(V, axis=1), 1, atol=1e-5)
    per = [neighbours.model_vectors([s], X) for s in scorers]
    assert np.allclose(V @ V.T, (per[0] @ per[0].T + per[1] @ per[1].T) / 2, atol=1e-5)


def _copy_as_flac(src, dst):
    y, sr = sf.read(src, dtype="float32")
    sf.write(dst, y * 0.9, sr, format="FLAC")  # re-encoded, a little quieter


def test_rank_lists_a_re_encoded_copy_first(quick_run, corpus, store, tmp_path, capsys):
    audio = sorted((corpus / "audio").glob("*.wav"))
    ref, new = tmp_path / "reference", tmp_path / "new"
    ref.mkdir()
    new.mkdir()
    for p in audio[:12]:
        shutil.copy(p, ref / p.name)
    for p in audio[:3]:
        _copy_as_flac(p, new / f"copy of {p.stem}.flac")
    shutil.copy(audio[20], new / audio[20].name)
    out = tmp_path / "ranking.csv"
    assert main(["rank", str(new), "--model", str(quick_run), "--reference", str(ref), "--out", str(out),
                 "-q", "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "nearest songs (~): of the 12 songs of reference" in printed
    r = pd.read_csv(out, keep_default_na=False).set_index("song_id")
    for p in audio[:3]:
        row = r.loc[f"copy of {p.stem}.flac"]
        assert row["nearest"].split(";")[0] == p.name, row["nearest"]
        assert float(row["nearest_similarity"].split(";")[0]) > 0.99
        assert len(row["nearest"].split(";")) == 5
        assert 0 <= float(row["fit"]) <= 100
    # the default catalogue: the run's training songs (the store its run.json records)
    assert json.loads((quick_run / "run.json").read_text())["store"] == str(store.resolve())
    assert main(["rank", str(new), "--model", str(quick_run), "--json", "-q", "--nearest", "3",
                 "--cache", str(tmp_path / "cache")]) == 0
    got = {row["song_id"]: row for row in json.loads(capsys.readouterr().out)["ranking"]}
    copy = got[f"copy of {audio[0].stem}.flac"]
    assert copy["nearest"].split(";")[0] == audio[0].stem  # labels CSV ids: the file stems
    assert copy["nearest_score"].split(";")[0] != ""  # training songs have true hit scores
    # none asked for: no columns
    assert main(["rank", str(new), "--model", str(quick_run), "--json", "-q", "--nearest", "0",
                 "--cache", str(tmp_path / "cache")]) == 0
    assert "nearest" not in json.loads(capsys.readouterr().out)["ranking"][0]


def test_similar_one_song(quick_run, corpus, tmp_path, capsys):
    audio = sorted((corpus / "audio").glob("*.wav"))
    song = tmp_path / "demo ' <odd>.flac"
    _copy_as_flac(audio[5], song)
    assert main(["similar", str(song), "--model", str(quick_run), "--reference", str(corpus / "audio"),
                 "-k", "4", "--json", "-q", "--cache", str(tmp_path / "c")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in res["similar"]] == [1, 2, 3, 4]
    assert res["similar"][0]["song_id"] == audio[5].name and res["similar"][0]["path"] == str(audio[5])
    assert res["similar"][0]["similarity"] > 0.99 and res["embedding"] == "model"
    assert 0 <= res["fit"] <= 100 and np.isfinite(res["percentile"])
    assert main(["similar", str(song), "--model", str(quick_run), "-q", "--cache", str(tmp_path / "c")]) == 0
    assert "closest of the 24 training songs of m" in capsys.readouterr().out
    sf.write(tmp_path / "quiet.wav", np.zeros(22050 * 40, np.float32), 22050)  # a silent song: no neighbours
    assert main(["similar", str(tmp_path / "quiet.wav"), "--model", str(quick_run), "-q",
                 "--cache", str(tmp_path / "c2")]) != 0
    assert "holds no sound (silent)" in capsys.readouterr().err


def test_similar_in_a_pretrained_embedding(corpus, tmp_path, capsys):
    pytest.importorskip("musicnn", reason="the musicnn wheel (pip install --no-deps musicnn==0.1.0) holds the weights")
    ref = tmp_path / "ref"
    ref.mkdir()
    audio = sorted((corpus / "audio").glob("*.wav"))
    for p in audio[:4]:
        y, sr = sf.read(p, dtype="float32")
        sf.write(ref / p.name, y[len(y) // 2 - 4 * sr: len(y) // 2 + 4 * sr], sr)  # 8 s: fast
    y, sr = sf.read(ref / audio[2].name, dtype="float32")
    sf.write(tmp_path / "copy.ogg", y, sr, format="OGG")
    assert main(["similar", str(tmp_path / "copy.ogg"), "--reference", str(ref), "--json", "-q", "-k", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["embedding"] == "musicnn" and res["similar"][0]["song_id"] == audio[2].name
    assert res["fit"] is None  # 4 reference songs: too few to state a fit
    assert res["similar"][0]["similarity"] > 0.9  # an OGG copy, centred on a 4-song catalogue
    sf.write(tmp_path / "silence.wav", np.zeros(22050 * 5, np.float32), 22050)
    assert main(["similar", str(tmp_path / "silence.wav"), "--reference", str(ref), "-q"]) != 0
    assert "silence" in capsys.readouterr().err


def test_similar_and_nearest_errors(quick_run, corpus, tmp_path, capsys):
    assert main(["similar", str(tmp_path / "missing.wav"), "--reference", str(corpus / "audio")]) != 0
    assert "missing.wav': file does not exist" in capsys.readouterr().err
    song = sorted((corpus / "audio").glob("*.wav"))[0]
    assert main(["similar", str(song)]) != 0
    assert "--reference" in capsys.readouterr().err
    assert main(["similar", str(corpus / "audio"), "--reference", str(corpus / "audio")]) != 0
    assert "is a folder" in capsys.readouterr().err
    assert main(["similar", str(song), "--reference", str(corpus / "audio"), "--embedding", "model"]) != 0
    assert "give --model" in capsys.readouterr().err
    assert main(["rank", str(corpus / "audio"), "--model", str(quick_run), "--nearest", "-1", "-q"]) != 0
    assert "--nearest -1: expected 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse lists the choices
        main(["similar", str(song), "--embedding", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="known embeddings"):  # the library says the same
        from hitrank.rank import rank_folder

        rank_folder(corpus / "audio", quick_run, embedding="nope", progress=False)


def test_catalogue_vectors_and_titles_are_cached(quick_run, store, monkeypatch):
    """Ranking against the same catalogue again runs no model over it and reads no tags; a
    changed model file is a new key."""
    import torch

    from hitrank.curve import load_scorers

    scorers = load_scorers(quick_run, torch.device("cpu"))
    first = neighbours.store_catalogue(store, "train", "model", scorers)
    monkeypatch.setattr(neighbours, "store_vectors", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(neighbours, "file_tags", lambda *a, **k: pytest.fail("tags read again"))
    again = neighbours.store_catalogue(store, "train", "model", scorers)
    assert np.array_equal(first.vectors, again.vectors) and list(first.titles) == list(again.titles)
    import os

    os.utime(scorers[0].source, ns=(1, 1))  # the model file changed: computed again
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        neighbours.store_catalogue(store, "train", "model", scorers)


def test_small_catalogues_silent_songs_and_empty_catalogues(rng):
    C = _unit(rng, 3, 8)
    small = neighbours.Catalogue("tiny", np.array(["a", "b", "c"]), np.array([""] * 3),
                                 np.array([""] * 3, dtype=object), np.full(3, np.nan), C, "x")
    assert not small.mean.any()  # too few songs to centre on
    cols = neighbours.neighbour_columns(np.vstack([C[1], np.zeros(8), C[2]]), small, k=2,
                                        valid=np.array([True, True, False]))
    assert cols.nearest[0].split(";")[0] == "b" and np.isnan(cols.fit[0])  # no fit stated
    assert cols.nearest[1] == "" and cols.nearest[2] == "" and np.isnan(cols.fit_similarity[1:]).all()
    with pytest.raises(ParameterError, match="holds no usable song"):
        neighbours.Catalogue("empty", np.array([]), np.array([]), np.array([]), np.array([]), np.zeros((0, 8)), "x")


def test_titles_and_artists_come_from_the_labels_csv(quick_run, corpus, tmp_path, capsys):
    """A labels CSV's own title and artist columns name its songs: in a ranking of it, as the
    closest songs of a --reference, and as a run's training songs (run.json records the labels
    CSV the run learned from)."""
    lab = tmp_path / "lab"
    (lab / "audio").mkdir(parents=True)
    labels = pd.read_csv(corpus / "labels.csv")
    for p in labels.path:
        shutil.copy(corpus / p, lab / p)
    titles = {s: f"Title <{i}> & co" for i, s in enumerate(labels.song_id) if i != 3}  # one untitled
    labels.assign(title=labels.song_id.map(titles).fillna("")).to_csv(lab / "labels.csv", index=False)
    y, sr = sf.read(lab / labels.path[3])  # ... whose file has a title tag: it fills the gap
    with sf.SoundFile(lab / labels.path[3], "w", sr, 1, format="WAV") as f:
        f.title = "Tagged Title"
        f.write(y)
    titles[labels.song_id[3]] = "Tagged Title"
    run = tmp_path / "run"
    assert main(["train", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--labels", str(lab / "labels.csv"),
                 "--out", str(run), "--set", "train.epochs=1", "-q"]) == 0
    assert json.loads((run / "run.json").read_text())["labels"] == os.path.abspath(lab / "labels.csv")
    capsys.readouterr()
    assert main(["rank", str(lab / "labels.csv"), "--model", str(run), "--json", "-q", "--nearest", "3",
                 "--cache", str(tmp_path / "c")]) == 0
    rows = {r["song_id"]: r for r in json.loads(capsys.readouterr().out)["ranking"]}
    for sid, row in rows.items():
        assert row["title"] == titles.get(sid, "")
        assert row["artist"] == labels.set_index("song_id").loc[sid, "artist"]
        named = dict(zip(row["nearest"].split(";"), row["nearest_title"].split(";"), strict=True))
        assert all(t == titles.get(s, "") for s, t in named.items())
    assert main(["rank", str(corpus / labels.path[0]), "--model", str(quick_run),
                 "--reference", str(lab / "labels.csv"), "--json", "-q", "--nearest", "3",
                 "--cache", str(tmp_path / "c2")]) == 0
    row = json.loads(capsys.readouterr().out)["ranking"][0]
    named = dict(zip(row["nearest"].split(";"), row["nearest_title"].split(";"), strict=True))
    assert all(t == titles.get(s, "") for s, t in named.items()) and any(named.values())
