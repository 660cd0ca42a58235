import hashlib
import json

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.stats import spearmanr

from hitrank import synth
from hitrank.engines import CHUNKSIZE


def _songs(n=4000, seed=0):
    assignment, styles = synth.artist_roster(n, seed)
    return [synth.draw_song(i, seed, assignment[i], styles[assignment[i]]) for i in range(n)]


def test_score_is_long_tailed():
    h = np.array([s.hit_score for s in _songs()])
    assert (h < h.mean()).mean() > 0.8  # most songs below the mean (paper: 87.5%)
    top = np.sort(h)[::-1][: len(h) // 10]
    assert top.sum() / h.sum() > 0.5  # the top 10% hold most of the plays
    assert h.min() > 0


def test_oracle_ranks_the_top_decile():
    songs = _songs()
    h = np.array([s.hit_score for s in songs])
    oracle = np.array([s.oracle for s in songs])
    top = np.argsort(-h)[: len(h) // 10]
    assert spearmanr(oracle[top], h[top])[0] >= 0.5


def test_form_and_chorus_placement():
    songs = _songs(2000)
    assert all(90 <= s.duration <= 300 for s in songs)
    assert {len(s.chorus_times) for s in songs} == {2, 3, 4}
    starts = {round(s.chorus_times[0][0], 1) for s in songs}
    assert len(starts) > 100  # chorus times are song-specific

    def mid_has_chorus(s):
        a, b = s.duration / 2 - 15, s.duration / 2 + 15
        return any(min(e, b) - max(c, a) >= 0.5 * (e - c) for c, e in s.chorus_times)

    share = np.mean([mid_has_chorus(s) for s in songs])
    assert 0.2 < share < 0.8


def test_artists_have_several_songs():
    counts = pd.Series([s.artist for s in _songs(1000)]).value_counts()
    assert (counts > 1).sum() > 50 and (counts == 1).sum() > 50


def test_files_match_truth(corpus):
    truth = pd.read_csv(corpus / "truth.csv")
    labels = pd.read_csv(corpus / "labels.csv")
    assert list(labels.columns) == ["song_id", "path", "artist", "hit_score"]
    assert list(truth.song_id) == list(labels.song_id)
    louder, loud, hits = [], [], []
    for row in truth.itertuples():
        y, sr = sf.read(corpus / "audio" / f"{row.song_id}.wav", dtype="float32")
        assert abs(len(y) / sr - (row.duration + 1.0)) < 0.01  # 1 s release tail
        sections = json.loads(row.sections)

        def rms(names, y=y, sr=sr, sections=sections):
            parts = [y[int(a * sr): int(b * sr)] for n, a, b in sections if n in names]
            return float(np.sqrt(np.mean(np.concatenate(parts) ** 2)))

        louder.append(rms({"chorus"}) > rms({"verse"}))
        loud.append(float(np.sqrt(np.mean(y**2))))
        hits.append(row.hit_score)
    assert np.mean(louder) >= 0.9  # the hook plays in the chorus: it is louder there
    # the mix is normalised to a random loudness: loudness alone does not reveal hits
    assert abs(spearmanr(loud, hits)[0]) < 0.5


def test_same_seed_same_files(tmp_path):
    a = synth.synthesize(tmp_path / "a", 3, seed=5, sr=16000, progress=False)
    b = synth.synthesize(tmp_path / "b", 3, seed=5, sr=16000, progress=False)
    pd.testing.assert_frame_equal(a, b)
    for rel in a.path:
        ha = hashlib.sha256((tmp_path / "a" / rel).read_bytes()).hexdigest()
        hb = hashlib.sha256((tmp_path / "b" / rel).read_bytes()).hexdigest()
        assert ha == hb
    c = synth.synthesize(tmp_path / "c", 3, seed=6, sr=16000, progress=False)
    assert not np.allclose(a.hit_score, c.hit_score)


def test_formats_decode(tmp_path):
    for fmt in ("flac", "ogg", "mp3"):
        synth.synthesize(tmp_path / fmt, 1, seed=1, fmt=fmt, sr=22050, stereo=True, progress=False)
        info = sf.info(str(tmp_path / fmt / "audio" / f"song_00000.{fmt}"))
        assert info.channels == 2 and info.duration > 90


def test_rerun_on_a_finished_corpus_starts_no_workers(tmp_path, monkeypatch):
    """A rerun only draws the songs whose files exist: no worker process is started for them
    (a pool torn down while its workers were still starting printed a traceback)."""
    n = CHUNKSIZE + 1  # two tasks' worth of songs: a pool of two workers, were it started
    first = synth.synthesize(tmp_path / "c", n, seed=5, sr=16000, progress=False)
    (tmp_path / "c" / first.path[1]).unlink()  # an interrupted run: one file to render again

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr("hitrank.engines.ProcessPoolExecutor", no_pool)
    again = synth.synthesize(tmp_path / "c", n, seed=5, sr=16000, workers=2, progress=False)
    pd.testing.assert_frame_equal(first, again)
    assert (tmp_path / "c" / first.path[1]).exists()

