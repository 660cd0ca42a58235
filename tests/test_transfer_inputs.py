"""Labels a transfer run must refuse or name before any fitting: folds grouped by the stratum
itself, scores that are all equal, scores the target cannot take (all of them named at once),
songs with no group, and inner folds that the groups cannot fill."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hitrank.errors import ConfigError, LabelsError
from hitrank.features import FeatureParams
from hitrank.transfer.config import TransferConfig
from hitrank.transfer.protocol import Data, check_labels, count_groups, run_transfer_cv


def _data(rng, n=30, y=None, artists=None):
    ids = np.array([f"s{i:02d}" for i in range(n)])
    X = rng.normal(size=(n, 6))
    y = X[:, 0] + rng.normal(0, 0.5, n) if y is None else np.asarray(y, dtype=float)
    artists = [f"a{i // 2}" for i in range(n)] if artists is None else artists
    labels = pd.DataFrame({"song_id": ids, "artist": artists, "genre": [["x", "y", "z"][i % 3] for i in range(n)]},
                          index=ids)
    return Data(ids, X, y, labels, FeatureParams(), "")


def _cfg(**cv):
    base = TransferConfig()
    return replace(base, cv=replace(base.cv, folds=3, **cv))


def test_equal_scores_and_scores_the_target_cannot_take_are_refused_before_fitting(rng):
    with pytest.raises(LabelsError, match=r"hit_score is 0.5 for every one of the 30 songs; nothing to rank"):
        check_labels(_cfg(), _data(rng, y=np.full(30, 0.5)), "labels.csv")
    y = np.linspace(-1, 1, 30)  # ten songs <= 0, in every fold: all of them are named at once
    cfg = replace(_cfg(), train=replace(TransferConfig().train, target="log"))
    with pytest.raises(Exception, match=r"15 song\(s\)") as err:
        check_labels(cfg, _data(rng, y=y), "labels.csv")
    assert "s00" in str(err.value) and "rank" in str(err.value)  # the alternatives
    check_labels(_cfg(), _data(rng, y=y), "labels.csv")  # the default target takes them


def test_songs_with_no_group_count_as_groups_of_their_own_and_are_named(rng, tmp_path):
    groups = np.array(["a", "a", "", "b", "", ""])
    assert count_groups(groups) == 5  # a, b and three songs alone
    artists = [f"a{i // 2}" for i in range(30)]
    for i in (0, 5, 10):
        artists[i] = ""
    s = run_transfer_cv(_cfg(group_by="artist"), _data(rng, artists=artists), tmp_path / "r", progress=False)
    assert s["groups"] == 15 + 3  # 15 artists (a0, a2, a5 keep one song each) and 3 songs alone
    assert any("3 song(s) have no artist: each is a group of its own" in w for w in s["warnings"])


def test_inner_folds_the_groups_cannot_fill_name_the_inner_folds(rng, tmp_path):
    cfg = _cfg(group_by="genre")  # three genres: two in each outer training part, five inner folds
    cfg = replace(cfg, model=replace(cfg.model, candidates=("ridge", "gbdt")))  # chosen by inner folds
    with pytest.raises(ConfigError, match=r"cv.inner_folds=5: the 2 groups of 20 training songs cannot fill 5 inner"):
        run_transfer_cv(cfg, _data(rng), tmp_path / "r", progress=False)


def test_grouping_by_the_stratum_is_refused_before_any_audio(tmp_path, capsys):
    from hitrank.cli import main

    (tmp_path / "labels.csv").write_text("song_id,path,hit_score,genre\na,a.wav,0.1,x\nb,b.wav,-0.3,y\n")
    assert main(["cv", "--config", "real/ridge", "--labels", str(tmp_path / "labels.csv"), "--out",
                 str(tmp_path / "run"), "--within", "genre", "--group-by", "genre", "-q"]) == 2
    err = capsys.readouterr().err
    assert "cv.group_by and cv.within are both 'genre'" in err and "group by another column" in err
    assert not (tmp_path / "run").exists()


def test_labels_name_audio_listed_twice_and_read_column_names_without_their_spaces(tmp_path, caplog):
    import logging

    from hitrank.corpus import read_labels

    (tmp_path / "labels.csv").write_text(" song_id , path ,hit_score \na,x.wav,1\nb,y.wav,2\nc,x.wav,3\nd,./y.wav,4\n"
                                         "e,z.wav,5\n")
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        refs, rejected, problems = read_labels(tmp_path / "labels.csv")
    assert [r.hit_score for r in refs] == [1, 2, 3, 4, 5] and not rejected and not problems
    msg = caplog.text
    assert "2 audio file(s) are listed under more than one song_id" in msg
    assert "line 2 'a' = line 4 'c'" in msg and "line 3 'b' = line 5 'd'" in msg and "--group-by group" in msg
    (tmp_path / "twice.csv").write_text("song_id,path, path\na,x.wav,y.wav\n")
    with pytest.raises(LabelsError, match=r"column name\(s\) \['path'\] appear more than once in the header"):
        read_labels(tmp_path / "twice.csv")
    (tmp_path / "twice.csv").write_text("song_id,liked,liked\na,1,0\n")  # before: read as 'liked' and 'liked.1'
    with pytest.raises(LabelsError, match=r"\['liked'\] appear more than once"):
        read_labels(tmp_path / "twice.csv")


def test_labels_saved_by_a_windows_spreadsheet_are_read_and_a_typo_is_no_number(tmp_path, caplog):
    import logging

    from hitrank.corpus import read_labels

    sf.write(tmp_path / "café.wav", np.zeros(100, np.float32), 22050)
    (tmp_path / "labels.csv").write_bytes("song_id,path,hit_score\na,café.wav,0.5\nb,café.wav,0_5\n".encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        refs, rejected, problems = read_labels(tmp_path / "labels.csv")
    assert "is not UTF-8 (line 2); read as cp1252" in caplog.text
    assert refs[0].path.endswith("café.wav") and refs[0].hit_score == 0.5
    assert np.isnan(refs[1].hit_score) and any("'0_5' is not a number" in p for p in problems)
    read_labels(tmp_path / "labels.csv")  # read again (a header first, then the rows): warned once
    assert caplog.text.count("is not UTF-8") == 1
    # a UTF-8 file with one cell from elsewhere: the rest keeps its names, that cell is named
    (tmp_path / "mixed.csv").write_bytes("song_id,path,hit_score\na,café.wav,1\n".encode()
                                         + "b,café.wav,2\n".encode("cp1252"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        refs, _, _ = read_labels(tmp_path / "mixed.csv")
    assert refs[0].path.endswith("café.wav") and "line 3 (and maybe others) is not UTF-8" in caplog.text
    (tmp_path / "wide.csv").write_bytes("song_id,path,hit_score\na,café.wav,1\n".encode("utf-16"))
    with pytest.raises(LabelsError, match="is UTF-16; save it as UTF-8"):
        read_labels(tmp_path / "wide.csv")
    (tmp_path / "wide.csv").write_bytes("song_id,path,hit_score\na,b.wav,1\n".encode("utf-16-le"))  # no BOM
    with pytest.raises(LabelsError, match="is UTF-16; save it as UTF-8"):
        read_labels(tmp_path / "wide.csv")


def test_rank_folder_names_the_function_that_ranks_with_a_transfer_run(rng, tmp_path):
    import hitrank
    from hitrank.errors import HitrankError

    run_transfer_cv(_cfg(), _data(rng), tmp_path / "run", progress=False)
    with pytest.raises(HitrankError, match=r"is a transfer run; .*rank_transfer_folder\(folder, model\)"):
        hitrank.rank_folder(tmp_path, tmp_path / "run")


def test_summary_json_is_strict_json_with_undefined_figures_as_null(rng, tmp_path):
    import json

    data = _data(rng, n=36)
    data.labels["artist"] = [("solo" if g == "x" else f"a{i}") for i, g in enumerate(data.labels["genre"])]
    s = run_transfer_cv(_cfg(group_by="artist", within="genre"), data, tmp_path / "r", progress=False)
    assert np.isnan(s["model"]["within"]["strata"]["x"]["spearman_ci"]).all()  # one artist: no interval
    def refuse(token):
        raise AssertionError(f"summary.json holds {token}")
    saved = json.loads((tmp_path / "r" / "summary.json").read_text(), parse_constant=refuse)
    assert saved["model"]["within"]["strata"]["x"]["spearman_ci"] == [None, None]
    assert any("one group: 'solo'" in w for w in saved["warnings"])


@pytest.mark.parametrize("command", ["cv", "train"])
def test_an_out_that_is_a_file_or_holds_a_model_is_refused_before_any_audio(command, tmp_path, capsys, monkeypatch):
    from hitrank.cli import main

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "labels.csv").write_text("song_id,path,hit_score\na,a.wav,1\n")
    (tmp_path / "taken.csv").write_text("x\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.pt").write_bytes(b"")
    for out, reason in (("taken.csv", "is a file"), ("old", "already holds a model (model.pt)")):
        assert main([command, "--config", "real/ridge", "--labels", str(tmp_path / "labels.csv"),
                     "--out", str(tmp_path / out), "-q"]) == 2
        assert reason in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_labels_whose_audio_is_not_where_the_csv_says_point_to_the_csv_folder(tmp_path, capsys, monkeypatch):
    from hitrank.cli import main

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "meta").mkdir()
    rows = "".join(f"s{i},audio/s{i}.wav,{i}\n" for i in range(12))  # relative to the working folder, not the CSV
    (tmp_path / "meta" / "labels.csv").write_text("song_id,path,hit_score\n" + rows)
    assert main(["train", "--config", "real/ridge", "--labels", str(tmp_path / "meta" / "labels.csv"),
                 "--out", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "only 0 songs have embeddings" in err and "12 audio files do not exist" in err
    assert "relative to its own folder" in err


def test_too_few_weighted_songs_and_strata_that_cannot_stratify_are_refused(rng, tmp_path):
    """Before: 2 songs with a positive weight gave folds that predicted one constant (exit 0);
    --within on a column of one stratum, of singletons, or the label itself reported a bogus
    stratum-mean baseline (exit 0)."""
    data = _data(rng)
    data.weight = np.r_[5.0, 5.0, np.zeros(28)]
    cfg = replace(_cfg(), train=replace(TransferConfig().train, weight="n_raters"))
    with pytest.raises(LabelsError, match=r"train.weight='n_raters' is > 0 for only 2 of the 30 songs; a transfer "
                                          r"model learns from those only and needs at least 10"):
        check_labels(cfg, data, "labels.csv")
    data.labels["one"], data.labels["own"], data.labels["empty"] = "pop", data.ids, ""
    for column, message in (("one", r"every song with a value there is in one stratum \('pop'\)"),
                            ("own", r"30 strata, but at most one holds two songs or more"),
                            ("empty", r"the column is empty for every song"),
                            ("hit_score", r"is the label itself")):
        if column == "hit_score":
            data.labels["hit_score"] = data.y
        with pytest.raises(ConfigError, match=rf"^cv.within='{column}'(: .*| ){message}"):
            run_transfer_cv(_cfg(within=column), data, tmp_path / column, progress=False)
        assert not (tmp_path / column).exists()  # refused before the run folder is made
    s = run_transfer_cv(_cfg(within="genre"), _data(rng), tmp_path / "ok", progress=False)
    assert s["within"] == "genre"


@pytest.mark.parametrize("name", ["market #1", "null", "yes", "2020", "%x", "a: b"])
def test_column_flags_are_taken_as_written(name):
    """--within, --group-by and --weight became `--set key=VALUE` items read as YAML: `market #1`
    named the column `market` (a comment), `null` dropped the flag, `yes` became 'on'."""
    import argparse

    from hitrank.cli import _structure_overrides
    from hitrank.yamlconfig import parse_override

    args = argparse.Namespace(config="real/ridge", command="cv", group_by=name, weight=name, within=name)
    items = _structure_overrides(args, [])
    assert [parse_override(i) for i in items] == [(["cv", "group_by"], name), (["train", "weight"], name),
                                                  (["cv", "within"], name)]


@pytest.mark.parametrize("cells, expect", [
    (["0,229"] * 12, "(12 row(s) without a usable hit_score, e.g. labels.csv:2: song 's00': hit_score '0,229' is not a "
                     "number; write scores with a decimal point and no percent sign (0.229, not 0,229 or 22.9%))"),
    (["22.9%"] * 12, "write scores with a decimal point and no percent sign"),
    (["0.5"] * 12, "12 row(s) point outside the labels folder, e.g. "),
])
def test_labels_without_usable_scores_are_refused_with_the_reason_before_any_audio(tmp_path, capsys, monkeypatch,
                                                                                  cells, expect):
    from hitrank.cli import main

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))

    folder = tmp_path / "labels"
    folder.mkdir()
    where = "../elsewhere/" if "outside" in expect else ""
    rows = "".join(f"s{i:02d},{where}s{i:02d}.wav,\"{c}\"\n" for i, c in enumerate(cells))  # no audio at all
    (folder / "labels.csv").write_text("song_id,path,hit_score\n" + rows)
    assert main(["cv", "--config", "real/ridge", "--labels", str(folder / "labels.csv"), "--out",
                 str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "only 0 songs have a usable hit_score; a transfer model needs at least 10 (" in err and expect in err
    assert "--allow-outside" in err or "outside" not in expect
    assert not (tmp_path / "cache").exists()  # refused before any audio was decoded
