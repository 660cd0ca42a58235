"""Smoke tests on the five real recordings in ../shared/audio (skipped when absent)."""

import json

import pandas as pd
import pytest

from hitrank.cli import main

from .conftest import SHARED_AUDIO

pytestmark = pytest.mark.skipif(not SHARED_AUDIO.is_dir(), reason=f"{SHARED_AUDIO} not present")


def test_extract_and_highlight_real_music(tmp_path, capsys):
    assert main(["extract", str(SHARED_AUDIO), "--out", str(tmp_path / "st"), "-q"]) == 0
    man = pd.read_csv(tmp_path / "st" / "manifest.csv")
    assert len(man) == 5 and (man.status == "ok").all()
    short = man[man.song_id.str.contains("trumpet")].iloc[0]
    assert bool(short.padded) and short.duration < 30
    capsys.readouterr()
    files = sorted(str(p) for p in SHARED_AUDIO.glob("*.ogg"))
    assert main(["highlight", *files, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5
    for r in rows:
        assert 0 <= r["start"] <= max(0.0, r["duration"] - 30) + 1e-6
