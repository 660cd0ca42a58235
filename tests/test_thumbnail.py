import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from hitrank.cli import main
from hitrank.errors import AudioLoadError
from hitrank.extract import extract, extract_song
from hitrank.segments import params_for
from hitrank.thumbnail import find_highlight
from hitrank.thumbnail.attention import AttentionHighlighter, attention_to_seconds, batch_chunks
from hitrank.thumbnail.training import chorus_hit
from hitrank.thumbnail.window import pick_window


def test_window_is_attention_mass_argmax():
    curve = np.zeros(200)
    curve[50:80] = 1.0
    curve[120:125] = 3.0  # a short spike carries less mass than the 30 s plateau
    assert pick_window(curve, 200.0) == 50.0


def test_window_stays_inside_the_song():
    curve = np.zeros(100)
    curve[95:] = 1.0
    assert pick_window(curve, 100.0) == 70.0
    assert pick_window(np.ones(20), 20.0) == 0.0  # shorter than 30 s
    assert pick_window(np.zeros(200), 200.0) == 0.0  # silence: earliest window
    assert pick_window(np.full(200, np.nan), 200.0) == 0.0


def test_fallback_finds_choruses(corpus):
    truth = pd.read_csv(corpus / "truth.csv")
    fb, mid = [], []
    for row in truth.itertuples():
        h = find_highlight(corpus / "audio" / f"{row.song_id}.wav", "fallback")
        chorus = json.loads(row.chorus_times)
        fb.append(chorus_hit(h["start"], chorus))
        mid.append(chorus_hit(max(0.0, (h["duration"] - 30) / 2), chorus))
        assert 0 <= h["start"] <= max(0.0, h["duration"] - 30)
    assert np.mean(fb) >= 0.8 and np.mean(fb) > np.mean(mid) + 0.2


def test_hl30_extraction_and_silence(corpus, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"s{i}.wav").symlink_to(corpus / "audio" / f"song_{i:05d}.wav")
    sf.write(src / "silent.wav", np.zeros(22050 * 60, np.float32), 22050)
    params = params_for("hl30")
    rep = extract(src, tmp_path / "st", params, progress=False)
    # a silent song is kept and flagged (issue #20), no longer a failure
    assert rep.ok == 4 and rep.failed == 0
    man = pd.read_csv(tmp_path / "st" / "manifest.csv", keep_default_na=False)
    ok = man[man.status == "ok"]
    assert (ok.method == "fallback").all()
    assert all(len(json.loads(c)) >= 60 for c in ok.curve)
    assert ok.set_index("song_id").silent.to_dict() == {"s0.wav": False, "s1.wav": False,
                                                        "s2.wav": False, "silent.wav": True}
    assert np.load(tmp_path / "st" / "mel_hl30.npy").shape == (4, 128, 323)
    feats, info = extract_song(src / "silent.wav", params)
    assert info["silent"] and info["seg_start"] == 0 and np.isfinite(feats).all()
    with pytest.raises(AudioLoadError, match="silent"):  # the highlight command still refuses it
        find_highlight(src / "silent.wav")


def test_small_training_finds_a_planted_chorus():
    """Songs of 10 chunks of noise; one chunk holds a 'hook' whose level sets the target."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, chunks, frames = 160, 10, 32

    def make(k, low=0.0):
        mels, ys, where = [], [], []
        for _ in range(k):
            m = rng.normal(0, 1, (128, chunks * frames)).astype(np.float32)
            c, level = rng.integers(chunks), rng.uniform(low, 3)
            m[40:60, c * frames: (c + 1) * frames] += level
            mels.append(torch.from_numpy(m))
            ys.append(level)
            where.append(c)
        return mels, torch.tensor(ys, dtype=torch.float32), np.array(where)

    mels, y, _ = make(n)
    model = AttentionHighlighter(d=64, head=64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        for i in range(0, n, 16):
            x, mask = batch_chunks(mels[i: i + 16])
            pred, _ = model(x, mask)
            loss = torch.mean((pred[:, 0] - y[i: i + 16]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    test, _, where = make(40, low=1.5)  # audible plants
    with torch.no_grad():
        _, alpha = model(*batch_chunks(test))
    assert (alpha.argmax(dim=1).numpy() == where).mean() >= 0.8


def test_attention_to_seconds():
    from hitrank.features import FeatureParams

    curve = attention_to_seconds(np.array([0.1, 0.7, 0.2]), 9, FeatureParams())
    assert curve.shape == (9,) and curve.max() == 1.0 and curve[4] == 1.0


def test_cli_highlight_json(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.mp3"
    bad.write_text("nope")
    code = main(["highlight", str(corpus / "audio" / "song_00001.wav"), str(bad), "--json"])
    assert code == 1
    out = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(out) == 2 and set(out[0]) >= {"path", "start", "end", "method"}
    assert out[0]["end"] - out[0]["start"] == 30
    assert out[1]["path"] == str(bad) and out[1]["error"].startswith("cannot decode")  # one line per file
