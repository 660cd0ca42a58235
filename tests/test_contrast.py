"""Within-song training (``features.contrast`` / ``train.contrast``): each song's contrast
window is the part its highlighter rates lowest, stored beside the segment, and the
within-song hinge trains a model to score the segment above it. Checked on synthesised songs
whose chorus times are known."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from hitrank import audio, segments
from hitrank.bank import fit_many
from hitrank.checkpoint import load_checkpoint
from hitrank.config import feature_params, load_config, resolve_config
from hitrank.cv import prepare
from hitrank.data import load_dataset
from hitrank.errors import ConfigError, ParameterError
from hitrank.extract import extract
from hitrank.features import FeatureParams, log_mel
from hitrank.inference import predict
from hitrank.losses import within_song_loss
from hitrank.rank import rank_folder
from hitrank.runtime import cached_store_path
from hitrank.store import FeatureStore
from hitrank.targets import Target
from hitrank.thumbnail import contrast_window, find_highlight, pick_window
from hitrank.train import FitJob, fit

CONTRAST = ["features.segment=hl30", "features.highlighter=fallback", "features.contrast=lowest"]
QUICK = ["train.batch_size=8", "train.patience=20", "train.precision=fp32"]


def chorus_cover(start: float, end: float, choruses: list) -> float:
    return max(max(0.0, min(end, e) - max(start, s)) / (e - s) for s, e in choruses)


@pytest.fixture(scope="module")
def contrast_store(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("contrast_store")
    params = feature_params(load_config(None, CONTRAST))
    rep = extract(corpus / "labels.csv", out, params, progress=False)
    assert rep.failed == 0
    return out


def test_contrast_window_is_the_lowest_window_away_from_the_highlight():
    curve = np.ones(120)
    curve[40:70] = 5.0  # the highlight
    curve[95:120] = 0.1  # the quietest part
    start = pick_window(curve, 120.0)
    assert start == 40.0
    assert contrast_window(curve, 120.0, start) == 90.0  # the last window, over the quiet part
    # the quiet part next to the highlight is taken only while the overlap is <= half
    curve = np.ones(100)
    curve[30:60] = 5.0
    curve[45:75] = np.minimum(curve[45:75], 0.01)  # quiet right after the highlight's middle...
    curve[30:60] = 5.0  # ...but the highlight itself stays loud
    c = contrast_window(curve, 100.0, 30.0)
    assert min(c, 30.0) + 30 - max(c, 30.0) <= 15.0
    # median: the far window of median mass (here one of the plain ones, not the quiet end)
    curve = np.ones(120)
    curve[40:70] = 5.0
    curve[95:120] = 0.1
    curve[0:10] = 2.0
    m = contrast_window(curve, 120.0, 40.0, which="median")
    assert m not in (0.0, 90.0) and min(m, 40.0) + 30 - max(m, 40.0) <= 15.0
    with pytest.raises(ParameterError, match="'highest'; expected one of"):
        contrast_window(curve, 120.0, 40.0, which="highest")
    # songs too short for a window far enough from the highlight: the highlight itself
    assert contrast_window(np.ones(40), 40.0, 5.0) == 5.0
    assert contrast_window(np.ones(20), 20.0, 0.0) == 0.0
    with pytest.raises(ParameterError, match="1-D"):
        contrast_window(np.ones((3, 3)), 60.0, 0.0)


def test_extracted_contrast_windows_are_the_lowest_rated_parts(corpus, contrast_store):
    store = FeatureStore.open(contrast_store)
    assert store.has_contrast and store.contrast_path.name == "contrast_hl30.npy"
    man = store.manifest.set_index("song_id")
    truth = pd.read_csv(corpus / "truth.csv").set_index("song_id")
    params = store.params
    away = 0
    for sid in list(man.index)[:4]:
        h = find_highlight(corpus / "audio" / f"{sid}.wav")
        c = contrast_window(h["curve"], h["duration"], h["start"])
        assert abs(c - h["start"]) >= 15.0  # at most half of the window shared
        y, _ = audio.load(corpus / "audio" / f"{sid}.wav", params.sr)
        first = int(round(c * params.sr))
        want = log_mel(y[first: first + int(params.sr * 30)], params).numpy()
        got = store.load_contrast([sid])[0].astype(np.float32)
        np.testing.assert_allclose(got, want, atol=0.05)  # float16 storage of dB values
        assert not np.allclose(got, store.load([sid])[0].astype(np.float32))
        choruses = json.loads(truth.loc[sid, "chorus_times"])
        away += chorus_cover(c, c + 30, choruses) < 0.5
    assert away >= 3  # the lowest-rated part is mostly not a chorus


def test_within_song_loss():
    seg = torch.tensor([2.0, 0.0, 1.0], requires_grad=True)
    con = torch.tensor([0.0, 0.0, 5.0])
    usable = torch.tensor([True, True, False])
    loss = within_song_loss(seg, con, usable, margin=0.5)
    # song 0 clears the margin; song 1 misses it by 0.5; song 2 is left out
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert seg.grad.tolist() == pytest.approx([0.0, -0.5, 0.0])
    assert within_song_loss(seg, con, torch.zeros(3, dtype=torch.bool), 0.5).item() == 0.0


@pytest.mark.parametrize("model,sampling", [("simple_cnn", "none"), ("siamese", "ab")])
def test_contrast_training_scores_segments_above_their_contrast(contrast_store, model, sampling):
    """The within-song hinge does what it says, for rating and Siamese (pair) training: the
    model trained with it scores the training songs' segments above their contrast windows by
    more than half the margin, and by more than the same model trained without it (same seed,
    same songs)."""
    ds, _ = load_dataset(FeatureStore.open(contrast_store), contrast=True)
    n = len(ds)
    tr, va = np.arange(0, n - 6), np.arange(n - 6, n)
    gaps = {}
    for weight in (0.0, 2.0):
        model_keys = [f"model.name={model}", f"pairs.sampling={sampling}"]
        cfg = load_config(None, [*CONTRAST, *QUICK, *model_keys, "train.epochs=6", f"train.contrast={weight}"])
        cfg_x = load_config(None, [*CONTRAST, *QUICK, "train.epochs=6", "train.contrast=1"])
        _, X, _ = prepare(cfg_x, ds)  # the songs, then their contrast windows (2n rows)
        assert X.shape[0] == 2 * n
        target = Target.fit("log", ds.scores[tr])
        res = fit(cfg, X, ds.scores, ds.artists, tr, va, target, sampling=sampling,
                  w=0.5 if sampling != "none" else 0.0, margin=0.5 if sampling != "none" else None, seed=3)
        gaps[weight] = float(np.mean(predict(res.model, X, tr) - predict(res.model, X, tr + n)))
    assert gaps[2.0] > 0.5 * 0.5 and gaps[2.0] > gaps[0.0] + 0.1, gaps


def test_packaged_contrast_config():
    cfg = load_config(resolve_config("curve/c_simple_cnn_hl30_contrast"))
    assert cfg.train.contrast > 0 and cfg.features.contrast == "median"
    assert feature_params(cfg).contrast == "median"


def test_contrast_config_errors(contrast_store):
    with pytest.raises(ConfigError, match=r"set features.contrast: median \(or lowest\), with segment hl30"):
        load_config(None, ["train.contrast=1"])
    with pytest.raises(ConfigError, match="segment='mid30' has none"):
        load_config(None, ["features.contrast=lowest"])
    with pytest.raises(ConfigError, match="features.contrast='best'"):
        load_config(None, [*CONTRAST[:2], "features.contrast=best"])
    with pytest.raises(ConfigError, match="margin > 0"):
        load_config(None, [*CONTRAST, "train.contrast=1", "train.contrast_margin=0"])
    with pytest.raises(ParameterError, match="use segment 'hl30'"):
        segments.params_for("mid30", contrast="lowest")
    with pytest.raises(ConfigError, match="train.contrast_margin=nan"):
        load_config(None, [*CONTRAST, "train.contrast=1", "train.contrast_margin=.nan"])
    with pytest.raises(ConfigError, match="train.bank='on' cannot train with train.contrast=1.0"):
        load_config(None, [*CONTRAST, "train.contrast=1", "train.bank=on"])
    ds, _ = load_dataset(FeatureStore.open(contrast_store), contrast=True)
    cfg = load_config(None, [*CONTRAST, "train.contrast=1"])
    _, X, _ = prepare(cfg, ds)
    job = FitJob(np.arange(10), np.arange(10, 14), Target.fit("log", ds.scores[:10]))
    with pytest.raises(ParameterError, match="bank='on' cannot train with train.contrast"):
        fit_many(cfg, X, ds.scores, ds.artists, [job, job], bank="on")
    with pytest.raises(ConfigError, match=r"followed by their contrast windows \(48 rows\), got 24"):
        fit(cfg, X[: len(ds)], ds.scores, ds.artists, np.arange(10), np.arange(10, 14), job.target)
    no_contrast, _ = load_dataset(FeatureStore.open(contrast_store))  # not asked for: not loaded
    assert no_contrast.contrast is None
    with pytest.raises(ConfigError, match="the store holds none"):
        prepare(cfg, no_contrast)
    median = load_config(None, [*CONTRAST[:2], "features.contrast=median", "train.contrast=1"])
    with pytest.raises(ConfigError, match="features.contrast='median' but the store holds 'lowest' ones"):
        prepare(median, ds)


def test_state_key_of_older_runs_unchanged():
    """A training state written before the contrast keys existed still matches (an interrupted
    run resumes after the upgrade): the keys at their defaults are left out of the state key."""
    key = load_config(None, []).state_key()
    assert "contrast" not in key["features"] and "contrast" not in key["train"]
    assert "contrast_margin" not in key["train"]
    assert "whole_song" not in key["features"] and "window_loss" not in key["train"]
    key = load_config(None, [*CONTRAST, "train.contrast=0.5"]).state_key()
    assert key["features"]["contrast"] == "lowest" and key["train"]["contrast"] == 0.5


def test_cache_key_of_older_parameters_unchanged():
    """Feature caches made before ``contrast`` and ``whole_song`` existed keep their folder: the key of default
    parameters is the dict of the older fields."""
    older = {k: v for k, v in FeatureParams().to_dict().items() if k not in ("contrast", "whole_song")}
    digest = hashlib.sha1(json.dumps({"source": "/x", **older}, sort_keys=True).encode()).hexdigest()[:16]
    assert cached_store_path("/x", FeatureParams()).name == digest
    assert cached_store_path("/x", FeatureParams(segment="hl30", highlighter="fallback",
                                                 contrast="lowest")).name != digest
    assert cached_store_path("/x", FeatureParams(whole_song=True)).name != digest


def test_cv_with_contrast_ranks_without_contrast_windows(corpus, contrast_store, tmp_path):
    """A run trained with contrast windows: its checkpoints leave the training-only field out,
    so ranking extracts the segment only; the curve ranks with it."""
    from hitrank.commands import cross_validate

    out = tmp_path / "run"
    res = cross_validate(None, [*CONTRAST, *QUICK, "train.epochs=1", "cv.folds=3", "train.contrast=1",
                                "cv.processes=1"], out=out, store=contrast_store, progress=False)
    assert res["summary"]["n_songs"] == 24
    assert "contrast" not in load_checkpoint(out / "fold_00.pt").feature_params
    ranking, failures = rank_folder(corpus / "audio", out, cache=tmp_path / "cache", curve=True,
                                    progress=False, nearest=0)
    assert not failures and len(ranking) == 24 and ranking.best_score.notna().all()
    stores = [FeatureStore.open(p.parent) for p in (tmp_path / "cache").rglob("params.json")]
    assert stores and not any(s.has_contrast for s in stores)
