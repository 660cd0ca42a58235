"""Inputs the within-stratum metrics, the label ceiling and the learning curve must not take
silently: songs with no stratum, fold x stratum cells too small to rank in, raters' rows
that are not numbers, and learning-curve sizes larger than a fold's training set."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hitrank import strata
from hitrank.errors import LabelsError

GENRES = ("classical", "electronic", "pop", "rock")


def _corpus(rng, n_per=30, folds=3):
    """Songs of four genres with a genre level and a within-genre signal the model half knows."""
    genres = np.repeat(GENRES, n_per)
    level = dict(zip(GENRES, (0.4, -0.1, 0.0, 0.1), strict=True))
    y = np.array([level[g] for g in genres]) + rng.normal(0, 0.2, len(genres))
    pred = y + rng.normal(0, 0.2, len(genres))
    ids = np.array([f"s{i:03d}" for i in range(len(genres))])
    return y, pred, genres.astype(object), rng.integers(0, folds, len(genres)), ids


# ----------------------------------------------------------------------------- no stratum
def test_songs_with_no_stratum_are_left_out_of_within_metrics_and_named(rng):
    y, pred, genres, folds, ids = _corpus(rng)
    blank = np.array([1, 40, 77])
    genres[blank] = ["", np.nan, None]  # empty, NaN and None all mean: no stratum
    pred[blank] = [9.0, -9.0, 9.0]  # far off: were they ranked anywhere, it would show
    res = strata.within_metrics(y, pred, folds, genres, n_boot=100, ids=ids)
    assert set(res["strata"]) == set(GENRES)  # no nameless stratum ''
    assert res["missing"] == 3 and res["missing_ids"] == list(ids[blank])
    keep = np.setdiff1d(np.arange(len(y)), blank)
    alone = strata.within_metrics(y[keep], pred[keep], folds[keep], genres[keep], n_boot=100)
    for name in GENRES:  # the songs that have a stratum are ranked exactly as without the others
        assert res["strata"][name]["spearman"] == alone["strata"][name]["spearman"]
        assert res["strata"][name]["ndcg"] == pytest.approx(alone["strata"][name]["ndcg"])
    assert res["mean"]["spearman"] == alone["mean"]["spearman"]
    assert res["cell_mean"] == alone["cell_mean"]
    labels_only = strata.within_metrics(y, y, folds, genres, n_boot=20)
    assert labels_only["mean"]["spearman"] == pytest.approx(1.0) and labels_only["missing_ids"] == []
    # the paired difference inside strata ignores them too; over all songs they count
    base = strata.stratum_mean_predictions(y, folds, genres)
    diff = strata.paired_difference(y, pred, base, folds, genres, n_boot=50)
    diff_alone = strata.paired_difference(y[keep], pred[keep], base[keep], folds[keep], genres[keep], n_boot=50)
    assert diff["within"]["diff"] == pytest.approx(diff_alone["within"]["diff"])
    assert diff["pooled"]["diff"] != pytest.approx(diff_alone["pooled"]["diff"])


def test_the_stratum_mean_predicts_a_song_with_no_stratum_by_the_mean_of_all_training_songs():
    y = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 0.0, 5.0])
    folds = np.array([0, 0, 0, 0, 0, 1, 1])
    s = np.array(["a", "a", "b", "", "", "a", ""], dtype=object)
    pred = strata.stratum_mean_predictions(y, folds, s)
    assert pred[5] == pytest.approx(1.5)  # its stratum's training mean
    assert pred[6] == pytest.approx(np.mean([1, 2, 3, 10, 20]))  # not the mean of the '' songs (15)


def test_the_within_ceiling_leaves_out_songs_with_no_stratum(rng):
    songs = [f"s{i:02d}" for i in range(24)]
    raters = pd.DataFrame({"song_id": np.repeat(songs, 8), "judgement": rng.normal(size=24 * 8)
                           + np.repeat(rng.normal(size=24), 8)})
    full = {sid: "ab"[i % 2] for i, sid in enumerate(songs)}
    blanked = {**full, **{sid: "" for sid in songs[:5]}}
    alone = {**full, **{sid: f"solo{i}" for i, sid in enumerate(songs[:5])}}  # strata of one: left out
    a = strata.split_half_reliability(raters, blanked, n_splits=30)
    b = strata.split_half_reliability(raters, alone, n_splits=30)
    assert a["within"] == b["within"]  # the five songs with no stratum are not a stratum ''
    assert a["within"] != strata.split_half_reliability(raters, full, n_splits=30)["within"]
    assert a["reliability"] == b["reliability"]  # over all songs they still count


def test_within_warnings_name_the_count_some_songs_and_the_fix():
    w = {"strata": {}, "missing": 7, "missing_ids": [f"x{i}" for i in range(7)], "thin": {},
         "cell_mean": {"cells": 3}}
    (line,) = strata.within_warnings(w, "genre")
    assert line.startswith("7 song(s) have no genre") and "x0, x1, x2, x3, x4 ... (7 in all)" in line
    assert "fill in their genre" in line and "x5" not in line
    assert strata.within_warnings(None) == []
    assert strata.within_warnings({"strata": {"a": {}}, "missing": 0, "thin": {}, "cell_mean": {"cells": 4}}) == []


def _data(rng, n=40, blank=()):
    from hitrank.features import FeatureParams
    from hitrank.transfer.protocol import Data

    X = rng.normal(size=(n, 6))
    y = X[:, 0] + 0.3 * rng.normal(size=n)
    ids = np.array([f"s{i:02d}" for i in range(n)])
    genre = [GENRES[i % 4] for i in range(n)]
    for i in blank:
        genre[i] = ""  # what load_data makes of an empty cell
    labels = pd.DataFrame({"song_id": ids, "genre": genre}, index=ids)
    return Data(ids, X, y, labels, FeatureParams(), "")


def test_a_transfer_run_leaves_songs_with_no_stratum_out_of_within_figures_and_warns(tmp_path, caplog):
    from hitrank.transfer.config import TransferConfig
    from hitrank.transfer.protocol import run_transfer_cv
    from hitrank.transfer.report import format_transfer_summary

    base = TransferConfig()
    cfg = replace(base, cv=replace(base.cv, folds=3, within="genre"))
    blank = (3, 17, 29)
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        s = run_transfer_cv(cfg, _data(np.random.default_rng(5), 60, blank), tmp_path / "run", progress=False)
    full = run_transfer_cv(cfg, _data(np.random.default_rng(5), 60), tmp_path / "full", progress=False)
    w = s["model"]["within"]
    assert set(w["strata"]) == set(GENRES) and w["missing"] == 3 and w["missing_ids"] == ["s03", "s17", "s29"]
    assert set(s["stratum_mean"]["within"]["strata"]) == set(GENRES)
    assert s["model"]["pooled"] == full["model"]["pooled"]  # over all songs nothing changes
    # one warning, in the summary and its printed report (not logged too: it would show twice)
    warned = [line for line in s["warnings"] if "have no genre" in line]
    assert len(warned) == 1 and "3 song(s)" in warned[0] and "s03" in warned[0] and "fill in" in warned[0]
    assert not [r for r in caplog.records if "have no genre" in r.getMessage()]
    assert "warning: " + warned[0] in format_transfer_summary(s)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["model"]["within"]["missing"] == 3
    text = format_transfer_summary(s)
    assert "songs with no genre, left out: 3 (s03, s17, s29)" in text and "\n    (" not in text
    assert "mean over 4 strata" in text
    assert full["warnings"] == [] and "warning:" not in format_transfer_summary(full)


def test_a_spectrogram_run_leaves_songs_with_no_stratum_out_and_its_report_warns(rng, tmp_path):
    """``cv --within`` of a spectrogram run reads the column from the labels CSV after the run
    (:func:`hitrank.commands.within_report`): empty cells and songs the CSV lacks have no stratum."""
    from hitrank.commands import within_report
    from hitrank.transfer.report import format_within_report

    y, pred, genres, folds, ids = _corpus(rng, n_per=12)
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"song_id": ids, "fold": folds, "hit_score": y, "pred": pred}).to_csv(run / "predictions.csv",
                                                                                        index=False)
    (run / "summary.json").write_text(json.dumps({"name": "x"}))
    labels = pd.DataFrame({"song_id": ids, "path": [f"{i}.wav" for i in ids], "genre": genres})
    labels.loc[[0, 13], "genre"] = ""
    labels.drop(index=30).to_csv(tmp_path / "labels.csv", index=False)  # s030: not in the labels
    res = within_report(run, tmp_path / "labels.csv", "genre")
    assert set(res["model"]["within"]["strata"]) == set(GENRES)
    assert res["model"]["within"]["missing"] == 3
    text = format_within_report(res)
    assert "songs with no genre, left out: 3" in text
    assert "warning: 3 song(s) have no genre" in text and "fill in their genre" in text


# ----------------------------------------------------------------------------- thin cells
def _one_song_per_cell(rng, folds=10):
    genres = np.repeat(GENRES, folds)
    y = rng.normal(size=len(genres))
    return y, y + rng.normal(size=len(genres)), genres, np.tile(np.arange(folds), len(GENRES))


def test_strata_whose_songs_sit_in_cells_too_small_to_rank_are_named_and_warned(rng):
    from hitrank.transfer.report import within_lines

    y, pred, genres, folds = _one_song_per_cell(rng)
    res = strata.within_metrics(y, pred, folds, genres, n_boot=50)
    assert res["thin"] == {g: 1.0 for g in GENRES}
    assert res["cell_mean"]["cells"] == 0 and np.isnan(res["cell_mean"]["spearman"])  # values unchanged
    (line,) = strata.within_warnings(res, "genre")
    assert "not reported (n/a) and left out of the mean" in line and "--folds" in line and "4 of 4 genre strata" in line
    # their figures are not reported: before, cells of two songs gave e.g. +1.000 [+1.00, +1.00]
    assert all(np.isnan(d["spearman"]) and d["note"] == "thin" for d in res["strata"].values()) and res["mean"] == {}
    pairs = strata.within_metrics(y, y + rng.normal(0, 0.01, len(y)), folds % 5, genres, n_boot=50)  # 2 per cell
    assert set(pairs["thin"]) == set(GENRES) and all(np.isnan(d["spearman"]) for d in pairs["strata"].values())
    base = strata.evaluate(y, strata.stratum_mean_predictions(y, folds, genres), folds, genres, n_boot=20)
    diff = strata.paired_difference(y, pred, strata.stratum_mean_predictions(y, folds, genres), folds, genres,
                                    n_boot=20)
    text = "\n".join(within_lines("genre", res, base["within"], diff))
    assert "no fold x stratum cell has 3 songs" in text and "nan" not in text
    assert "rock (10, thin)" in text and "thin: most of their songs in fold x stratum cells too small" in text
    assert diff["within"] is None and "within genre" not in text.splitlines()[-1]  # no paired figure either
    # two folds: five songs per cell, nothing to warn about
    few = strata.within_metrics(y, pred, folds % 2, genres, n_boot=50)
    assert few["thin"] == {} and strata.within_warnings(few, "genre") == []
    assert "cell mean" in within_lines("genre", few, base["within"], diff)[0]
    assert ", thin)" not in "\n".join(within_lines("genre", few, base["within"], diff))


# ----------------------------------------------------------------------------- raters
def test_dropped_judgements_are_warned_with_the_file_the_count_the_reasons_and_the_lines(tmp_path, caplog):
    rows = ["song_id,liked,disliked"] + [f"s{i},{i % 2},{(i + 1) % 2}" for i in range(10)]
    rows[3] = "s2,yes,0"
    rows[5] = "s4,inf,0"
    rows[8] = "s7,,1"
    path = tmp_path / "raters.csv"
    path.write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="hitrank.strata"):
        r = strata.read_raters(path, "liked-disliked")
    assert len(r) == 7 and r.attrs["dropped"] == 3
    (msg,) = [rec.getMessage() for rec in caplog.records]
    assert str(path) in msg and "3 of 10 judgement rows dropped" in msg
    assert "1 not a number" in msg and "1 not finite" in msg and "1 empty" in msg
    assert "line 4 's2' (liked='yes'" in msg and "line 6 's4'" in msg and "line 9 's7'" in msg
    assert r.attrs["warning"] == msg
    caplog.clear()
    path.write_text("\n".join(["song_id,liked"] + [f"s{i},{i % 2}" for i in range(4)]) + "\n")
    with caplog.at_level(logging.WARNING, logger="hitrank.strata"):
        assert strata.read_raters(path, "liked").attrs["warning"] == ""
    assert not caplog.records


def test_a_listener_counted_twice_is_dropped_or_warned_and_unknown_songs_are_counted(tmp_path, caplog, rng):
    """Before: a raters file appended twice doubled every song's listeners (ceiling 1.00, no
    warning), and rows of songs the labels lack (or whose ids differ in case) were dropped
    silently whenever some rows matched."""
    from hitrank.transfer.protocol import read_raters_for

    rows = [f"u{k},s{i},{int(rng.random() < 0.5)}" for i in range(6) for k in range(3)]
    path = tmp_path / "raters.csv"
    path.write_text("\n".join(["rater,song_id,liked", *rows, *rows[:4]]) + "\n")  # 4 rows again
    with caplog.at_level(logging.WARNING, logger="hitrank.strata"):
        r = strata.read_raters(path, "liked")
    assert len(r) == 18 and r.attrs["dropped"] == 4 and r.attrs["reasons"] == {"repeated listener": 4}
    assert "4 row(s) judge a song a listener has already judged (column 'rater'), dropped: line 20 (rater='u0', " \
           "song 's0')" in r.attrs["warning"]
    plain = tmp_path / "plain.csv"  # no listener column: nothing dropped, the copies said
    plain.write_text("\n".join(["song_id,liked", *[x.split(",", 1)[1] for x in rows * 2]]) + "\n")
    r = strata.read_raters(plain, "liked")
    assert len(r) == 36 and r.attrs["dropped"] == 0
    assert "its last 18 rows (from line 20) repeat its first 18 in the same order" in r.attrs["warning"]
    few = tmp_path / "few.csv"  # listeners who answered alike: a few repeats are no sign of a copy
    few.write_text("\n".join(["song_id,liked", *[x.split(",", 1)[1] for x in rows], "s0,1"]) + "\n")
    assert strata.read_raters(few, "liked").attrs["warning"] == ""
    data = _data(rng, n=6)
    data.ids = np.array([f"s{i}" for i in range(6)])
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join(["song_id,liked", *[x.split(",", 1)[1] for x in rows],
                                 "S0,1", "S0,0", "zz,1"]) + "\n")
    with caplog.at_level(logging.WARNING, logger="hitrank.transfer.protocol"):
        r = read_raters_for(data, mixed, "liked")
    assert len(r) == 18
    assert ("3 of 21 judgement rows (2 songs: 'S0', 'zz') are of songs with no label or no embedding here and "
            "take no part in the ceiling; 1 of them differ from a labels song_id only in upper/lower case") in \
        r.attrs["warning"]
    upper = tmp_path / "upper.csv"  # every id in upper case: refused, saying why
    upper.write_text("\n".join(["song_id,liked", *[x.split(",", 1)[1].upper() for x in rows]]) + "\n")
    with pytest.raises(LabelsError, match=r"only 0 of its songs .*; 6 of them differ from a labels song_id only"):
        read_raters_for(data, upper, "liked")


def test_checkbox_judgements_read_as_one_and_zero(tmp_path):
    """Before: TRUE/FALSE cells (a spreadsheet's checkboxes) were dropped as not numbers."""
    (tmp_path / "r.csv").write_text("song_id,liked,disliked\ns1,TRUE,FALSE\ns1,false,true\ns2, True ,0\ns2,yes,0\n")
    r = strata.read_raters(tmp_path / "r.csv", "liked-disliked")
    assert r.judgement.tolist() == [1.0, -1.0, 1.0] and r.attrs["reasons"] == {"not a number": 1}


def test_judgements_near_the_float_limit_give_the_reliability_of_their_ratios(tmp_path, rng):
    """Before: judgements of 1e308 overflowed in the song means (numpy warnings on the terminal)."""
    import warnings

    values = rng.random((12, 6)) + np.arange(12)[:, None] * 0.1
    for name, scale in (("small.csv", 1.0), ("huge.csv", 8e307)):
        (tmp_path / name).write_text("song_id,liked\n" + "".join(
            f"s{i},{float(v) * scale!r}\n" for i in range(12) for v in values[i]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = strata.split_half_reliability(strata.read_raters(tmp_path / "huge.csv", "liked"), n_splits=20)
    small = strata.split_half_reliability(strata.read_raters(tmp_path / "small.csv", "liked"), n_splits=20)
    assert huge["reliability"] == pytest.approx(small["reliability"]) and np.isfinite(huge["reliability"])


# ----------------------------------------------------------------------------- learning curve
def test_curve_sizes_above_every_fold_training_set_collapse_to_one_row_with_a_warning(caplog):
    from hitrank.transfer.learning_curve import ALL, curve_sizes

    with caplog.at_level(logging.WARNING, logger="hitrank"):
        assert curve_sizes([10, 20], 36, 40, 10) == [(10, 10), (20, 20)]
        assert not caplog.records
        assert curve_sizes([10, 36, 100], 36, 40, 10) == [(10, 10), (36, 36)]
        assert curve_sizes([10, 100, 200], 36, 40, 10) == [(10, 10), (ALL, 36)]
    first, second = (r.getMessage() for r in caplog.records)
    assert "--sizes 100:" in first and "at most 36 training songs" in first and "size 36" in first
    assert "--sizes 100,200:" in second and "'all'" in second and "40 songs in 10 folds" in second


def test_a_learning_curve_never_labels_a_row_with_more_songs_than_a_fold_has(tmp_path, caplog):
    from hitrank.transfer.config import TransferConfig
    from hitrank.transfer.learning_curve import learning_curve, write_curve

    base = TransferConfig()
    cfg = replace(base, cv=replace(base.cv, folds=4))
    data = _data(np.random.default_rng(2))
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        table = learning_curve(cfg, data, [10, 100], progress=False)
    assert list(table["size"]) == [10, "all"] and list(table["train_songs"]) == [10.0, 30.0]
    assert any("--sizes 100" in r.getMessage() and "30 training songs" in r.getMessage() for r in caplog.records)
    write_curve(table, tmp_path)
    assert list(pd.read_csv(tmp_path / "learning_curve.csv")["size"]) == ["10", "all"]
    plain = learning_curve(cfg, data, [10, 100][:1] + [30], progress=False)
    assert list(plain["size"]) == [10, 30]
    assert plain.spearman.iloc[1] == table.spearman.iloc[1]  # 'all' is the fold's every training song


def test_a_learning_curve_names_the_strata_too_thin_to_rank_in(caplog):
    """Before: 10 folds of 40 songs in 4 genres (one song per fold x genre cell) wrote
    within-stratum figures to learning_curve.csv with nothing to say they mean nothing (the
    warning went to the terminal only)."""
    from hitrank.transfer.config import TransferConfig
    from hitrank.transfer.learning_curve import learning_curve

    base = TransferConfig()
    data = _data(np.random.default_rng(3))
    thin = learning_curve(replace(base, cv=replace(base.cv, folds=10, within="genre")), data, [20], progress=False)
    assert thin.within_thin.tolist() == [";".join(sorted(GENRES))]
    fine = learning_curve(replace(base, cv=replace(base.cv, folds=3, within="genre")), data, [20], progress=False)
    assert fine.within_thin.tolist() == [""]


def test_line_numbers_count_blank_lines_and_quoted_line_breaks(tmp_path, caplog):
    """A line number in a message is the line an editor shows, also when the file holds blank
    lines (pandas skips them) or a quoted cell that spans two lines."""
    from hitrank.corpus import read_labels

    path = tmp_path / "raters.csv"
    path.write_text('song_id,liked,note\n\ns0,1,ok\n\n\ns1,yes,"two\nlines"\n   \ns2,,x\n')
    with caplog.at_level(logging.WARNING, logger="hitrank.strata"):
        r = strata.read_raters(path, "liked")
    assert len(r) == 1 and r.attrs["dropped"] == 2
    assert "line 6 's1'" in r.attrs["warning"] and "line 9 's2'" in r.attrs["warning"]
    (tmp_path / "a.wav").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text("song_id,path,hit_score\n\na,a.wav,1\n\na,a.wav,2\n,a.wav,3\n")
    _, rejected, _ = read_labels(labels)
    assert [r.reason for r in rejected] == ["labels.csv:5: duplicate song_id (first on line 3)",
                                            "labels.csv:6: empty song_id"]
