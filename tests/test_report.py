"""HTML ranking report: self-contained, escaped, sortable and filterable; checked in a real
headless browser (Chromium) when one is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hitrank.cli import main
from hitrank.report import mel_png, write_ranking_report

EVIL = "<script>alert(1)</script>.wav"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
ARTIFACTS = Path(os.environ.get("HITRANK_ARTIFACTS", Path(__file__).parent / "artifacts"))


def _ranking(tmp_path):
    (tmp_path / "<script>alert(1)<").mkdir()
    rows = []
    for i, name in enumerate(["a.wav", EVIL, "b & c's \"song\".wav"]):
        sf.write(tmp_path / name, np.zeros(100, np.float32) + 0.1, 8000)
        rows.append({"rank": i + 1, "song_id": name, "path": str(tmp_path / name), "score": 1.0 - i,
                     "score_std": 0.1, "seg_start": 10.0, "seg_end": 40.0, "duration": 180.0})
    return pd.DataFrame(rows)


def test_report_escapes_every_name(tmp_path):
    out = write_ranking_report(_ranking(tmp_path), [("x", str(tmp_path / "<img src=x>.mp3"), "cannot decode <b>")],
                               tmp_path / "r" / "report.html", "runs/<evil>")
    text = out.read_text()
    assert "<script>alert" not in text and "<img src=x>" not in text and "<b>" not in text.split("<style>")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.wav" in text and "cannot decode &lt;b&gt;" in text
    assert "runs/&lt;evil&gt;" in text
    # audio is linked by a relative, percent-encoded path that starts at the segment
    assert 'src="../%3Cscript%3Ealert%281%29%3C/script%3E.wav#t=10.0"' in text
    assert text.count("<script>") == 1  # only the page's own script
    assert "http://" not in text and "https://" not in text  # no CDN: works offline


def test_embedded_audio_and_png(tmp_path):
    out = write_ranking_report(_ranking(tmp_path), [], tmp_path / "report.html", "m", embed_audio=True)
    assert out.read_text().count('src="data:audio/x-wav;base64,') + out.read_text().count(
        'src="data:audio/wav;base64,') == 3
    uri = mel_png(np.random.default_rng(0).normal(size=(128, 323)))
    import base64

    png = base64.b64decode(uri.split(",", 1)[1])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")


def _dom(html_file: Path, fragment: str) -> str:
    res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"{html_file.as_uri()}#{fragment}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_in_a_real_browser(tmp_path, store, corpus, capsys):
    songs = tmp_path / "songs"
    (songs / "<script>alert(1)<").mkdir(parents=True)
    audio = sorted((corpus / "audio").glob("*.wav"))
    for p in audio[:5]:
        shutil.copy(p, songs / p.name)
    shutil.copy(audio[5], songs / EVIL)
    assert main(["train", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--store", str(store),
                 "--out", str(tmp_path / "m"), "--set", "train.epochs=1", "-q"]) == 0
    report = tmp_path / "report.html"
    assert main(["rank", str(songs), "--model", str(tmp_path / "m"), "--html", str(report), "-q",
                 "--cache", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    dom = _dom(report, "sort=score&dir=asc")
    ranks = [int(r) for r in re.findall(r'<tr data-rank="(\d+)"', dom)]
    assert sorted(ranks) == list(range(1, 7)) and ranks == sorted(ranks, reverse=True)  # ascending score
    assert 'data-sort="score:asc"' in dom and 'class="sorted-asc"' in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.wav" in dom and "<script>alert(1)" not in dom
    dom = _dom(report, "sort=name&dir=asc&q=song_0000")
    hidden = re.findall(r'<tr data-rank="\d+"[^>]*style="display: none;"', dom)
    assert len(hidden) == 1 and '<span id="shown">5</span>' in dom  # the filter hid the odd name
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "ranking_report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1300,600", report.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
