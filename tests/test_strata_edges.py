"""Edges of the within-stratum metrics and the label ceiling that must not print a number:
a stratum of one group (no interval), labels or judgements that do not vary (no Spearman, no
reliability), listeners who disagree (no ceiling), raters files with nothing usable (refused
before any fitting, naming the file) and a ceiling measured on fewer songs than the model."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hitrank import strata
from hitrank.errors import LabelsError

from .test_within_inputs import _corpus, _data


def _nan2(ci) -> bool:
    return len(ci) == 2 and all(np.isnan(ci))


# ----------------------------------------------------------------------------- one group
def test_a_stratum_of_one_group_has_no_interval_and_one_warning_names_it(rng):
    y, pred, genres, folds, ids = _corpus(rng, n_per=12)
    groups = np.array([f"artist{i % 6}" for i in range(len(y))], dtype=object)
    groups[genres == "pop"] = "Solo"  # every pop song by one artist
    res = strata.within_metrics(y, pred, folds, genres, n_boot=100, groups=groups)
    pop = res["strata"]["pop"]
    assert np.isfinite(pop["spearman"]) and _nan2(pop["spearman_ci"]) and _nan2(pop["ndcg_ci"])
    assert pop["note"] == "one group: 'Solo'"
    rock = res["strata"]["rock"]
    assert rock["spearman_ci"][0] < rock["spearman_ci"][1] and "note" not in rock
    assert np.isfinite(res["mean"]["spearman"]) and _nan2(res["mean"]["spearman_ci"])
    (line,) = [w for w in strata.within_warnings(res, "genre") if "pop" in w]
    assert "one group: 'Solo'" in line and "no interval" in line and "--group-by" in line
    diff = strata.paired_difference(y, pred, strata.stratum_mean_predictions(y, folds, genres), folds,
                                    genres, n_boot=100, groups=groups)
    assert _nan2(diff["within"]["ci"]) and not any(np.isnan(diff["pooled"]["ci"]))
    # over all songs: one group there too means no interval
    one = np.full(len(y), "Solo", dtype=object)
    ev = strata.evaluate(y, pred, folds, None, n_boot=50, groups=one)
    assert _nan2(ev["pooled"]["spearman_ci"]) and "no interval" not in strata.interval_note({})
    assert "one group: 'Solo'" in strata.interval_note(ev["pooled"])
    assert _nan2(strata.paired_difference(y, pred, pred[::-1], folds, n_boot=20, groups=one)["pooled"]["ci"])
    # without groups nothing changes: songs are the units
    assert "note" not in strata.within_metrics(y, pred, folds, genres, n_boot=20)["strata"]["pop"]


def test_a_transfer_run_prints_na_for_a_stratum_of_one_group_and_warns(tmp_path):
    from hitrank.transfer.config import TransferConfig
    from hitrank.transfer.protocol import run_transfer_cv
    from hitrank.transfer.report import format_transfer_summary

    data = _data(np.random.default_rng(5), 60)
    artist = [f"a{i % 12}" for i in range(60)]
    for i in range(60):
        if data.labels["genre"].iat[i] == "pop":
            artist[i] = "Solo"
    data.labels["artist"] = artist
    base = TransferConfig()
    cfg = replace(base, cv=replace(base.cv, folds=3, within="genre", group_by="artist"))
    s = run_transfer_cv(cfg, data, tmp_path / "run", progress=False)
    text = format_transfer_summary(s)
    assert "pop (15)" in text and "[n/a]" in text
    (line,) = [w for w in s["warnings"] if "one group: 'Solo'" in w]
    assert text.count(line) == 1


# ----------------------------------------------------------------------------- equal labels
def test_labels_that_are_all_equal_have_no_spearman_but_a_constant_prediction_scores_0():
    y = np.array([[0.5, 0.5, 0.5, 0.5], [1.0, 2.0, 3.0, 4.0]])
    p = np.array([[1.0, 2.0, 3.0, 4.0], [7.0, 7.0, 7.0, 7.0]])
    rho = strata._row_spearman(y, p)
    assert np.isnan(rho[0]) and rho[1] == 0.0


def test_a_stratum_whose_labels_are_all_equal_is_undefined_and_left_out_of_the_mean(rng):
    y, pred, genres, folds, _ = _corpus(rng, n_per=12)
    y[genres == "pop"] = 0.5
    res = strata.within_metrics(y, pred, folds, genres, n_boot=50)
    pop = res["strata"]["pop"]
    assert np.isnan(pop["spearman"]) and np.isnan(pop["ndcg"]) and _nan2(pop["spearman_ci"])
    assert pop["note"] == "labels all equal"
    others = [res["strata"][g]["spearman"] for g in ("classical", "electronic", "rock")]
    assert res["mean"]["spearman"] == pytest.approx(np.mean(others)) and res["mean"]["strata"] == 3
    assert np.isfinite(res["cell_mean"]["spearman"])
    (line,) = [w for w in strata.within_warnings(res, "genre") if "pop" in w]
    assert "all equal" in line and "left out of the mean" in line
    base = strata.stratum_mean_predictions(y, folds, genres)
    diff = strata.paired_difference(y, pred, base, folds, genres, n_boot=50)
    assert np.isfinite(diff["within"]["diff"])  # the mean over the strata whose labels vary
    # over all songs: labels that are all equal rank nothing
    flat = np.full(len(y), 0.5)
    ev = strata.evaluate(flat, pred, folds, genres, n_boot=20)
    assert np.isnan(ev["pooled"]["spearman"]) and _nan2(ev["pooled"]["spearman_ci"])
    assert ev["within"]["mean"] == {} and "all equal" in strata.interval_note(ev["pooled"])
    assert np.isnan(strata.paired_difference(flat, pred, base, folds, n_boot=20)["pooled"]["diff"])


# ----------------------------------------------------------------------------- raters
def _raters(per_song: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(sid, v) for sid, vals in per_song.items() for v in vals]
    return pd.DataFrame(rows, columns=["song_id", "judgement"])


def test_judgements_that_do_not_vary_give_no_reliability_and_a_warning():
    r = _raters({f"s{i:02d}": [0.0] * 6 for i in range(12)})
    c = strata.split_half_reliability(r, {f"s{i:02d}": "ab"[i % 2] for i in range(12)}, n_splits=10)
    assert np.isnan(c["split_half"]) and np.isnan(c["reliability"]) and np.isnan(c["ceiling"])
    assert "within" not in c
    (line,) = c["warnings"]
    assert "the judgements do not vary: no reliability" in line


def test_listeners_who_disagree_give_reliability_0_and_no_ceiling(rng):
    v = rng.normal(size=12)
    r = _raters({f"s{i:02d}": [v[i], -v[i]] for i in range(12)})
    c = strata.split_half_reliability(r, n_splits=10)
    assert c["split_half"] == pytest.approx(-1.0) and c["reliability"] == 0.0 and np.isnan(c["ceiling"])
    (line,) = c["warnings"]
    assert "the listeners disagree" in line and "split-half -1.00 <= 0" in line and "no ceiling" in line
    assert strata._corrected(-0.2) == {"split_half": -0.2, "reliability": 0.0, "ceiling": pytest.approx(np.nan,
                                                                                                       nan_ok=True)}
    assert strata._corrected(0.5)["ceiling"] == pytest.approx(np.sqrt(2 / 3))


def test_a_judgement_against_the_labels_is_warned_as_a_reversed_sign(rng):
    truth = rng.normal(size=20)
    liked = _raters({f"s{i:02d}": list(truth[i] + rng.normal(0, 0.5, 8)) for i in range(20)})
    labels = {f"s{i:02d}": float(truth[i]) for i in range(20)}
    assert strata.sign_warning(liked, labels) == ""
    # disliked-liked for a label of liked minus disliked: the same split-half, the opposite sign
    reversed_ = liked.assign(judgement=-liked.judgement)
    assert strata.split_half_reliability(reversed_, n_splits=5)["split_half"] == pytest.approx(
        strata.split_half_reliability(liked, n_splits=5)["split_half"])
    line = strata.sign_warning(reversed_, labels)
    assert "goes against the labels' hit_score (Spearman -0." in line and "over 20 songs" in line
    assert "is the sign of --raters-score reversed" in line
    assert strata.sign_warning(reversed_, {"s00": 1.0, "s01": 2.0}) == ""  # too few songs in common to say


def test_the_report_says_no_ceiling_instead_of_printing_nan():
    from hitrank.transfer.report import format_transfer_summary

    pooled = {"spearman": 0.3, "spearman_ci": [0.1, 0.5], "ndcg": 0.8, "ndcg_ci": [0.7, 0.9]}
    s = {"name": "x", "songs": 12, "folds": 3, "group_by": "song", "embedding": "e", "scope": "song",
         "target": "rank", "top": 0.1, "chosen": [{"learner": "ridge"}], "model": {"pooled": pooled, "within": None},
         "random": {"spearman": 0.0, "ndcg": 0.5}, "oracle": {"spearman": 1.0, "ndcg": 1.0}, "warnings": [],
         "ceiling": {"songs": 12, "raters_median": 2, "split_half": -1.0, "reliability": 0.0,
                     "ceiling": float("nan"), "warnings": ["label ceiling: the listeners disagree: ..."]}}
    text = format_transfer_summary(s)
    assert "nan" not in text.lower() and "no ceiling" in text
    assert text.count("warning: label ceiling: the listeners disagree") == 1
    s["warnings"] = list(s["ceiling"]["warnings"])  # already among the run's warnings: printed once
    assert format_transfer_summary(s).count("the listeners disagree") == 1


def test_a_ceiling_on_fewer_songs_and_strata_than_the_model_is_warned(rng):
    songs = [f"s{i:02d}" for i in range(24)]
    smap = {sid: "abcd"[i % 4] for i, sid in enumerate(songs)}
    rated = [sid for sid in songs if smap[sid] in "ab"]  # half the songs, two of four strata
    r = _raters({sid: list(rng.normal(size=6) + i) for i, sid in enumerate(rated)})
    (line,) = strata.split_half_reliability(r, smap, n_splits=10)["warnings"]
    assert "12 of the model's 24 songs" in line and "2 of its 4 strata" in line
    full = _raters({sid: list(rng.normal(size=6) + i) for i, sid in enumerate(songs)})
    assert strata.split_half_reliability(full, smap, n_splits=10)["warnings"] == []
    r.attrs["songs"] = 30  # without strata: the songs the labels have (read_raters_for sets it)
    (line,) = strata.split_half_reliability(r, n_splits=10)["warnings"]
    assert "12 of the model's 30 songs" in line and "strata" not in line.split("(")[0]


@pytest.mark.parametrize("body, expect", [
    ("", "has no rows"),
    ("".join(f"s{i:02d},yes\ns{i:02d},no\n" for i in range(12)), "no row has a usable judgement (24 rows: 24 not a number)"),
    ("".join(f"s{i:02d},1\n" for i in range(12)), "only 0 of its 12 songs with labels have two listeners"),
    ("s00,1\ns00,0\ns01,1\ns01,0\n", "only 2 of its songs have labels and embeddings here; a label ceiling needs "
                                      "3 songs or more, each judged by two listeners or more"),
])
def test_raters_files_with_nothing_usable_are_refused_by_name_before_any_fitting(tmp_path, body, expect, caplog):
    from hitrank.transfer.config import TransferConfig
    from hitrank.transfer.protocol import read_raters_for, run_transfer_cv

    path = tmp_path / "raters.csv"
    path.write_text("song_id,liked\n" + body)
    data = _data(np.random.default_rng(0), 12)
    with caplog.at_level(logging.ERROR), pytest.raises(LabelsError) as err:
        read_raters_for(data, path, "liked")
    assert str(path) in str(err.value) and expect in str(err.value)
    assert "song_id column must name" not in str(err.value)
    base = TransferConfig()
    with pytest.raises(LabelsError, match="raters.csv"):
        run_transfer_cv(replace(base, cv=replace(base.cv, folds=3)), data, tmp_path / "run", raters=path,
                        raters_score="liked", progress=False)
    assert not list((tmp_path / "run").glob("*.pt"))  # refused before any fold model was written


def test_raters_without_raters_score_say_what_is_missing(tmp_path, capsys, monkeypatch):
    from hitrank.cli import main

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "raters.csv").write_text("song_id,liked,disliked\ns00,1,0\n")
    assert main(["cv", "--config", "real/auto", "--labels", str(tmp_path / "labels.csv"), "--raters",
                 str(tmp_path / "raters.csv"), "--out", str(tmp_path / "run"), "-q"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --raters needs --raters-score: the raters file's judgement column, or the difference of two, "
        "e.g. --raters-score liked-disliked (columns: ['song_id', 'liked', 'disliked'])"]
    assert not (tmp_path / "cache").exists()  # before any audio
    assert main(["cv", "--config", "real/auto", "--labels", str(tmp_path / "labels.csv"), "--raters-score",
                 "liked-disliked", "--out", str(tmp_path / "run"), "-q"]) == 2
    assert "--raters-score 'liked-disliked' names the judgement of a raters file" in capsys.readouterr().err
    (tmp_path / "anon.csv").write_text("listener,liked,disliked\n1,1,0\n")
    assert main(["cv", "--config", "real/auto", "--labels", str(tmp_path / "labels.csv"), "--raters",
                 str(tmp_path / "anon.csv"), "--raters-score", "liked-disliked", "--out", str(tmp_path / "run"),
                 "-q"]) == 2
    assert "needs a 'song_id' column" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # before any audio


def test_strata_of_one_group_each_leave_the_pooled_paired_difference_without_an_interval(rng):
    y = rng.normal(size=40)
    a, b = y + rng.normal(0, 0.5, 40), y + rng.normal(0, 1.0, 40)
    s = np.repeat(["x", "y"], 20)
    folds = np.tile(np.arange(4), 10)
    one_each = np.where(s == "x", "artist1", "artist2")  # resamples could only redraw the same songs
    d = strata.paired_difference(y, a, b, folds, s, groups=one_each, n_boot=50)
    assert _nan2(d["pooled"]["ci"]) and np.isfinite(d["pooled"]["diff"])
    several = np.array([f"a{i % 5}" for i in range(40)])
    d = strata.paired_difference(y, a, b, folds, s, groups=several, n_boot=50)
    assert np.all(np.isfinite(d["pooled"]["ci"])) and d["pooled"]["ci"][0] < d["pooled"]["ci"][1]


def test_a_resample_of_labels_all_equal_has_no_ndcg_either():
    y = np.array([1.0, 1.0, 1.0, 2.0])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    draws = np.array([[0, 1, 2, 0], [0, 1, 2, 3]])  # the first redraws only equal labels
    rho, ndcg = strata._boot(y, p, draws, top=0.5)
    assert np.isnan(rho[0]) and np.isnan(ndcg[0]) and np.isfinite(rho[1]) and np.isfinite(ndcg[1])


def test_strata_that_differ_only_in_case_are_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        strata.check_strata(["pop", "Pop", "pop", "rock", "rock", "ROCK", "jazz", "jazz"], "genre")
    assert "--within 'genre': 2 stratum name(s) differ only in upper/lower case and are counted apart " \
           "('Pop' / 'pop'; 'ROCK' / 'rock')" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        strata.check_strata(["pop", "pop", "rock", "rock"], "genre")
    assert caplog.text == ""
