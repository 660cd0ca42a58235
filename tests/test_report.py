"""HTML ranking report: escaped, sortable, filterable and paginated; a catalogue-sized report
keeps its log-mel images in a side folder and stays under its size budget per song; checked in
a real headless browser (Chromium) when one is installed.

:func:`fabricate_catalogue` (a ranking of N songs with every column, no model run) is also
what ``scripts/bench_report.py`` measures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hitrank.cli import main
from hitrank.curve import PotentialCurve
from hitrank.errors import HitrankError
from hitrank.features import FeatureParams
from hitrank.report import (
    BUDGET_BYTES_PER_SONG,
    CURVE_POINTS,
    INLINE_IMAGES_MAX,
    PAGE_ROWS,
    mel_png,
    potential_svg,
    write_ranking_report,
)
from hitrank.store import FeatureStore

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


def fabricate_catalogue(folder: Path, n: int, seed: int = 0, n_mels: int = 16,
                        seconds: float = 5.0) -> pd.DataFrame:
    """A ranking of ``n`` songs as ``rank --curve --reference`` with neighbours would give it
    (every column, a hit-potential curve per song, an HL-30 curve and a log-mel per song in a
    feature store of (n_mels, frames of ``seconds``)), fabricated without any model.

    The audio files are hard links to one short WAV. ``ranking.attrs["store"]`` is the store.
    """
    rng = np.random.default_rng(seed)
    songs, store_dir = folder / "songs", folder / "store"
    songs.mkdir(parents=True)
    tiny = folder / "tiny.wav"
    sf.write(tiny, np.zeros(800, np.float32), 8000)
    ids = [f"{i:05d} Artist {i % 701} - A song title {i}.mp3" for i in range(n)]
    for sid in ids:
        os.link(tiny, songs / sid)
    params = FeatureParams(n_mels=n_mels, segment="hl30", segment_seconds=seconds, highlighter="fallback")
    store = FeatureStore.create_or_open(store_dir, params, fields=("method", "curve"))
    store.plan([(sid, str(songs / sid), "", 0.0) for sid in ids])
    shape = store.row_shape
    base = -80 + 60 * np.exp(-np.arange(shape[0]) / (shape[0] / 4))[:, None]
    duration = rng.uniform(120, 300, n)
    for sid, dur in zip(ids, duration, strict=True):
        mel = base + 12 * np.sin(np.arange(shape[1]) / rng.uniform(2, 9))[None] + rng.normal(0, 4, shape)
        hl = np.round(rng.random(int(dur)), 3).tolist()
        store.write(sid, mel, {"seg_start": 60.0, "seg_end": 90.0, "duration": float(dur), "method": "fallback",
                               "curve": json.dumps(hl)})
    store.close()
    score = np.sort(rng.normal(0, 1, n))[::-1]
    curves, rows = {}, []
    for i, sid in enumerate(ids):
        starts = np.arange(0.0, duration[i] - 30, 1.02)
        scores = score[i] + 0.3 * np.sin(starts / 20 + i) + rng.normal(0, 0.05, len(starts))
        curves[sid] = PotentialCurve(starts, scores, scores[None], 30.0, float(duration[i]), 60.0,
                                     rng.normal(score[i], 0.01, 11))
        near = rng.choice(5000, 5, replace=False)
        sims = np.sort(rng.uniform(0.5, 0.99, 5))[::-1]
        pct = 100 * (n - i - 0.5) / n
        rows.append({"rank": i + 1, "song_id": sid, "path": str(songs / sid), "score": score[i],
                     "score_std": 0.1, "seg_start": 60.0, "seg_end": 90.0, "duration": duration[i],
                     "artist": f"Artist {i % 701}", "title": f"A song title {i}", "flags": "unstable" if i % 50 == 0 else "",
                     "percentile": pct, "percentile_lo": max(pct - 8, 0), "percentile_hi": min(pct + 8, 100),
                     "best_start": curves[sid].best_start, "best_end": curves[sid].best_end,
                     "best_score": curves[sid].best_score, "shift_spread": curves[sid].shift_spread,
                     "nearest": ";".join(f"ref_{j:04d}.mp3" for j in near),
                     "nearest_similarity": ";".join(f"{v:.4f}" for v in sims),
                     "nearest_title": ";".join(f"Reference song {j}" for j in near),
                     "nearest_score": ";".join("" if j % 3 == 0 else f"{j / 5000:.3f}" for j in near),
                     "fit": float(rng.uniform(0, 100))})
    ranking = pd.DataFrame(rows)
    refs = folder / "label_2025"  # the reference catalogue's audio, at hand: the report links it
    refs.mkdir()
    paths = {}
    for j in range(5000):
        paths[f"ref_{j:04d}.mp3"] = refs / f"ref_{j:04d}.mp3"
        os.link(tiny, paths[f"ref_{j:04d}.mp3"])
    ranking.attrs.update(curves=curves, reference="the 5000 songs of label_2025", store=str(store_dir),
                         neighbours="the 5000 songs of label_2025", catalogue_paths=paths)
    return ranking


def _data(text: str) -> list:
    """The JSON rows of a report."""
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1))


def test_nearest_and_fit_are_shown_escaped(tmp_path):
    ranking = _ranking(tmp_path)
    ranking["nearest"] = [f"{EVIL};b.mp3", "c.mp3", ""]
    ranking["nearest_similarity"] = ["0.9312;0.88", "0.5", ""]
    ranking["nearest_title"] = ["<b>Hit</b>;", "", ""]  # b.mp3 has no title: its id is shown
    ranking["nearest_score"] = [";0.75", "", ""]
    ranking["fit"] = [72.4, 10.0, np.nan]
    text = write_ranking_report(ranking, [], tmp_path / "r.html", "m").read_text()
    assert "closest: &lt;b&gt;Hit&lt;/b&gt; (0.93), b.mp3 (0.88, hit 0.75)</div>" in text
    assert "closest: c.mp3 (0.50)" in text and "fit <b>72</b>/100" in text and "fit <b>10</b>/100" in text
    assert text.count('class="near">closest') == 2 and text.count("<b>") == 2  # the fit numbers only
    assert "<script>alert" not in text and [r[4] for r in _data(text)] == [72.4, 10.0, None]
    # without the columns, or with them empty (no catalogue), no column
    plain = ranking.drop(columns=["nearest", "nearest_similarity", "nearest_title", "nearest_score", "fit"])
    assert 'class="near"' not in write_ranking_report(plain, [], tmp_path / "s.html", "m").read_text()
    empty = ranking.assign(nearest="", nearest_similarity="", nearest_title="", nearest_score="", fit=np.nan)
    assert 'class="near"' not in write_ranking_report(empty, [], tmp_path / "e.html", "m").read_text()


def test_curves_are_thinned_to_a_budget():
    starts = np.arange(0.0, 270, 1.02)
    svg = potential_svg(starts, np.sin(starts / 10), 60.0, 20.0, 30.0, 300.0)
    points = re.search(r'<polyline points="([^"]*)"', svg).group(1).split()
    assert len(points) == CURVE_POINTS and len(starts) > 5 * CURVE_POINTS
    x = [float(p.split(",")[0]) for p in points]
    assert x == sorted(x) and 0 < x[0] < 10 and 140 < x[-1] <= 160  # the whole song, left to right
    one = potential_svg([0.0], [0.5], 0.0, 0.0, 30.0, 30.0)
    assert len(re.search(r'points="([^"]*)"', one).group(1).split()) == 2


def test_a_catalogue_report_keeps_its_budget_and_side_images(tmp_path):
    n = 3000
    ranking = fabricate_catalogue(tmp_path / "cat", n)
    out = tmp_path / "my report #1.html"
    write_ranking_report(ranking, [], out, "runs/ab", store_dir=ranking.attrs["store"])
    size = out.stat().st_size
    assert size <= BUDGET_BYTES_PER_SONG * n, f"{size / n:.0f} bytes per song"
    folder = tmp_path / "my report #1_files"
    assert sorted(int(p.stem) for p in folder.iterdir()) == list(range(1, n + 1))
    assert (folder / "17.png").read_bytes().startswith(b"\x89PNG")
    text = out.read_text()
    assert "data:image/png" not in text and "http://" not in text and "https://" not in text
    assert text.count('<tr data-rank="') == PAGE_ROWS  # the first page as HTML, the rest as JSON
    rows = _data(text)
    assert len(rows) == n and rows[0][6] == 0 and rows[n - 1][0] == n
    assert rows[n - 1][5].startswith(ranking.song_id[n - 1].lower())
    last = rows[n - 1][6]
    assert f'<img class="mel" loading="lazy" alt="log-mel (dB)" src="my%20report%20%231_files/{n}.png">' in last
    assert f'<audio controls preload="none" src="cat/songs/02999%20Artist%20{2999 % 701}%20-%20A%20song' in last
    first = ranking.nearest[n - 1].split(";")[0]  # the closest reference song plays from a link
    assert f'<a href="cat/label_2025/{first}" target="_blank">' in last
    assert "closest: <a href=" in last and ">Reference song " in last and "higher than" in last and 'class="potential"' in last
    # a rerun with fewer songs leaves no stale image; a foreign file in the folder is refused
    write_ranking_report(ranking.head(INLINE_IMAGES_MAX + 5), [], out, "runs/ab", store_dir=ranking.attrs["store"])
    assert len(list(folder.iterdir())) == INLINE_IMAGES_MAX + 5
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob("*.old*"))
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(HitrankError, match="notes.txt"):
        write_ranking_report(ranking.head(INLINE_IMAGES_MAX + 1), [], out, "runs/ab",
                             store_dir=ranking.attrs["store"])
    assert len(list(folder.iterdir())) == INLINE_IMAGES_MAX + 6 and not list(tmp_path.glob("*.tmp*"))
    # a small ranking is one self-contained file
    small = write_ranking_report(ranking.head(INLINE_IMAGES_MAX), [], tmp_path / "small.html", "runs/ab",
                                 store_dir=ranking.attrs["store"])
    assert small.read_text().count('src="data:image/png;base64,') == INLINE_IMAGES_MAX
    assert not (tmp_path / "small_files").exists()


def _dom(html_file: Path, fragment: str) -> str:
    res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"{html_file.as_uri()}#{fragment}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _ranks(dom: str) -> list[int]:
    return [int(r) for r in re.findall(r'<tr data-rank="(\d+)"', dom)]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_a_catalogue_report_in_a_real_browser(tmp_path):
    n = 2000
    ranking = fabricate_catalogue(tmp_path / "cat", n, seed=1)
    report = write_ranking_report(ranking, [], tmp_path / "report.html", "runs/ab", store_dir=ranking.attrs["store"])
    t0 = time.perf_counter()
    dom = _dom(report, "page=2")
    seconds = time.perf_counter() - t0
    assert _ranks(dom) == list(range(101, 201)) and 'data-page="2"' in dom, f"dump after {seconds:.1f} s"
    assert '<span class="of">20</span>' in dom and 'src="report_files/150.png"' in dom
    assert (tmp_path / "report_files" / "150.png").is_file()
    # the search runs over every page, the sort over every song, and the page is kept with both
    dom = _dom(report, "q=title%201234")
    assert _ranks(dom) == [1235] and '<span id="shown">1</span>' in dom
    dom = _dom(report, "q=TITLE%201&sort=score&dir=asc&page=2")
    hits = sorted((i + 1 for i, sid in enumerate(ranking.song_id) if "title 1" in sid.lower()), reverse=True)
    assert len(hits) > PAGE_ROWS + 1 and _ranks(dom) == hits[PAGE_ROWS:2 * PAGE_ROWS]
    assert f'<span id="shown">{len(hits)}</span>' in dom and 'data-sort="score:asc"' in dom
    dom = _dom(report, "sort=fit&dir=desc")
    assert _ranks(dom)[:PAGE_ROWS] == list(ranking.sort_values("fit", ascending=False, kind="stable")["rank"][:PAGE_ROWS])
    dom = _dom(report, "sort=pct&dir=asc&page=20")
    assert _ranks(dom) == list(range(100, 0, -1))
    dom = _dom(report, "sort=best&dir=desc&page=999")  # clamped to the last page
    best = ranking.sort_values("best_score", ascending=False, kind="stable")["rank"].tolist()
    assert _ranks(dom) == best[-PAGE_ROWS:] and 'data-page="20"' in dom


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
    ranks = _ranks(dom)
    assert sorted(ranks) == list(range(1, 7)) and ranks == sorted(ranks, reverse=True)  # ascending score
    assert 'data-sort="score:asc"' in dom and 'class="sorted-asc"' in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.wav" in dom and "<script>alert(1)" not in dom
    dom = _dom(report, "sort=name&dir=asc&q=song_0000")
    assert len(_ranks(dom)) == 5 and '<span id="shown">5</span>' in dom  # the filter hid the odd name
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "ranking_report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1300,600", report.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
