"""JYnet port (hitrank.tags.jynet) against outputs of the original Theano/Lasagne model.

Golden data (``jynet_golden_mtt.npz``, the released weights, standardisers and the two MTT
sample clips) are read from ``../shared/reference/hsp_cnn``; tests that need them skip with a
reason when that folder is absent.
"""

from __future__ import annotations

import io
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hitrank.errors import CheckpointError, HitrankError, ParameterError
from hitrank.tags import TAGS
from hitrank.tags import jynet as J

HSP = Path(__file__).resolve().parents[2] / "shared" / "reference" / "hsp_cnn"
GOLDEN = HSP / "jynet_golden_mtt.npz"
CLIPS = HSP / "data" / "data.magnatagatune" / "sample_audio"
needs_release = pytest.mark.skipif(
    not GOLDEN.is_file(), reason=f"JYnet release and goldens not found at {HSP}"
)

# Tolerances: measured values in comments (CPU, torch 2.14)
TOL_OUT = 1e-5  # 188 probabilities from the golden input: measured 1.2e-7
TOL_FRAME = 1e-5  # frame map before the Gaussian layer: measured 2.5e-6
TOL_GAUSS = 2e-6  # after it: measured 3.9e-7
TOL_LOGMEL = 1e-4  # front end from the mp3 vs the original's raw log-mel: measured 1.8e-5
MIN_CORR_LOGMEL = 0.999999  # measured 1 - 1.5e-14 on every scale
TOL_TAGS = 1e-5  # end-to-end top-50 tags from the mp3: measured 1.2e-7


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.is_file():
        pytest.skip(f"JYnet goldens not found at {GOLDEN}")
    with np.load(GOLDEN, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def net():
    if not GOLDEN.is_file():
        pytest.skip(f"JYnet release not found at {HSP}")
    return J.JYNet.from_release(HSP)


@pytest.fixture(scope="module")
def clips():
    """The two MTT sample clips decoded with hitrank.audio (libsndfile), 16 kHz mono."""
    from hitrank import audio

    if not CLIPS.is_dir():
        pytest.skip(f"MTT sample clips not found at {CLIPS}")
    try:
        return [audio.load(CLIPS / f"sample_{i}.mp3", J.SR)[0] for i in (1, 2)]
    except HitrankError as exc:  # libsndfile built without MP3 support
        pytest.skip(f"cannot decode the MTT mp3 clips here: {exc}")


def _raw(golden) -> np.ndarray:
    """The original's raw log-mel (2, 6, 911, 128) = standardised feats * scale + mean."""
    return golden["feats"] * golden["sc_scale"][:, :, None, :] + golden["sc_mean"][:, :, None, :]


def _to_tags_order(vec50: np.ndarray, names50) -> np.ndarray:
    """A vector in JYnet's top-50 order -> hitrank's TAGS order, by name."""
    pos = {str(n): i for i, n in enumerate(names50)}
    return vec50[..., [pos[t] for t in TAGS]]


# --------------------------------------------------------------------- network vs the original


@needs_release
def test_network_reproduces_original_from_golden_input(net, golden):
    with torch.no_grad():
        frames, smoothed = net.forward_frames(torch.from_numpy(golden["feats"]))
        out = net(torch.from_numpy(golden["feats"])).numpy()
    assert frames.shape == (2, 188, 57)
    assert np.abs(frames.numpy() - golden["frame188"]).max() <= TOL_FRAME
    assert np.abs(smoothed.numpy() - golden["gauss188"]).max() <= TOL_GAUSS
    assert np.abs(out - golden["out188_unclipped"]).max() <= TOL_OUT
    assert np.abs(np.clip(out, J.PROB_EPS, 1 - J.PROB_EPS) - golden["out188"]).max() <= TOL_OUT


@needs_release
def test_shipped_standardisers_reproduce_original(net, golden):
    raw = _raw(golden)
    x = np.stack([J.standardise(r, "shipped", net) for r in raw])
    with torch.no_grad():
        out = np.clip(net(torch.from_numpy(x)).numpy(), J.PROB_EPS, 1 - J.PROB_EPS)
    assert np.abs(out - golden["out188_repostd"]).max() <= TOL_OUT
    assert np.abs(out[:, :50] - golden["tags50_repostd"]).max() <= TOL_OUT
    # the (mean, std) pair form gives the same input
    pair = (net.shipped_mean.numpy(), net.shipped_std.numpy())
    np.testing.assert_array_equal(J.standardise(raw[0], "shipped", pair), x[0])


@needs_release
def test_clip_standardisation_refits_like_original(golden):
    raw = _raw(golden)
    for i in range(2):
        mean, scale = J.clip_stats(raw[i])
        np.testing.assert_allclose(mean, golden["sc_mean"][i], atol=1e-6)
        np.testing.assert_allclose(scale, golden["sc_scale"][i], atol=1e-6)
        assert np.abs(J.standardise(raw[i], "clip") - golden["feats"][i]).max() <= 1e-6


@needs_release
def test_release_metadata(net, golden):
    assert len(net.tags188) == J.N_TAGS188
    assert set(net.top50) == set(TAGS)
    assert list(net.top50) == [str(t) for t in golden["tag_names50"]]
    idx = J.top50_index(net)
    assert [net.top50[i] for i in idx] == list(TAGS)  # by name: the swapped pair lands right
    assert net.top50 != TAGS  # JYnet's order differs from hitrank's (two tags swapped)
    assert float(net.shipped_std.min()) > 0


# ------------------------------------------------------------------------ front end from the mp3


@pytest.fixture(scope="module")
def clip_feats(clips):
    """front_end of the two decoded MTT clips, (6, 911, 128) each."""
    return [J.front_end(y) for y in clips]


@needs_release
def test_front_end_from_mp3_matches_original(golden, clips, clip_feats):
    raw = _raw(golden)
    for i, (y, feats) in enumerate(zip(clips, clip_feats, strict=True)):
        # libsndfile (mpg123) and the original's audioread/ffmpeg give the same samples:
        # 465984 = 809 MPEG-2 frames of 576, no gapless trim (the clips have no LAME/Xing tag),
        # and no delay (the best shift of a +-1200 sample search was 0)
        assert 1 + len(y) // J.HOP >= int(golden["n_frames_raw"][i].min())
        assert feats.shape == (6, 911, 128) and feats.dtype == np.float32
        assert np.abs(feats - raw[i]).max() <= TOL_LOGMEL
        for s in range(J.N_SCALES):
            assert np.corrcoef(feats[s].ravel(), raw[i][s].ravel())[0, 1] >= MIN_CORR_LOGMEL


@needs_release
def test_tags_end_to_end_from_mp3(net, golden, clips, clip_feats):
    idx = J.top50_index(net)
    names = golden["tag_names50"]
    for i, y in enumerate(clips):
        vec = J.tag_vector(y, J.SR, net)  # decode -> front end -> refit -> network -> TAGS order
        assert vec.shape == (50,) and vec.dtype == np.float64
        assert np.abs(vec - _to_tags_order(golden["tags50"][i], names)).max() <= TOL_TAGS
        if i == 0:
            # the reference notes' sanity check: sample_1 (Bach sinfonia), per-clip refit
            top = [TAGS[j] for j in np.argsort(-vec)[:5]]
            assert top == ["guitar", "violin", "classical", "strings", "piano"]
        # shipped standardisers from the mp3 (front end reused from the fixture)
        x = torch.from_numpy(J.standardise(clip_feats[i], "shipped", net))[None]
        with torch.no_grad():
            out = np.clip(net(x)[0].numpy()[idx], J.PROB_EPS, 1 - J.PROB_EPS)
        ref_s = _to_tags_order(golden["tags50_repostd"][i], names)
        assert np.abs(out - ref_s).max() <= TOL_TAGS
    vec_s = J.tag_vector(clips[1], J.SR, net, standardisation="shipped")
    assert np.abs(vec_s - _to_tags_order(golden["tags50_repostd"][1], names)).max() <= TOL_TAGS


# ----------------------------------------------------------------------- synthesised audio


def _tone(seconds: float, freq: float = 440.0, sr: int = J.SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("n", [1, 5, 300, 8192, 8193, 20000])
def test_reflect_padding_matches_numpy(n, rng):
    x = torch.from_numpy(rng.standard_normal(n).astype(np.float32))[None]
    for pad in (256, 8192):
        np.testing.assert_array_equal(
            J._reflect_pad(x, pad)[0].numpy(), np.pad(x[0].numpy(), pad, mode="reflect")
        )


@pytest.mark.parametrize("seconds", [0.05, 2.0])
def test_log_mels_match_librosa_reflect(seconds):
    import librosa

    y = _tone(seconds, 1000.0) + _tone(seconds, 5000.0)
    feats = J.log_mels(y).numpy()
    assert feats.shape == (6, 1 + len(y) // J.HOP, 128)
    for s, n_fft in enumerate(J.N_FFTS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns when n_fft > len(y)
            mel = librosa.feature.melspectrogram(
                y=y, sr=J.SR, n_fft=n_fft, hop_length=J.HOP, n_mels=J.N_MELS, pad_mode="reflect"
            )
        ref = np.log1p(J.LOG_SCALE * mel).T
        np.testing.assert_allclose(feats[s], ref, rtol=1e-4, atol=1e-4)


def test_short_clip_pads_with_zero_rows():
    y = _tone(0.1)  # 1600 samples: shorter than n_fft // 2 of the largest scale
    feats = J.front_end(y)
    n_real = 1 + len(y) // J.HOP
    assert feats.shape == (6, J.N_FRAMES, 128) and np.all(np.isfinite(feats))
    assert np.all(feats[:, n_real:] == 0) and np.all(feats[:, :n_real].max(axis=2) > 0)


def test_long_clip_keeps_first_911_frames():
    y = _tone(31.0)
    np.testing.assert_allclose(J.front_end(y), J.log_mels(y)[:, : J.N_FRAMES].numpy(), atol=1e-5)


def test_standardise_constant_input_has_no_nan():
    for value in (0.0, 3.7):
        out = J.standardise(np.full((6, 911, 128), value, dtype=np.float32), "clip")
        assert np.all(out == 0)
    mean, scale = J.clip_stats(np.full((6, 10, 128), 3.7))
    assert np.all(scale == 1.0)


def test_clip_stats_match_sklearn(rng):
    from sklearn.preprocessing import StandardScaler

    raw = rng.gamma(2.0, 1.0, size=(6, 200, 128)).astype(np.float32)
    raw[2, :, 5] = 1.25  # a constant bin
    mean, scale = J.clip_stats(raw)
    for s in range(6):
        sc = StandardScaler().fit(raw[s])
        np.testing.assert_allclose(mean[s], sc.mean_, rtol=1e-6)
        np.testing.assert_allclose(scale[s], sc.scale_, rtol=1e-6)
        np.testing.assert_allclose(J.standardise(raw, "clip")[s], sc.transform(raw[s]), atol=1e-5)


def test_gaussian_layer_indexing(rng):
    """y[c, t] = sum_u f[c, u] g_c(u - t + 1), the original's alignment (an independent oracle)."""
    layer = J.GaussianSmoothing(3)
    with torch.no_grad():
        layer.log_sigma.copy_(torch.log(torch.tensor([1.5, 4.0, 16.0])))
    f = rng.random((1, 3, 57)).astype(np.float32)
    y = layer(torch.from_numpy(f))[0].detach().numpy()
    sigma = np.array([1.5, 4.0, 16.0])
    u = np.arange(57)
    for c in range(3):
        for t in (0, 1, 28, 56):
            x = u - t + 1
            g = np.exp(-(x**2) / (2 * sigma[c] ** 2)) / (math.sqrt(2 * math.pi) * sigma[c])
            assert y[c, t] == pytest.approx(float(np.sum(f[0, c] * g)), rel=1e-5, abs=1e-7)


def test_pooling_keeps_partial_windows():
    net = J.JYNet().eval()
    with torch.no_grad():
        for t, t_out in ((911, 57), (10, 1), (17, 2)):
            frames, smoothed = net.forward_frames(torch.zeros(1, 6, t, 128))
            assert frames.shape == smoothed.shape == (1, 188, t_out)


def test_state_dict_round_trip_weights_only(rng):
    net = J.JYNet().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
        net.shipped_mean.normal_()
    state = net.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert state["shipped_mean"].shape == state["shipped_std"].shape == (6, 128)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    copy = J.JYNet().eval()
    copy.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.from_numpy(rng.standard_normal((1, 6, 64, 128)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(copy(x), net(x), rtol=0, atol=0)


@needs_release
def test_tags_of_synthesised_audio(net):
    # a clip shorter than half the largest n_fft; silence, resampled from 22050 Hz
    for y, sr in ((_tone(0.1), J.SR), (np.zeros(22050, np.float32), 22050)):
        vec = J.tag_vector(y, sr, net)
        assert vec.shape == (50,) and np.all(np.isfinite(vec))
        assert vec.min() >= J.PROB_EPS and vec.max() <= 1 - J.PROB_EPS


# ------------------------------------------------------------------------------- failures


def test_missing_release_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        J.JYNet.from_release(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="model.20160309_111546.npz"):
        J.JYNet.from_release(tmp_path)


@needs_release
def test_missing_standardiser_is_named(tmp_path):
    for rel in (
        J.MODEL_FILE,
        J.TAGS188_FILE,
    ):  # links, not copies: only the standardisers are absent
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(HSP / rel)
    with pytest.raises(CheckpointError, match=r"logmelspec10000\.16000_512_512_128\.0/mean\.npy"):
        J.JYNet.from_release(tmp_path)


def test_bad_inputs():
    net = J.JYNet()
    with pytest.raises(ParameterError, match="expects input"):
        net(torch.zeros(1, 5, 911, 128))
    with pytest.raises(ParameterError, match="n >= 1"):
        J.front_end(np.zeros(0, np.float32))
    with pytest.raises(ParameterError, match="mono"):
        J.front_end(np.zeros((2, 100), np.float32))
    with pytest.raises(ParameterError, match="standardisation='loud'"):
        J.standardise(np.zeros((6, 911, 128)), "loud")
    with pytest.raises(ParameterError, match="needs net_or_stats"):
        J.standardise(np.zeros((6, 911, 128)), "shipped")
    with pytest.raises(ParameterError, match="expects raw log-mels"):
        J.standardise(np.zeros((911, 128)), "clip")
    with pytest.raises(ParameterError, match="no tag names"):
        J.tag_vector(_tone(1.0), J.SR, net)
    with pytest.raises(ParameterError, match="resampler='sinc'"):
        J.resample16(_tone(1.0), 22050, "sinc")
    with pytest.raises(ParameterError, match="sr=0"):
        J.resample16(_tone(1.0), 0)


def test_kaiser_best_needs_resampy(monkeypatch):
    monkeypatch.setitem(sys.modules, "resampy", None)  # import resampy -> ImportError
    with pytest.raises(HitrankError, match="pip install resampy"):
        J.resample16(_tone(1.0, sr=22050), 22050, "kaiser_best")
    assert len(J.resample16(_tone(1.0, sr=22050), 22050, "soxr_hq")) == J.SR


def test_kaiser_best_resampling():
    pytest.importorskip(
        "resampy", reason="resampy (optional, the original's resampler) not installed"
    )
    y = _tone(1.0, 1000.0, sr=22050)[:22049]
    out = J.resample16(y, 22050, "kaiser_best")
    assert out.shape == (math.ceil(22049 * J.SR / 22050),) and out.dtype == np.float32
    ref = J.resample16(y, 22050, "soxr_hq")
    # a 1 kHz tone is well inside both passbands: the two resamplers agree away from the edges
    assert np.abs(out[1000:15000] - ref[1000:15000]).max() < 1e-3


def test_damaged_numpy_files_are_named_without_pickle(tmp_path):
    """Release files that are not numbers are one CheckpointError naming the file and why
    (no traceback, never unpickled); a good file loads."""
    good = tmp_path / "good.npy"
    np.save(good, np.arange(128.0))
    np.testing.assert_array_equal(J._load_npy(good), np.arange(128.0))
    (tmp_path / "text.npy").write_text("0.5\n" * 128)
    (tmp_path / "short.npy").write_bytes(good.read_bytes()[:-8 * 100])
    np.save(tmp_path / "objects.npy", np.array([{}] * 3), allow_pickle=True)
    for name, why in (("text.npy", "not a numpy array file"),
                      ("short.npy", "truncated or damaged: expected 128 values, found 28"),
                      ("objects.npy", "pickled")):
        with pytest.raises(CheckpointError, match=rf"{name}'.*{why}"):
            J._load_npy(tmp_path / name)
    np.savez(tmp_path / "w.npz", arr_0=np.ones(3))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "w.npz").read_bytes()[:100])
    for name in ("cut.npz", "text.npy"):
        with pytest.raises(CheckpointError, match=rf"{name}'.*not a valid \.npz archive"):
            J._load_npz(tmp_path / name)
    assert list(J._load_npz(tmp_path / "w.npz")) == ["arr_0"]
