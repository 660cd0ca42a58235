"""Hit-potential curves (hitrank.curve), percentiles (hitrank.reference) and what ``rank``
makes of them, on synthesised songs whose chorus times are known."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from scipy.stats import percentileofscore

from hitrank import audio
from hitrank.cli import get_parser, main
from hitrank.curve import (
    SHIFTS_SECONDS,
    PotentialCurve,
    hop_frames,
    song_curve,
    unstable,
    window_mels,
)
from hitrank.errors import ParameterError
from hitrank.features import FeatureParams, log_mel
from hitrank.rank import PADDED_MIN_SHARE, padded_flags, rank_folder
from hitrank.reference import Reference, describe, training_reference
from hitrank.report import write_ranking_report
from hitrank.targets import Target

from .conftest import write_tone

QUICK = ["train.epochs=1", "train.patience=1", "cv.folds=3", "train.batch_size=8"]
PARAMS = FeatureParams()


class Loudness:
    """A known-answer scorer: the mean log-mel of a window (synthetic choruses are the
    loudest part of a song: fuller drums and the hook); ``sign=-1`` prefers the quietest."""

    uses_tags = False
    source = "loudness"
    target = Target("raw")

    def __init__(self, sign: float = 1.0):
        self.sign = sign

    def score(self, X, T=None):
        return self.sign * X.float().mean(dim=(1, 2)).double().numpy()


def chorus_cover(start: float, end: float, choruses: list) -> float:
    """The largest share of one chorus that the window [start, end] covers."""
    return max(max(0.0, min(end, e) - max(start, s)) / (e - s) for s, e in choruses)


def test_windows_are_the_cropped_segments_log_mels(rng):
    y = rng.normal(scale=0.1, size=PARAMS.sr * 40).astype(np.float32)
    mel = log_mel(y, PARAMS)
    hop = hop_frames(PARAMS)
    assert hop == 11  # 1 s at 22050 Hz, hop 2048
    windows, starts = window_mels(mel, PARAMS, hop)
    assert windows.shape == (len(starts), 128, PARAMS.n_frames) and starts[1] == pytest.approx(11 * 2048 / 22050)
    k = 5
    first = k * hop * PARAMS.hop_length
    crop = log_mel(y[first: first + int(PARAMS.sr * PARAMS.segment_seconds)], PARAMS)
    # identical but for the two zero-padded edge frames of the cropped STFT
    torch.testing.assert_close(windows[k][:, 2:-2], crop[:, 2:-2], rtol=1e-4, atol=1e-3)
    with pytest.raises(ParameterError, match="shorter than one 30 s window"):
        window_mels(mel[:, :100], PARAMS, hop)
    with pytest.raises(ParameterError, match="hop_seconds=0"):
        hop_frames(PARAMS, 0)


def test_best_window_ends_at_the_song_end_at_the_latest():
    # a 40 s song's last window starts a fraction of a frame past 10 s: its end is the song's
    c = PotentialCurve(starts=np.array([0.0, 10.031]), scores=np.array([0.1, 0.9]),
                       fold_scores=np.array([[0.1, 0.9]]), seconds=30.0, duration=40.0, analysed_start=0.0)
    assert (c.best_start, c.best_end) == (10.031, 40.0) and c.to_dict()["best_end"] == 40.0
    short = PotentialCurve(starts=np.array([0.0]), scores=np.array([0.5]), fold_scores=np.array([[0.5]]),
                           seconds=30.0, duration=12.5, analysed_start=0.0)  # padded: one window
    assert short.best_end == 12.5


def test_best_window_covers_a_chorus(corpus):
    """The issue's done-when at a small size, with a known-answer scorer: the loudest window
    covers at least half of a chorus in >= 80% of songs; a scorer that prefers quiet windows
    (the control) does not."""
    truth = pd.read_csv(corpus / "truth.csv").head(6)
    good = bad = 0
    for r in truth.itertuples():
        y, duration = audio.load(corpus / "audio" / f"{r.song_id}.wav", PARAMS.sr)
        choruses = json.loads(r.chorus_times)
        c = song_curve(y, PARAMS, [Loudness()], analysed_start=30.0, duration=duration)
        n_frames = 1 + len(y) // 2048  # every window of 323 whole-song frames, every 11 frames
        assert len(c.scores) == len(c.starts) == (n_frames - 323) // 11 + 1
        assert c.starts[-1] + 30 <= duration + 0.1
        # 30 s, but never past the song's end (the last window's frames reach a fraction of a frame past it)
        assert c.best_end == pytest.approx(min(c.best_start + 30.0, duration)) and c.best_score == c.scores.max()
        assert len(c.shift_scores) == len(SHIFTS_SECONDS) and c.shift_spread >= 0
        good += chorus_cover(c.best_start, c.best_end, choruses) >= 0.5
        q = song_curve(y, PARAMS, [Loudness(-1.0)], duration=duration)
        bad += chorus_cover(q.best_start, q.best_end, choruses) >= 0.5
    assert good >= 0.8 * len(truth) and bad < 0.5 * len(truth)


class _Members:
    """A checkpoint-like scorer of real networks: ``members`` [(weight, model)], scored like
    :class:`hitrank.checkpoint.CheckpointScorer` (weighted member outputs)."""

    source = "members"
    target = Target("raw")

    def __init__(self, members):
        self.members = members
        self.uses_tags = any(getattr(m, "uses_tags", False) for _, m in members)

    def score(self, X, T=None):
        with torch.no_grad():
            return sum(w * (m(X, T[: len(X)]) if m.uses_tags else m(X)).double().numpy() for w, m in self.members)


@pytest.mark.parametrize("name,kwargs", [("simple_cnn", {}), ("siamese", {}),
                                         ("tag_fusion", {"base": "simple_cnn", "mu": 0.3})])
def test_one_pass_curve_equals_scoring_every_window(rng, name, kwargs):
    """Fully convolutional models score a whole song once; every window's score is then the
    mean of its run of per-frame scores, equal to scoring the window on its own."""
    from hitrank.curve import frame_stride, score_song_windows, score_windows
    from hitrank.models import build

    torch.manual_seed(0)
    nets = [build(name, **kwargs).eval() for _ in range(2)]
    for net in nets:  # input statistics as training sets them, so the standardisation matters
        net.set_input_stats(torch.full((128,), -40.0), torch.full((128,), 12.0))
    scorers = [_Members([(0.7, nets[0]), (0.3, nets[1])]), _Members([(1.0, nets[1])])]
    assert frame_stride(scorers) == 4
    y = rng.normal(scale=0.1, size=PARAMS.sr * 75).astype(np.float32)
    mel = log_mel(y, PARAMS).to(torch.float16)
    hop = hop_frames(PARAMS, 1.0, frame_stride(scorers))
    assert hop == 12  # 1 s rounded to whole strides of 4 frames
    windows, _ = window_mels(mel, PARAMS, hop)
    tags = rng.uniform(size=50).astype(np.float32)
    import hitrank.curve as curve_module

    with torch.inference_mode():
        slow = score_windows(scorers, windows, tags)
        with pytest.MonkeyPatch.context() as mp:  # the one pass, not a silent fallback
            mp.setattr(curve_module, "score_windows", lambda *a, **k: pytest.fail("fell back to every window"))
            fast = score_song_windows(scorers, mel, windows, hop, tags)
        off = score_song_windows(scorers, mel, windows[:, :, :], 11, tags)  # hop not a stride multiple
    assert fast.shape == (2, windows.shape[0]) and np.ptp(fast[0]) > 0
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(off, slow, rtol=0, atol=0)  # fell back to scoring every window


def test_short_song_and_shift_spread(rng):
    y = rng.normal(scale=0.1, size=PARAMS.sr * 12).astype(np.float32)
    c = song_curve(y, PARAMS, [Loudness()], duration=12.0)
    assert len(c.scores) == 1 and c.best_start == 0.0 and c.duration == 12.0
    # noise is stationary: moving the window changes the loudness score very little
    long = rng.normal(scale=0.1, size=PARAMS.sr * 60).astype(np.float32)
    steady = song_curve(long, PARAMS, [Loudness()], analysed_start=15.0)
    long[int(15.9 * PARAMS.sr): int(16.1 * PARAMS.sr)] *= 30  # a burst the window moves across
    moved = song_curve(long, PARAMS, [Loudness()], analysed_start=15.0)
    assert moved.shift_spread > 10 * steady.shift_spread
    assert list(unstable([0.1, 0.3, np.nan], 1.0)) == [False, True, False]
    assert not unstable([5.0], float("nan")).any()


def test_percentile_is_the_rank_among_the_reference(rng):
    scores = rng.normal(size=50)
    ref = Reference("the 50 training songs of r (out-of-fold)", scores, [f"s{i}" for i in range(50)])
    # a reference song's own score: 100 * (rank - 0.5) / n, rank counted from the bottom
    rank = np.argsort(np.argsort(scores)) + 1
    np.testing.assert_allclose(ref.percentile(scores), 100 * (rank - 0.5) / 50)
    new = rng.normal(size=7)
    np.testing.assert_allclose(ref.percentile(new), [percentileofscore(scores, v, kind="mean") for v in new])
    p, lo, hi = ref.percentiles(new, np.full(7, 0.2), np.full(7, 0.1))
    assert np.all(lo <= p) and np.all(p <= hi) and np.all(hi - lo > 0)
    p0, lo0, hi0 = ref.percentiles(new, np.zeros(7))
    np.testing.assert_allclose(p0, lo0) and np.testing.assert_allclose(p0, hi0)
    assert describe(87.2, 78.4, 93.0, "X") == "higher than 87% [78, 93] of X" and describe(np.nan, 0, 0, "X") == ""
    assert describe(87.2, 87.2, 87.4, "X") == "higher than 87% of X"  # one model: no spread, no interval


def test_a_small_reference_is_warned_about_as_coarse(caplog):
    from hitrank.reference import FEW_REFERENCE, warn_if_coarse

    warn_if_coarse(Reference("the 4 validation songs of r", [0.1, 0.2, 0.3, 0.4], list("abcd")))
    assert "percentiles against the 4 validation songs of r: 4 songs, steps of 25 points" in caplog.text
    caplog.clear()
    n = FEW_REFERENCE
    warn_if_coarse(Reference("enough", np.arange(n, dtype=float), [str(i) for i in range(n)]))
    warn_if_coarse(None)
    assert not caplog.text
    with pytest.raises(ParameterError, match="at least 2"):
        Reference("tiny", [1.0, np.nan], ["a", "b"])


def test_padded_only_when_the_padding_matters():
    d = np.array([29.98, 29.0, 28.5, 28.4, 12.0])
    assert 30 * PADDED_MIN_SHARE == 1.5
    assert list(padded_flags(d, 30.0)) == [False, False, True, True, True]


@pytest.fixture(scope="module")
def cv_run(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("cvrun") / "run"
    sets = sum((["--set", o] for o in QUICK), [])
    assert main(["cv", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--store", str(store),
                 "--out", str(out), "-q", *sets]) == 0
    return out


def test_rank_with_curve_reference_and_tags(cv_run, corpus, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(2):  # 70 s of two corpus songs (short songs keep the test fast)
        y, sr = sf.read(corpus / "audio" / f"song_{i:05d}.wav", frames=70 * 22050)
        sf.write(folder / f"s{i}.wav", y, sr)
    y, sr = sf.read(corpus / "audio" / "song_00003.wav", frames=50 * 22050)
    with sf.SoundFile(folder / "tagged.flac", "w", sr, 1, format="FLAC") as f:
        f.artist, f.title = "Ärtist <b>", "A Title"
        f.write(y)
    write_tone(folder / "short.wav", seconds=29.98)
    cache = tmp_path / "cache"
    ranking, failures = rank_folder(folder, cv_run, cache=cache, progress=False, curve=True, segment="best")
    assert not failures and len(ranking) == 4
    for col in ("best_start", "best_end", "best_score", "shift_spread", "unstable", "percentile",
                "percentile_lo", "percentile_hi", "artist", "title", "ood_note"):
        assert col in ranking, col
    row = ranking.set_index("song_id")
    assert row.loc["tagged.flac", "artist"] == "Ärtist <b>" and row.loc["tagged.flac", "title"] == "A Title"
    assert not row.loc["short.wav", "padded"] and "padded" not in row.loc["short.wav", "flags"]
    # segment="best" ranks by the best window, which is never worse than the configured one's
    # curve window; the curves are in attrs for the report
    assert list(ranking.best_score) == sorted(ranking.best_score, reverse=True)
    assert set(ranking.attrs["curves"]) == set(ranking.song_id)
    # the analysed segment, scored as `score` is, is one of the curve's windows: the best window
    # never scores below it (a model's scores move with sub-frame shifts of its window)
    assert (ranking.best_score >= ranking.score - 1e-12).all()
    for _, r in ranking.iterrows():
        c = ranking.attrs["curves"][r.song_id]
        at = np.flatnonzero(c.starts == r.seg_start)
        assert len(at) and np.isclose(c.scores[at], r.score, rtol=0, atol=1e-9).any()
    np.testing.assert_allclose(ranking.best_end, np.minimum(ranking.best_start + 30.0, ranking.duration), atol=1e-3)
    assert ranking.percentile.between(0, 100).all() and (ranking.shift_spread >= 0).all()
    assert (ranking.percentile_lo <= ranking.percentile).all() and (ranking.percentile <= ranking.percentile_hi).all()
    # the default reference is the run's out-of-fold predictions: a training song's percentile
    # from its out-of-fold score is its rank among them
    ref, why = training_reference(cv_run, Target("log"))
    assert not why and len(ref.scores) == 24 and "training songs" in ranking.attrs["reference"]
    oof = pd.read_csv(cv_run / "predictions.csv")
    own = ref.percentile(np.log(oof.pred.to_numpy()))
    rank = np.argsort(np.argsort(oof.pred.to_numpy())) + 1
    np.testing.assert_allclose(own, 100 * (rank - 0.5) / 24)
    np.testing.assert_allclose(ranking.percentile, ref.percentile(ranking.score))
    with pytest.raises(ParameterError, match="--curve"):
        rank_folder(folder, cv_run, cache=cache, progress=False, segment="best")
    # the report: words, curve, both windows, escaped tags
    out = write_ranking_report(ranking, [], tmp_path / "report.html", str(cv_run), store_dir=ranking.attrs["store"])
    text = out.read_text()
    assert "higher than" in text and "of the 24 training songs" in text
    assert 'class="potential"' in text and 'class="best"' in text and "Ärtist &lt;b&gt;" in text
    assert text.count("data-jump=") == 8 and text.count("<audio") == 4
    # a reference folder, scored by the same model and cached
    refd, _ = rank_folder(folder, cv_run, cache=cache, progress=False, reference=folder)
    assert refd.attrs["reference"] == "the 4 songs of new"
    np.testing.assert_allclose(sorted(refd.percentile), 100 * (np.arange(4) + 0.5) / 4)


def test_train_run_stores_validation_scores(store, tmp_path):
    sets = sum((["--set", o] for o in QUICK), [])
    assert main(["train", "--config", "configs/table1/a_simple_cnn_mid30.yaml", "--store", str(store),
                 "--out", str(tmp_path / "tr"), "-q", *sets]) == 0
    val = pd.read_csv(tmp_path / "tr" / "validation.csv")
    assert {"song_id", "hit_score", "pred"} <= set(val.columns) and 0 < len(val) < 24
    ref, why = training_reference(tmp_path / "tr" / "model.pt", Target("log"))
    assert not why and "validation songs" in ref.name
    (tmp_path / "tr" / "validation.csv").unlink()
    ref, why = training_reference(tmp_path / "tr", Target("log"))
    assert ref is None and "--reference" in why


def test_docs_commands_parse():
    page = Path(__file__).resolve().parents[1] / "docs" / "ranking.md"
    commands = [line.strip()[len("hitrank "):] for line in page.read_text().splitlines()
                if line.strip().startswith("hitrank ")]
    assert len(commands) >= 4
    parser = get_parser()
    for cmd in commands:
        args = parser.parse_args(shlex.split(cmd, comments=True))
        assert args.command


def test_cli_curve_and_api(cv_run, corpus, tmp_path, capsys):
    import hitrank

    folder = tmp_path / "one"
    folder.mkdir()
    y, sr = sf.read(corpus / "audio" / "song_00004.wav", frames=45 * 22050)
    sf.write(folder / "a.wav", y, sr)
    code = main(["rank", str(folder), "--model", str(cv_run), "--curve", "--segment", "best", "--json", "-q",
                 "--cache", str(tmp_path / "cache")])
    assert code == 0
    row = json.loads(capsys.readouterr().out)["ranking"][0]
    assert {"best_start", "best_end", "best_score", "shift_spread", "unstable", "percentile"} <= set(row)
    assert isinstance(row["unstable"], bool) and 0 <= row["percentile"] <= 100
    c = hitrank.potential_curve(folder / "a.wav", cv_run, device="cpu")
    assert c.fold_scores.shape == (3, len(c.starts)) and c.analysed_start == pytest.approx(7.5)
    assert c.best_score == pytest.approx(row["best_score"], abs=1e-4)
    assert c.best_score >= row["score"] - 1e-4 and np.isclose(c.scores, row["score"], atol=1e-4).any()
    assert main(["rank", str(folder), "--model", str(cv_run), "--segment", "best", "-q"]) == 2
    assert "--curve" in capsys.readouterr().err


def test_potential_curve_best_measures_shifts_around_the_best_window(corpus, cv_run, tmp_path):
    import soundfile as sf

    import hitrank

    y, sr = sf.read(corpus / "audio" / "song_00004.wav", frames=60 * 22050)
    sf.write(tmp_path / "a.wav", y, sr)
    seg = hitrank.potential_curve(tmp_path / "a.wav", cv_run, device="cpu")
    best = hitrank.potential_curve(tmp_path / "a.wav", cv_run, device="cpu", analysed="best")
    # one curve, read two ways: the same windows and scores, the shift spread measured elsewhere
    np.testing.assert_allclose(best.scores, seg.scores, atol=1e-5)
    assert best.analysed_start == pytest.approx(seg.best_start) and seg.analysed_start == pytest.approx(15.0)
    assert len(best.shift_scores) > 1 and not np.allclose(best.shift_scores[:1], seg.shift_scores[:1])
    # its shift scores are the curve's own windows near the best one (scored alone)
    near = np.abs(best.starts - best.best_start) <= 1.0
    assert np.min(np.abs(best.shift_scores[:, None] - best.scores[near][None])) < 1e-3
