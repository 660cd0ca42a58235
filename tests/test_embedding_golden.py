"""Pretrained embeddings: the ports' penultimate layers against the original networks.

musicnn: ``tests/data/musicnn_penultimate_golden.npz`` holds, for the tagger test clips
(:mod:`hitrank.tags.clips`, two 3 s patches each), the 200-d ``bn_dense`` layer of MTT_musicnn and
MSD_musicnn computed by the ORIGINAL TensorFlow graph run on each patch separately
(``scripts/make_musicnn_goldens.py --what penultimate``; not ``musicnn.extractor``'s features,
which repeat patch 0's penultimate for later patches).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from hitrank.errors import ParameterError
from hitrank.tags.clips import clips

from .conftest import HSP_CNN

PEN_GOLDEN = Path(__file__).parent / "data" / "musicnn_penultimate_golden.npz"
NEEDS_MUSICNN = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                   reason="pip install --no-deps musicnn==0.1.0 (pretrained weights)")
#: max |port - TensorFlow| of a penultimate unit (values reach 8), on the same log-mel input
#: (librosa's, as the original computes it): measured 1.4e-5 (MTT), 1.0e-5 (MSD)
NET_ATOL = 5e-5
#: the same from audio, through the port's torch front end: its mel differs from librosa's by
#: float32 rounding, which the float16 round trip can turn into one float16 step (4e-4 in the
#: log-mel); measured 5.6e-5 (MTT), 4.6e-5 (MSD)
PEN_ATOL = 2e-4


@NEEDS_MUSICNN
@pytest.mark.parametrize("model", ["MTT_musicnn", "MSD_musicnn"])
def test_musicnn_penultimate_matches_tensorflow(model):
    from hitrank.tags.musicnn import EMBEDDING_DIM, penultimate

    golden = np.load(PEN_GOLDEN)
    for name, y in clips().items():
        ref = golden[f"{name}/{model}/penultimate"]
        ours = penultimate(y, model)
        assert ours.dtype == np.float32 and ours.shape == ref.shape == (2, EMBEDDING_DIM)
        assert np.max(np.abs(ours - ref)) <= PEN_ATOL, name
        # the patches differ: the golden is not the extractor's repeated patch 0
        assert np.max(np.abs(ref[1] - ref[0])) > 0.1, name


@NEEDS_MUSICNN
@pytest.mark.parametrize("model", ["MTT_musicnn", "MSD_musicnn"])
def test_musicnn_network_penultimate_matches_tensorflow_on_the_originals_input(model):
    import librosa

    from hitrank.tags.musicnn import PATCH, load_tagger

    golden = np.load(PEN_GOLDEN)
    net = load_tagger(model)
    for name, y in clips().items():
        # musicnn.extractor.batch_data's input, with numpy 2's float16 promotion undone
        mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=256, n_mels=96).T
        rep = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
        x = torch.from_numpy(np.ascontiguousarray(rep[: 2 * PATCH].reshape(2, PATCH, 96)))
        with torch.no_grad():
            ours = net(x, features=True).numpy()
        assert np.max(np.abs(ours - golden[f"{name}/{model}/penultimate"])) <= NET_ATOL, name


@NEEDS_MUSICNN
def test_msd_musicnn_logits_path_matches_tensorflow():
    from hitrank.tags.musicnn import taggram

    golden = np.load(PEN_GOLDEN)
    for name, y in clips().items():
        ref = golden[f"{name}/MSD_musicnn/taggram"]
        assert np.max(np.abs(taggram(y, "MSD_musicnn") - ref)) <= 1e-4, name


@NEEDS_MUSICNN
def test_musicnn_penultimate_is_batch_independent_and_feeds_the_logits():
    from hitrank.tags.musicnn import load_tagger, log_mel, patches, penultimate

    y = np.tile(clips()["techno"], 2)  # 13 s: 4 patches
    whole = penultimate(y, batch=64)  # all four patches in one pass
    assert whole.shape == (4, 200)
    np.testing.assert_allclose(penultimate(y), whole, atol=1e-5)  # the CPU default: one at a time
    np.testing.assert_allclose(penultimate(y, batch=3), whole, atol=1e-5)
    from hitrank.tags.musicnn import patch_batch, taggram
    assert patch_batch("cpu") == 1 and patch_batch("cuda:0") == 64 and patch_batch("cpu", 8) == 8
    np.testing.assert_allclose(taggram(y), taggram(y, batch=64), atol=1e-6)
    net = load_tagger("MTT_musicnn")
    x = patches(log_mel(y))
    with torch.no_grad():
        logits = net(x)
        np.testing.assert_allclose(net.out(torch.from_numpy(whole)).numpy(), logits.numpy(), atol=1e-4)


def test_musicnn_penultimate_refuses_bad_arguments():
    from hitrank.tags.musicnn import penultimate

    y = clips()["drums"]
    with pytest.raises(ParameterError, match="MTT_vgg"):
        penultimate(y, "MTT_vgg")
    with pytest.raises(ParameterError, match="batch=0"):
        penultimate(y, batch=0)


# ------------------------------------------------------------------------------------ JYnet
# ``jynet_golden_mtt.npz`` (the original Theano model on two MTT clips) holds the input and the
# frame-level 188 sigmoid outputs, not the 512-d hidden layer: the hidden layer is checked
# through the output layer that reads it.
JYNET_GOLDEN = HSP_CNN / "jynet_golden_mtt.npz"
NEEDS_JYNET = pytest.mark.skipif(not JYNET_GOLDEN.is_file(),
                                 reason=f"JYnet release and goldens not found at {HSP_CNN}")


@pytest.fixture(scope="module")
def jynet_net():
    from hitrank.tags.jynet import JYNet

    return JYNet.from_release(HSP_CNN).eval()


@NEEDS_JYNET
def test_jynet_hidden_layer_gives_the_originals_frame_outputs(jynet_net):
    from hitrank.tags.jynet import EMBEDDING_DIM

    with np.load(JYNET_GOLDEN) as g:
        feats, frame188 = g["feats"], g["frame188"]
    with torch.no_grad():
        h = jynet_net.hidden(torch.from_numpy(feats))
        frames = torch.sigmoid(jynet_net.out(h[..., None]))[..., 0].numpy()
    assert h.shape == (2, EMBEDDING_DIM, 57) and float(h.min()) >= 0  # ReLU output
    assert np.max(np.abs(frames - frame188)) <= 1e-5  # as test_jynet's TOL_FRAME


@NEEDS_JYNET
def test_jynet_penultimate_pools_the_frames_over_the_audio(jynet_net):
    from hitrank.tags import jynet as J

    y = np.tile(clips()["techno"], 2)  # 13 s at 16 kHz: one clip, 407 of 911 frames are audio
    emb = J.penultimate(y, J.SR, jynet_net)
    assert emb.shape == (1, 512) and emb.dtype == np.float32
    x = J.standardise(J.front_end(y), "clip", jynet_net)
    with torch.no_grad():
        h = jynet_net.hidden(torch.from_numpy(x)[None])[0].numpy()
    keep = int(np.ceil(np.ceil((1 + len(y) // J.HOP) / 4) / 4))
    assert keep == 26
    np.testing.assert_allclose(emb[0], h[:, :keep].mean(axis=1), atol=1e-6)
    assert np.max(np.abs(emb[0] - h.mean(axis=1))) > 1e-3  # the padded frames are left out


def test_jynet_song_clips_cut_29_s_clips_and_drop_a_short_remainder():
    from hitrank.tags.jynet import HOP, N_FRAMES, SR, song_clips

    step = N_FRAMES * HOP
    assert [len(c) for c in song_clips(np.zeros(60 * SR))] == [step, step]
    assert [len(c) for c in song_clips(np.zeros(2 * step + step // 2 + 1))] == [step, step, step // 2 + 1]
    assert [len(c) for c in song_clips(np.zeros(1000))] == [1000]


# ------------------------------------------------------------------------------------ ret30
# ``ret30_golden.npz`` (the original TF graph) holds the per-frame output ``emb`` (78 values),
# not the 256-d hidden layer: the hidden layer is checked through the 1x1 conv that reads it.
RET30_GOLDEN = Path(__file__).parent / "data" / "ret30_golden.npz"
NEEDS_RET30 = pytest.mark.skipif(not (HSP_CNN / "ret30.mdl").is_dir(),
                                 reason=f"the authors' ret30 checkpoint is not at {HSP_CNN}")


@NEEDS_RET30
def test_ret30_hidden_layer_gives_the_originals_frame_embedding():
    from hitrank.models.ret30 import EMBEDDING_DIM, penultimate
    from hitrank.pretrained import load_ret30

    model = load_ret30(HSP_CNN)
    g = np.load(RET30_GOLDEN)
    xte = np.load(HSP_CNN / "test_data" / "xte.npy")[:1].astype(np.float32)
    x = torch.from_numpy(np.concatenate([xte, g["x_synth"]]))
    ref = np.concatenate([g["emb"][:1], g["emb"][-len(g["x_synth"]):]])
    with torch.no_grad():
        h = penultimate(model, x, frames=True)
        emb = model.base.net[-2:](h)[:, 0].numpy()  # conv2d_4 + LeakyReLU
        pooled = penultimate(model.base, x)
    assert h.shape == (4, EMBEDDING_DIM, 78) and pooled.shape == (4, EMBEDDING_DIM)
    for i in range(len(x)):
        assert np.max(np.abs(emb[i] - ref[i])) <= 1e-5 * np.max(np.abs(ref[i])), i  # as test_ret30
    np.testing.assert_allclose(pooled.numpy(), h.mean(dim=2).numpy(), rtol=1e-6)


def test_ret30_penultimate_refuses_other_networks_and_shapes():
    from hitrank.models import build
    from hitrank.models.ret30 import penultimate, ret30_kwargs

    model = build("tag_fusion", **ret30_kwargs()).eval()
    with pytest.raises(ParameterError, match=r"\(B, 128, T\)"):
        penultimate(model, torch.zeros(2, 96, 323))
    with pytest.raises(ParameterError, match="Linear"):
        penultimate(torch.nn.Linear(3, 1), torch.zeros(2, 128, 323))
    assert penultimate(model, torch.zeros(2, 128, 323)).shape == (2, 256)
