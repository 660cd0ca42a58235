"""Descriptor tables with bad input: every file checked on its own, blank and text cells
counted, decimal commas, empty tables, one-class targets, folds without hits, targets a log
cannot take, ';'-separated files. Small in-test tables only."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hitrank.cli import main
from hitrank.descriptors.apply import table_from_source
from hitrank.descriptors.cv import run_cv
from hitrank.descriptors.prepare import prepare
from hitrank.descriptors.table import numeric_column, read_table
from hitrank.errors import ConfigError, HitrankError, LabelsError

from .test_descriptors import CFG, planted_table, quick


def _write(path, df) -> str:
    df.to_csv(path, index=False)
    return str(path)


def test_a_column_missing_from_one_of_several_tables_is_an_error_naming_that_file(tmp_path):
    df = planted_table(tmp_path / "a.csv", n=60)
    b = _write(tmp_path / "b.csv", df.head(20).drop(columns=["energy"]))
    table = read_table([tmp_path / "a.csv", b])
    with pytest.raises(LabelsError, match=r"b\.csv'.*needs column\(s\) \['energy'\]"):
        prepare(quick("topify_mlp", "data.keep_hits=1"), table)  # training
    columns = [c for c in df.columns if c not in ("track", "artist", "target", "streams", "decade")]
    with pytest.raises(LabelsError, match=r"b\.csv'.*\['energy'\]"):  # prediction with a model's columns
        prepare(quick("topify_mlp"), table, columns=columns, need_target=False)
    # the same table alone is a clear error too, and a file lacking the target is named
    c = _write(tmp_path / "c.csv", df.head(20).drop(columns=["target"]))
    with pytest.raises(LabelsError, match=r"c\.csv'.*the target needs column\(s\) \['target'\]"):
        prepare(quick("topify_mlp", "data.keep_hits=1"), read_table([tmp_path / "a.csv", c]))


def test_a_blank_mode_is_missing_like_a_blank_key(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_text("track,danceability,key,mode\na,0.5,C#,Major\nb,0.6,,\nc,0.7,3, minor \n")
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        f = read_table(path).frame
    assert f["mode"].iloc[[0, 2]].tolist() == [1, 0] and np.isnan(f["mode"].iloc[1])
    assert f["key"].iloc[[0, 2]].tolist() == [1, 3] and np.isnan(f["key"].iloc[1])
    assert any("1 mode cell(s) blank" in r.getMessage() for r in caplog.records)


def test_only_thousands_grouped_numbers_lose_their_commas(tmp_path):
    cells = ["1,234", "-12,345.6", "+1,000,000", "-7,5", "1,23", "12,3456", "1,2,3", ",5", "abc",
             None, " 5 ", "-7.5"]
    got = numeric_column(pd.Series(cells, dtype=object)).tolist()
    expected = [1234, -12345.6, 1e6, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 5, -7.5]
    np.testing.assert_array_equal(got, expected)
    path = tmp_path / "t.csv"
    path.write_text('track,loudness,energy\na,"-7,5",0.5\nb,-7.5,0.5\n')
    loud = read_table(path).frame["loudness"]
    assert np.isnan(loud.iloc[0]) and loud.iloc[1] == -7.5  # never -75


def test_text_and_blank_cells_are_counted_one_warning_per_file_and_column(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_text("track,energy,loudness\na,abc,-5\nb,0.5,-5\nc,N/A,-500\nd,,-5\ne,0.1,-5\nf,x,-5\n")
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        f = read_table(path).frame
    assert f["energy"].isna().tolist() == [True, False, True, True, False, True]
    energy = [r.getMessage() for r in caplog.records if " energy " in r.getMessage()]
    assert len(energy) == 1
    assert "t.csv" in energy[0] and "4 energy cell(s)" in energy[0]
    assert "CSV line(s) 2, 4, 5, ..." in energy[0]
    loud = [r.getMessage() for r in caplog.records if "loudness" in r.getMessage()]
    assert len(loud) == 1 and "outside [-80, 10]" in loud[0] and "CSV line(s) 4)" in loud[0]
    assert not any("np." in r.getMessage() for r in caplog.records)  # plain ints, not np.int64(2)


def test_a_table_without_rows_is_a_one_line_error_naming_the_file(tmp_path):
    planted_table(tmp_path / "a.csv", n=40)
    empty = tmp_path / "empty.csv"
    empty.write_text("track,artist,danceability,energy,target\n")
    for source in (empty, [tmp_path / "a.csv", empty]):
        with pytest.raises(LabelsError, match=r"empty\.csv'.*has no rows"):
            read_table(source)
    with pytest.raises(LabelsError, match="has no rows"):  # `hitrank fit --candidates`
        table_from_source(empty)
    assert main(["train", "--config", CFG + "topify_mlp.yaml", "--data", str(empty),
                 "--out", str(tmp_path / "m")]) == 2


def test_a_target_with_one_class_is_an_error_naming_the_column_and_counts(tmp_path):
    df = planted_table(tmp_path / "t.csv", n=60)
    df["target"] = 1
    table = read_table(_write(tmp_path / "t.csv", df))
    with pytest.raises(LabelsError, match=r"'target' has one class only.*60 hit\(s\).*0 non-hit"):
        prepare(quick("topify_mlp", "data.keep_hits=1"), table)


def test_a_table_whose_every_target_is_bad_says_why_no_row_is_usable(tmp_path):
    df = planted_table(tmp_path / "t.csv", n=30)
    df["target"] = "x"
    table = read_table(_write(tmp_path / "t.csv", df))
    with pytest.raises(LabelsError, match=r"only 0 usable rows \(30 left out, e\.g\. line 2 .*'x' is not"):
        prepare(quick("topify_mlp"), table)


def test_a_training_fold_without_hits_is_an_error_naming_the_fold(tmp_path):
    df = planted_table(tmp_path / "t.csv", n=60)
    df["target"] = 0
    df.loc[[5, 30], "target"] = 1  # two hits: a fold trains on one, which validation takes
    table = read_table(_write(tmp_path / "t.csv", df))
    cfg = quick("niggli_balanced", "data.keep_hits=1", "train.epochs=1")
    with pytest.raises(HitrankError, match=r"training part of fold \d has 0 hit\(s\).*fewer folds"):
        run_cv(cfg, table, tmp_path / "run", save_models=False)


def test_the_log_transform_refuses_a_target_of_zero_naming_the_lines(tmp_path):
    df = planted_table(tmp_path / "t.csv", n=60)
    df.loc[3, "streams"] = 0
    df.loc[7, "streams"] = -2
    table = read_table(_write(tmp_path / "t.csv", df))
    cfg = quick("topify_mlp", "data.task=regress", "data.target=streams", "data.transform=log",
                "data.keep_hits=1")
    with pytest.raises(ConfigError, match=r"transform='log' needs streams > 0; 2 row\(s\).*"
                                          r"line 5 \('song 3': 0\), line 9.*data\.transform=log1p"):
        prepare(cfg, table)
    prep, problems = prepare(quick("topify_mlp", "data.task=regress", "data.target=streams",
                                   "data.transform=log1p", "data.keep_hits=1"), table)
    assert len(prep.y) == 59 and any("line 9" in p for p in problems)  # log1p takes the 0


def test_a_semicolon_separated_file_is_named_as_such(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("track;energy;loudness\na;0.5;-5\nb, the second;0.5;-5\n")
    with pytest.raises(LabelsError, match=r"looks ';'-separated.*comma-separated CSV"):
        read_table(path)


def test_rows_of_several_tables_are_named_by_file_and_line_blank_lines_counted(tmp_path, caplog):
    """Messages about a row name the line an editor shows: in the row's own file when the
    table joins several, and counting blank lines, which pandas skips."""
    df = planted_table(tmp_path / "a.csv", n=60)
    b = df.head(20).copy()
    b.loc[3, "streams"] = 0
    text = b.to_csv(index=False).splitlines()
    (tmp_path / "b.csv").write_text("\n".join(text[:2] + [""] + text[2:]) + "\n")  # line 3 blank
    table = read_table([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert table.where(0) == f"{tmp_path / 'a.csv'} line 2" and table.where(60 + 3) == f"{tmp_path / 'b.csv'} line 6"
    cfg = quick("topify_mlp", "data.task=regress", "data.target=streams", "data.transform=log",
                "data.keep_hits=1")
    with pytest.raises(ConfigError, match=r"a\.csv', '.*b\.csv': data\.transform='log'.*b\.csv line 6 "):
        prepare(cfg, table)
    (tmp_path / "c.csv").write_text("track,energy\n\na,0.5\n\nb,abc\n")
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        single = read_table(tmp_path / "c.csv")
    assert single.where(1) == "line 5"
    assert any("CSV line(s) 5)" in r.getMessage() for r in caplog.records)


def test_a_constant_target_an_empty_column_blank_rows_and_a_workbook_are_named(tmp_path, caplog):
    """Before: a regression target equal in every row trained and reported nDCG 1.000 (exit 0);
    a column of text only was 'filled with the training median' (0); a row of commas became a
    song; an .xlsx saved as .csv 'has no rows'."""
    df = planted_table(tmp_path / "t.csv", n=60)
    regress = ("data.task=regress", "data.target=streams", "data.transform=log1p", "data.keep_hits=1")
    table = read_table(_write(tmp_path / "c.csv", df.assign(streams=5)))
    with pytest.raises(LabelsError, match=r"'streams' is 5 in every one of the 60 usable rows: nothing to learn"):
        prepare(quick("topify_mlp", *regress), table)
    table = read_table(_write(tmp_path / "e.csv", df.assign(energy="abc")))
    with pytest.raises(LabelsError, match=r"column\(s\) \['energy'\] hold no number in any of the 60 rows"):
        prepare(quick("topify_mlp", "data.keep_hits=1"), table)
    columns = [c for c in df.columns if c not in ("track", "artist", "target", "streams", "decade")]
    with caplog.at_level(logging.WARNING, logger="hitrank"):  # predicting: named, filled, not refused
        prepare(quick("topify_mlp"), table, columns=columns, need_target=False)
    assert "filled with the model's training median" in caplog.text
    text = df.to_csv(index=False).splitlines()
    (tmp_path / "b.csv").write_text("\n".join([*text[:3], ",,,,", *text[3:]]) + "\n")  # line 4: commas only
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hitrank"):
        blank = read_table(tmp_path / "b.csv")
    assert len(blank) == 60 and "1 row(s) with no value in any cell skipped (line 4)" in caplog.text
    assert blank.where(2) == "line 5"  # the rows after it keep their lines
    (tmp_path / "book.csv").write_bytes(b"PK\x03\x04" + bytes(300))
    with pytest.raises(LabelsError, match=r"book\.csv': not a text CSV \(it looks like a zip file or an Excel"):
        read_table(tmp_path / "book.csv")


def test_summary_json_is_strict_json_with_an_undefined_metric_as_null(tmp_path, monkeypatch):
    """A metric a fold cannot define (NaN: e.g. the Spearman of a fold whose top 10% is constant) is written
    as null, never as the bare NaN that jq and browsers refuse."""
    import json

    from hitrank.descriptors import cv as dcv

    real = dcv.regression_metrics

    def undefined_spearman(*args, **kwargs):
        return {**real(*args, **kwargs), "spearman@10%": float("nan")}

    monkeypatch.setattr(dcv, "regression_metrics", undefined_spearman)
    df = planted_table(tmp_path / "t.csv", n=60)
    table = read_table(_write(tmp_path / "t.csv", df))
    run_cv(quick("streams_mlp", "train.epochs=1"), table, tmp_path / "run", save_models=False)

    def refuse(name):
        raise AssertionError(f"summary.json holds {name}")

    summary = json.loads((tmp_path / "run" / "summary.json").read_text(), parse_constant=refuse)
    assert {r["spearman@10%"]["mean"] for r in summary["results"].values()} == {None}
    # the script that tabulates descriptor runs reads null as an undefined figure
    script = Path(__file__).resolve().parents[1] / "scripts" / "descriptor_table.py"
    table = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                           check=True).stdout
    assert "| run |" in table and "nan" in table and "**" in table  # the best Spearman still marked
