import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hitrank import __version__
from hitrank.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_examples(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_module_entry_point_and_version():
    out = subprocess.run([sys.executable, "-m", "hitrank", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_ctrl_c_while_the_cli_is_imported_is_one_line_not_a_traceback(monkeypatch, capsys):
    """Before: Ctrl-C in the second or so that Python spends importing the CLI (torch, pandas)
    printed a KeyboardInterrupt traceback."""
    from importlib.abc import MetaPathFinder

    from hitrank.__main__ import run

    class Interrupted(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hitrank.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "hitrank.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupted(), *sys.meta_path])
    assert run() == 130
    assert capsys.readouterr().err == "interrupted\n"
    entry = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'hitrank = "hitrank.__main__:run"' in entry  # the installed command goes through run()


def test_public_api():
    import hitrank

    for name in hitrank.__all__:
        assert getattr(hitrank, name) is not None
    with pytest.raises(AttributeError):
        hitrank.nothing_here  # noqa: B018


def test_help_examples_name_configs_that_exist():
    import shlex

    from hitrank.cli import get_parser
    from hitrank.config import resolve_config

    parser = get_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subs.items():
        for line in (sub.epilog or "").splitlines()[1:]:
            words = shlex.split(line.strip())
            if "--config" in words:
                assert resolve_config(words[words.index("--config") + 1]).is_file(), (name, line)


def test_one_tagger_default_and_its_aliases():
    from hitrank import tags
    from hitrank.cli import get_parser

    parser = get_parser()
    assert parser.parse_args(["tags", "a.wav"]).model == tags.DEFAULT_TAGGER
    assert parser.parse_args(["extract", "a", "--out", "s"]).tagger == tags.DEFAULT_TAGGER
    for name in ("musicnn", "MTT_musicnn", "MTT_vgg", "jynet", "jynet-mtt-std"):
        assert parser.parse_args(["tags", "a.wav", "--model", name]).model == name
    assert tags.resolve_tagger("MTT_musicnn") == tags.resolve_tagger("auto") == tags.DEFAULT_TAGGER


def test_an_embedding_scope_without_an_embedding_is_named_as_unused(monkeypatch, caplog):
    from types import SimpleNamespace

    import hitrank.cli as cli

    calls = []
    rep = SimpleNamespace(failures=[], silent=[], new=0, skipped=0, failed=0, store="s", files=[])
    monkeypatch.setattr(cli, "extract_features", lambda *a, **k: calls.append(k) or (rep, None))
    assert main(["extract", "a", "--out", "s", "--embedding-scope", "segment"]) == 0
    assert "--embedding-scope segment is not used: it applies with --embedding NAME" in caplog.text
    caplog.clear()
    assert main(["extract", "a", "--out", "s", "--embedding", "musicnn", "--embedding-scope", "segment"]) == 0
    assert main(["extract", "a", "--out", "s", "--embedding", "musicnn"]) == 0
    assert "not used" not in caplog.text
    assert [c["embedding_scope"] for c in calls] == ["segment", "segment", "song"]  # the default: the whole song


def _failing(exc):
    def command(args):
        raise exc
    return command


def test_bug_and_os_error_exit_codes(monkeypatch, capsys):
    import hitrank.cli as cli

    # an unexpected exception is a bug: traceback, one line saying so, exit 3 (not 1, "some inputs failed")
    monkeypatch.setitem(cli.COMMANDS, "fit", _failing(ZeroDivisionError("division by zero")))
    assert main(["fit", "--reference", "a.csv", "--candidates", "b.csv"]) == cli.EXIT_BUG == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "a bug in hitrank" in err
    # an OS error stops with one line; only commands that save work as they go promise a resume
    monkeypatch.setitem(cli.COMMANDS, "fit", _failing(FileNotFoundError(2, "No such file or directory", "p/x.csv")))
    assert main(["fit", "--reference", "a.csv", "--candidates", "b.csv"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "p/x.csv" in err and "resume" not in err
    monkeypatch.setitem(cli.COMMANDS, "rank", _failing(OSError(28, "No space left on device")))
    assert main(["rank", "songs", "--model", "run"]) == 2
    assert "run the same command again to resume" in capsys.readouterr().err


def test_out_of_memory_is_not_a_bug_and_transfer_runs_promise_no_resume(monkeypatch, capsys):
    import hitrank.cli as cli

    monkeypatch.setitem(cli.COMMANDS, "fit", _failing(MemoryError()))
    assert main(["fit", "--reference", "a.csv", "--candidates", "b.csv"]) == 2
    err = capsys.readouterr().err
    assert "out of memory" in err and "Traceback" not in err
    # cv of a transfer config runs again whole from its cached embeddings: no resume promised
    monkeypatch.setitem(cli.COMMANDS, "cv", _failing(OSError(28, "No space left on device")))
    assert main(["cv", "--config", "real/ridge", "--labels", "l.csv", "--out", "r"]) == 2
    assert "resume" not in capsys.readouterr().err
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--labels", "l.csv", "--out", "r"]) == 2
    assert "run the same command again to resume" in capsys.readouterr().err


def _ranking():
    import pandas as pd

    return pd.DataFrame({"rank": [1, 2], "song_id": ["a.wav", "long name.wav"], "score": [-12.131, 3.5],
                         "score_std": [0.593, 0.1], "n_models": [3, 3], "percentile": [38.0, float("nan")],
                         "percentile_lo": [33.0, float("nan")], "percentile_hi": [88.0, float("nan")],
                         "flags": ["", "unstable"], "nearest": ["b.wav;c.wav", ""],
                         "nearest_similarity": ["0.4616;0.3", ""]})


def test_rank_and_fit_tables_name_their_columns(monkeypatch, capsys, tmp_path):
    import hitrank.cli as cli

    monkeypatch.setattr(cli, "rank", lambda *a, **k: (_ranking(), []))
    assert main(["rank", "songs", "--model", "run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = lines[0]
    assert head.split("  ")[0] == "rank" and [h.strip() for h in head.split("  ") if h.strip()] == [
        "rank", "score +- std", "percentile [interval]", "song", "~ nearest (similarity)"]
    assert lines[1].split() == ["1", "-12.131", "+-", "0.593", "38%", "[33,", "88]", "a.wav", "~", "b.wav", "(0.4616)"]
    assert lines[2].split() == ["2", "+3.500", "+-", "0.100", "long", "name.wav", "[unstable]"]
    # each column starts where its header does; the numbers end where theirs do
    assert lines[1].index("a.wav") == lines[2].index("long name.wav") == head.index("song")
    assert lines[1].index("~ b.wav") == head.index("~ nearest")
    assert lines[1].index("0.593") + len("0.593") == head.index("score +- std") + len("score +- std")
    # the closest song by its title where it has one
    monkeypatch.setattr(cli, "rank", lambda *a, **k: (_ranking().assign(nearest_title=["Song B;", ""]), []))
    assert main(["rank", "songs", "--model", "run"]) == 0
    assert "  ~ Song B (0.4616)" in capsys.readouterr().out.splitlines()[1]

    fit = _ranking().rename(columns={"song_id": "id", "score": "fit"})[["rank", "id", "fit"]]
    fit.attrs["columns"] = ["tempo"]
    monkeypatch.setattr(cli, "fit_sources", lambda *a, **k: (fit, 5, []))
    assert main(["fit", "--reference", "a.csv", "--candidates", "b.csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "fit", "song"] and lines[1].split() == ["1", "-12.131", "a.wav"]
    # --out keeps the files that failed, as rank's CSV does (before: they were on the terminal only)
    failed = [("c.wav", "/songs/c.wav", "file is empty (0 bytes)")]
    fit = fit.assign(path=["/songs/a.wav", "/songs/long name.wav"])  # candidates from a folder of audio
    fit.attrs["columns"] = ["tempo"]
    monkeypatch.setattr(cli, "fit_sources", lambda *a, **k: (fit, 5, failed))
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--reference", "a.csv", "--candidates", "b.csv", "--out", "fit.csv", "-q"]) == 1
    table = pd.read_csv(tmp_path / "fit.csv", keep_default_na=False)
    assert list(table.columns) == ["rank", "id", "fit", "path", "error"] and len(table) == 3
    assert table.iloc[-1][["rank", "id", "path", "error"]].tolist() == ["", "c.wav", "/songs/c.wav",
                                                                       "file is empty (0 bytes)"]
    assert (table.error[:-1] == "").all()


@pytest.mark.parametrize("command", [["rank", "songs", "--model", "run"],
                                     ["fit", "--reference", "a.csv", "--candidates", "b.csv"]])
def test_negative_top_is_refused_before_any_work(command, monkeypatch, capsys):
    import hitrank.cli as cli

    for name in ("rank", "fit_sources"):
        monkeypatch.setattr(cli, name, _failing(AssertionError("ran")))
    assert main([*command, "--top", "-1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --top -1: expected 0 (print every row) or a positive number of rows"]


def _help(command: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse's line breaks undone


def test_help_says_what_the_output_is(capsys):
    for command in (["tags"], ["highlight"]):  # several files: one object per line, not one document
        assert "one JSON object per line (JSON Lines)" in _help(command, capsys), command
    text = _help(["cv"], capsys)
    assert "Spearman @10%" in text and "%%" not in text  # a description is not %-formatted
    assert "Spearman @10%" in _help([], capsys)  # the command list is
    assert "reference songs listed as closest (default 5)" in _help(["similar"], capsys)  # k >= 1 there
    assert "(default 5; 0 = none)" in _help(["rank"], capsys)


@pytest.mark.parametrize("top", ["-1", "0", "51"])
def test_tags_top_outside_the_tag_count_is_refused_before_any_work(top, monkeypatch, capsys):
    import hitrank.cli as cli

    monkeypatch.setattr(cli.tags, "tag_files", _failing(AssertionError("ran")))
    assert main(["tags", "song.wav", "--top", top]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --top {top}: expected 1 to 50 tags per file"]
