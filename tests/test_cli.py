import subprocess
import sys

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
    # cv of a transfer config refits from cached embeddings into a new --out: no resume promised
    monkeypatch.setitem(cli.COMMANDS, "cv", _failing(OSError(28, "No space left on device")))
    assert main(["cv", "--config", "real/ridge", "--labels", "l.csv", "--out", "r"]) == 2
    assert "resume" not in capsys.readouterr().err
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--labels", "l.csv", "--out", "r"]) == 2
    assert "run the same command again to resume" in capsys.readouterr().err
