"""`hitrank table1`: the twelve rows on a small synthetic corpus, end to end."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from hitrank.cli import main
from hitrank.errors import ConfigError
from hitrank.table1 import row_configs

needs_musicnn = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                   reason="the + tag rows need: pip install --no-deps musicnn==0.1.0")


def test_rows_are_parsed_and_checked():
    assert [r for r, _ in row_configs("a,c,i")] == ["a", "c", "i"]
    assert [r for r, _ in row_configs("ica")] == ["a", "c", "i"]
    assert len(row_configs("abcdefghijkl")) == 12
    with pytest.raises(ConfigError, match="rows are letters"):
        row_configs("a,z")


@needs_musicnn
@pytest.mark.slow  # minutes on 2 cores: run by .ci/run with -m 'slow or scale'
def test_table1_runs_the_twelve_rows(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))  # no imported JYnet: musicnn tags
    out = tmp_path / "t1"
    args = ["table1", "--labels", str(corpus / "labels.csv"), "--out", str(out), "-q",
            "--set", "train.epochs=1", "--set", "cv.folds=3", "--set", "pairs.w=[0.5]",
            "--set", "tags.mu=[0.5]", "--set", "pairs.fusion=[0.5]"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    runs = sorted(p.name for p in out.iterdir() if (p / "summary.json").exists())
    assert [r[0] for r in runs] == list("abcdefghijkl")
    assert sorted(p.name for p in (out / "stores").iterdir()) == ["hl30_tags_musicnn", "mid30_tags_musicnn"]
    table = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    assert (table.row == "(a) paper").any() and (table.row == "(l)").any()
    assert (out / "comparison.html").is_file() and "(l) paper" in stdout
    for r in runs:
        s = json.loads((out / r / "summary.json").read_text())
        assert s["folds"] == 3 and "pooled_ci" in s
    # a second run resumes: nothing is redone
    assert main(args) == 0
