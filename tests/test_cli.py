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
