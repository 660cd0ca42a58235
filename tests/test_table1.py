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


def test_a_diverged_row_fails_table1_and_names_the_row(tmp_path, capsys, monkeypatch):
    """Before: a row whose model diverged (every prediction NaN) was one more line of the
    comparison and table1 exited 0; cv and train said so, table1 did not."""
    from types import SimpleNamespace

    from hitrank import cli

    labels = tmp_path / "labels.csv"
    labels.write_text("song_id,path,hit_score\n" + "".join(f"s{i},s{i}.wav,{i}\n" for i in range(12)))
    runs = []

    def cross_validate(cfg, out, **_):
        out.mkdir(parents=True)
        runs.append(cfg.name)
        return {"summary": {"n_songs": 12, "non_finite": 12 if len(runs) == 2 else 0}}

    fake = SimpleNamespace(
        extract_store=lambda cfg, params, labels, out, **_: (out, SimpleNamespace(failures=[])),
        cross_validate=cross_validate,
        compare=lambda outs, html: (pd.DataFrame({"row": [o.name for o in outs]}), None))
    monkeypatch.setattr(cli, "commands", fake)
    assert main(["table1", "--labels", str(labels), "--out", str(tmp_path / "t1"), "--rows", "a,b", "-q",
                 "--set", "train.lr=0.5"]) == 1
    err = capsys.readouterr().err
    assert len(runs) == 2 and f"error: row (b) {runs[1]}: 12 of 12 test predictions are NaN or inf" in err
    assert "row (a)" not in err and "--set train.lr=0.05" in err


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
