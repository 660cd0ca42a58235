"""Whole-song training (``features.whole_song`` / ``train.window_loss``): each song's whole
log-mel is stored beside its segment, every 30 s window is scored from one pass of the model,
and the loss trains the song's best window. Checked on synthesised songs whose chorus times
are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from hitrank import audio
from hitrank.bank import fit_many
from hitrank.checkpoint import load_checkpoint
from hitrank.config import feature_params, load_config, resolve_config
from hitrank.cv import dataset_parts, prepare
from hitrank.data import load_dataset
from hitrank.errors import ConfigError, ParameterError, StoreError
from hitrank.extract import extract
from hitrank.features import FeatureParams, log_mel
from hitrank.inference import predict
from hitrank.models import build
from hitrank.store import FeatureStore
from hitrank.targets import Target
from hitrank.thumbnail import contrast_window
from hitrank.train import FitJob, fit
from hitrank.whole_song import SongMels, outputs_per_window, whole_songs

WHOLE = ["features.segment=hl30", "features.highlighter=fallback", "features.contrast=median",
         "features.whole_song=true", "train.window_loss=1", "train.contrast=1"]
QUICK = ["train.batch_size=8", "train.patience=20", "train.precision=fp32"]


@pytest.fixture(scope="module")
def whole_store(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole_store")
    rep = extract(corpus / "labels.csv", out, feature_params(load_config(None, WHOLE)), progress=False)
    assert rep.failed == 0
    return out


def _random_cnn(seed: int = 0):
    torch.manual_seed(seed)
    model = build("simple_cnn")
    model.set_input_stats(torch.full((128,), -30.0), torch.full((128,), 15.0))
    return model.eval()


def test_store_holds_each_songs_whole_log_mel(corpus, whole_store, store):
    ws = FeatureStore.open(whole_store)
    assert ws.has_whole and "whole_hl30/" in ws.files and "whole" in ws.side_names
    sid = ws.manifest.song_id[0]
    y, _ = audio.load(corpus / "audio" / f"{sid}.wav", ws.params.sr)
    (got,) = ws.load_whole([sid])
    want = log_mel(y, ws.params).numpy()
    assert got.dtype == np.float16 and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float32), want, atol=0.05)  # float16 of dB values
    assert got.shape[1] == 1 + len(y) // ws.params.hop_length  # every frame of the song
    with pytest.raises(StoreError, match="holds no whole-song log-mels; extract with features.whole_song"):
        FeatureStore.open(store).load_whole([sid])  # a store made without them


def test_a_broken_whole_song_file_is_named(whole_store, tmp_path):
    import shutil

    copy = tmp_path / "st"
    shutil.copytree(whole_store, copy)
    store = FeatureStore.open(copy)
    sid = store.manifest.song_id[0]
    path = copy / "whole_hl30" / f"{int(store.manifest.row[0]):07d}.npy"
    path.write_bytes(b"not an array")
    with pytest.raises(StoreError, match=rf"{path.name}.*song '{sid}'.*cannot be read.*re-extract"):
        store.load_whole([sid])


def test_window_scores_equal_scoring_each_window_alone():
    """One pass over a batch of whole songs of different lengths (padded) gives every window
    the score the model gives that window on its own; windows reaching into the padding are
    marked outside; the best window, the segment and the contrast are read off the same pass."""
    model = _random_cnn()
    rng = np.random.default_rng(0)
    n_frames = 323
    lengths = [323, 500, 777, 1024]
    mels = [(rng.normal(-30, 15, (128, n)).astype(np.float16)) for n in lengths]
    songs = SongMels(mels, np.array([0.0, 10.0, 20.0, 40.0]), np.array(lengths) / 10.77, [""] * 4)
    ws = whole_songs(songs, np.zeros((4, 128, n_frames), np.float16), FeatureParams().to_dict(), "",
                     model.frame_stride, torch.device("cpu"))
    assert ws.hop == 12 and ws.hop % model.frame_stride == 0
    n_out = outputs_per_window(model, 128, n_frames)
    ids = np.arange(4)
    with torch.no_grad():
        s, inside, c = ws.window_scores(model, ids, n_out)
        best, seg, con, has = ws.forward(model, ids, n_out)
        for b, m in enumerate(mels):
            x = torch.from_numpy(m.astype(np.float32))
            n_win = (m.shape[1] - n_frames) // ws.hop + 1
            assert inside[b].sum().item() == n_win and inside[b, :n_win].all()
            alone = torch.stack([model(x[None, :, w * ws.hop: w * ws.hop + n_frames])[0] for w in range(n_win)])
            torch.testing.assert_close(s[b, :n_win], alone, atol=1e-4, rtol=1e-4)
            assert best[b].item() == pytest.approx(alone.max().item(), abs=1e-4)
            f = ws.seg_frame[b]
            assert f % model.frame_stride == 0 and f + n_frames <= m.shape[1]
            assert seg[b].item() == pytest.approx(model(x[None, :, f: f + n_frames])[0].item(), abs=1e-4)
    assert not has.any() and torch.equal(con, seg)  # no curves: no contrast windows
    np.testing.assert_allclose(ws.best_scores(model, ids[::-1], n_out), best.numpy()[::-1], atol=1e-5)
    # batches: every song once, similar lengths together, the order from the generator
    batches = ws.batches(ids, 2, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == [0, 1, 2, 3]
    assert sorted(map(sorted, (b.tolist() for b in batches))) == [[0, 1], [2, 3]]
    # long songs: fewer to a batch (at most max_frames padded frames, one song at least)
    small = ws.batches(ids, 4, np.random.default_rng(1), max_frames=1600)
    assert sorted(b.tolist() for b in small) == [[0, 1], [2], [3]]


def test_contrast_windows_come_from_the_highlighter_curve(whole_store):
    ds, _ = load_dataset(FeatureStore.open(whole_store), whole=True)
    w = ds.whole
    assert isinstance(w, SongMels) and len(w) == len(ds) and ds.contrast is None
    starts = w.contrast_starts("median", 30.0)
    man = FeatureStore.open(whole_store).manifest.set_index("song_id")
    for i, sid in enumerate(ds.song_ids[:5]):
        c = contrast_window(np.array(json.loads(man.loc[sid, "curve"])), man.loc[sid, "duration"],
                            man.loc[sid, "seg_start"], 30.0, "median")
        assert starts[i] == c or (np.isnan(starts[i]) and c == man.loc[sid, "seg_start"])
    model = build("simple_cnn")
    ws = whole_songs(w, ds.features, ds.params, "median", model.frame_stride, torch.device("cpu"))
    usable = ws.con_frame >= 0
    assert usable.sum() >= len(ds) // 2
    assert np.all(np.abs(ws.con_frame[usable] - ws.seg_frame[usable]) >= 15 * 10)  # about 15 s apart


def test_whole_song_training_ranks_by_the_best_window(corpus, whole_store):
    """Trained on whole songs, the model's best window scores the training songs close to
    their hit scores (the term it trains), and closer than the same model trained on the
    segment only (window_loss 0, same seed, same songs): the maximum over a song's windows is
    what whole-song training learns and what segment training over-rates."""
    ds, _ = load_dataset(FeatureStore.open(whole_store), whole=True)
    n = len(ds)
    tr, va = np.arange(0, n - 6), np.arange(n - 6, n)
    target = Target.fit("log", ds.scores[tr])
    z = target.transform(ds.scores[tr])
    err = {}
    for weight in (0.0, 1.0):
        cfg = load_config(None, [*WHOLE[:4], *QUICK, "train.epochs=12", "train.contrast=0",
                                 f"train.window_loss={weight if weight else 1}"])
        _, X, _ = prepare(cfg, ds)
        ws = whole_songs(ds.whole, ds.features, ds.params, "", 4, X.device)
        if weight:
            res = fit(cfg, X, ds.scores, ds.artists, tr, va, target, seed=3, songs=ws)
        else:
            plain = load_config(None, [*WHOLE[:3], *QUICK, "train.epochs=12"])
            res = fit(plain, X, ds.scores, ds.artists, tr, va, target, seed=3)
        best = ws.best_scores(res.model, tr, outputs_per_window(res.model, 128, X.shape[-1]))
        err[weight] = float(np.mean((best - z) ** 2))
        # the result's validation scores are the segment's (as rank scores), not the best window's
        np.testing.assert_allclose(res.val_pred, predict(res.model, X, va), atol=1e-5)
    assert err[1.0] < 0.8 * err[0.0], err


def test_packaged_whole_song_config():
    cfg = load_config(resolve_config("curve/c_simple_cnn_hl30_whole"))
    assert cfg.train.window_loss > 0 and cfg.features.whole_song and cfg.train.contrast > 0
    assert feature_params(cfg).whole_song
    assert dataset_parts(cfg) == {"contrast": False, "whole": True}


def test_whole_song_config_errors(whole_store):
    with pytest.raises(ConfigError, match="set features.whole_song: true"):
        load_config(None, ["train.window_loss=1"])
    with pytest.raises(ConfigError, match="train.window_loss=-1.0: need a weight >= 0"):
        load_config(None, ["train.window_loss=-1"])
    with pytest.raises(ConfigError, match=r"needs features.tags false \(got True\)"):
        load_config(None, ["features.whole_song=true", "train.window_loss=1", "features.tags=true"])
    with pytest.raises(ConfigError, match="pairs.sampling none \\(got 'ab'\\)"):
        load_config(None, ["features.whole_song=true", "train.window_loss=1", "model.name=siamese",
                           "pairs.sampling=ab"])
    with pytest.raises(ConfigError, match="train.bank auto or off \\(got 'on'\\)"):
        load_config(None, ["features.whole_song=true", "train.window_loss=1", "train.bank=on"])
    with pytest.raises(ParameterError, match="whole_song='yes'"):
        FeatureParams(whole_song="yes")
    cfg = load_config(None, WHOLE)
    no_whole, _ = load_dataset(FeatureStore.open(whole_store))  # not asked for: not loaded
    assert no_whole.whole is None
    with pytest.raises(ConfigError, match="holds no whole-song log-mels .made without features.whole_song.; "
                                          "extract into a new store"):
        prepare(cfg, no_whole)
    ds, _ = load_dataset(FeatureStore.open(whole_store), whole=True)
    _, X, _ = prepare(cfg, ds)
    assert X.shape[0] == len(ds)  # no contrast rows: the contrast is read off the whole song
    ws = whole_songs(ds.whole, ds.features, ds.params, "median", 4, X.device)
    job = FitJob(np.arange(10), np.arange(10, 14), Target.fit("log", ds.scores[:10]))
    with pytest.raises(ParameterError, match="bank='on' cannot train on whole songs"):
        fit_many(cfg, X, ds.scores, ds.artists, [job, job], bank="on", songs=ws)
    with pytest.raises(ConfigError, match="per-frame scores"):
        whole_songs(ds.whole, ds.features, ds.params, "median", 0, X.device)
    # a store with whole songs also serves a config that does not train on them
    plain = load_config(None, ["features.segment=hl30", "features.highlighter=fallback"])
    assert prepare(plain, ds)[1].shape[0] == len(ds)


def test_cv_and_rank_with_whole_song_training(corpus, whole_store, tmp_path):
    """`cv` with the whole-song config, fold-parallel: checkpoints leave the training-only
    fields out, so ranking extracts the segment only; the curve ranks with the model."""
    from hitrank.commands import cross_validate
    from hitrank.rank import rank_folder

    out = tmp_path / "run"
    res = cross_validate(None, [*WHOLE, *QUICK, "train.epochs=2", "cv.folds=3"], out=out,
                         store=whole_store, progress=False)
    assert res["summary"]["n_songs"] == 24
    params = load_checkpoint(out / "fold_00.pt").feature_params
    assert "whole_song" not in params and "contrast" not in params
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 24 and np.isfinite(pred.pred).all()
    ranking, failures = rank_folder(corpus / "audio", out, cache=tmp_path / "cache", curve=True,
                                    progress=False, nearest=0)
    assert not failures and len(ranking) == 24 and ranking.best_score.notna().all()
    stores = [FeatureStore.open(p.parent) for p in (tmp_path / "cache").rglob("params.json")]
    assert stores and not any(s.has_whole for s in stores)


def test_short_songs_train_on_their_padded_segment(tmp_path):
    """A song shorter than one window keeps its zero-padded segment as its whole log-mel (at
    extraction, for Mid-30 too, which decodes the whole song again only for this); in
    training, a whole log-mel shorter than a window is replaced by the song's segment."""
    import soundfile as sf

    from hitrank.segments import get

    sr = 22050
    t = np.arange(int(10 * sr)) / sr
    short, long_ = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, 0.3 * np.sin(2 * np.pi * 440 * t), sr)
    sf.write(long_, 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(40 * sr)) / sr), sr)
    params = FeatureParams(whole_song=True)
    cut = get("mid30").cut(short, params)
    assert cut.song is None  # Mid-30 decoded only its window
    np.testing.assert_allclose(cut.whole_mel(short, params).numpy(), cut.mel(params).numpy())
    cut = get("mid30").cut(long_, params)
    assert cut.whole_mel(long_, params).shape == (128, 1 + 40 * sr // params.hop_length)
    features = np.random.default_rng(0).normal(size=(2, 128, 323)).astype(np.float16)
    songs = SongMels([np.zeros((128, 100), np.float16), np.ones((128, 400), np.float16)],
                     np.zeros(2), np.array([9.0, 37.0]), ["", ""])
    ws = whole_songs(songs, features, params.to_dict(), "", 4, torch.device("cpu"), used=[0])
    assert ws.lengths.tolist() == [323, 400] and ws.mels[1] is None  # song 1: not used
    assert torch.equal(ws.mels[0], torch.from_numpy(features[0]))
    # a contrast window only where the song has a curve and room for one
    curve = np.ones(93)
    curve[50:80] = 5.0
    songs = SongMels([np.zeros((128, 100), np.float16), np.ones((128, 1000), np.float16)],
                     np.array([0.0, 50.0]), np.array([9.0, 92.9]), ["", json.dumps(curve.tolist())])
    ws = whole_songs(songs, features, params.to_dict(), "median", 4, torch.device("cpu"))
    assert ws.con_frame[0] == -1 and ws.con_frame[1] >= 0 and ws.con_frame[1] % 4 == 0
    assert ws.con_frame[1] <= 1000 - 323 and abs(ws.con_frame[1] - ws.seg_frame[1]) >= 15 * 10


def test_whole_mels_with_nan_are_left_out(whole_store, monkeypatch):
    store = FeatureStore.open(whole_store)
    real = store.load_whole

    def with_nan(ids):
        out = [np.array(m) for m in real(ids)]
        out[1][0, 5] = np.nan
        return out

    monkeypatch.setattr(store, "load_whole", with_nan)
    ds, problems = load_dataset(store, whole=True)
    bad = store.manifest.song_id[1]
    assert (bad, "features contain NaN/inf") in problems and bad not in set(ds.song_ids)
    assert len(ds.whole) == len(ds) == 23


def test_interrupted_whole_song_training_ends_as_uninterrupted(whole_store, tmp_path):
    """Killed after an epoch (its training state written), whole-song training resumes from
    it and ends with the model and validation scores of an uninterrupted run."""
    ds, _ = load_dataset(FeatureStore.open(whole_store), whole=True)
    cfg = load_config(None, [*WHOLE, *QUICK, "train.epochs=4"])
    _, X, _ = prepare(cfg, ds)
    ws = whole_songs(ds.whole, ds.features, ds.params, "median", 4, X.device)
    tr, va = np.arange(0, 18), np.arange(18, 24)
    target = Target.fit("log", ds.scores[tr])
    clean = fit(cfg, X, ds.scores, ds.artists, tr, va, target, seed=5, songs=ws)

    class Killed(Exception):
        pass

    def kill_at_epoch_2(line):
        if line.startswith("epoch 2 "):
            raise Killed

    state = tmp_path / "state"
    with pytest.raises(Killed):
        fit(cfg, X, ds.scores, ds.artists, tr, va, target, seed=5, songs=ws, resume=state,
            progress=kill_at_epoch_2)
    assert state.exists()
    resumed = fit(cfg, X, ds.scores, ds.artists, tr, va, target, seed=5, songs=ws, resume=state)
    np.testing.assert_array_equal(resumed.val_pred, clean.val_pred)
    for k, v in clean.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
