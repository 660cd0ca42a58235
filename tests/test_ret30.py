"""The authors' released ret30 regressor converted to hitrank's tag_fusion model, against goldens
of the ORIGINAL TensorFlow graph (``scripts/make_ret30_goldens.py``) and the reference numbers
of ``shared/reference/hsp_cnn.md`` section 2.6."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hitrank import segments
from hitrank.errors import CheckpointError, ParameterError
from hitrank.extract import extract_song
from hitrank.features import FeatureParams, log_mel
from hitrank.models import build
from hitrank.models.ret30 import FUSIONS, JYNET_TAGS, denorm, jynet_to_tags, ret30_state
from hitrank.pretrained import convert_ret30, load_ret30
from hitrank.tags import TAGS

from .conftest import HSP_CNN

GOLDEN = Path(__file__).parent / "data" / "ret30_golden.npz"
NEEDS_HSP_CNN = pytest.mark.skipif(
    not (HSP_CNN / "ret30.mdl").is_dir(),
    reason=f"the authors' ret30 checkpoint is not at {HSP_CNN} (shared/reference/hsp_cnn)")
TOL = 1e-4  # max |port - TensorFlow| on the scores
EMB_RTOL = 1e-5  # frame embeddings reach |36|: relative to the case's largest value

# hsp_cnn.md 2.6: TF 2.15 on the released test input xte.npy with tags tgte.jynet.npy
REF_ADD, REF_ADD_DENORM = 0.632921517, 0.02630421
REF_SCRIPT, REF_SCRIPT_DENORM = 0.35823169, 0.00161626


@pytest.fixture(scope="module")
def golden():
    """Golden inputs (rebuilt as the script built them) and TensorFlow outputs."""
    g = dict(np.load(GOLDEN))
    xte = np.load(HSP_CNN / "test_data" / "xte.npy")
    tgte = np.load(HSP_CNN / "test_data" / "tgte.jynet.npy")
    xs = [np.roll(xte[0] * s, int(sh), axis=-1).astype(np.float32)
          for s, sh in zip(g["xte_scale"], g["xte_shift"], strict=True)]
    ts = [tgte[0].astype(np.float32) if use else row
          for use, row in zip(g["xte_use_tgte"], g["xte_tags_jynet"], strict=True)]
    g["x"] = np.concatenate([np.stack(xs), g["x_synth"]])
    g["tags_jynet"] = np.concatenate([np.stack(ts), g["tags_synth_jynet"]])
    return g


@pytest.fixture(scope="module")
def model():
    return load_ret30(HSP_CNN)


def _forward(model, x, tags):
    with torch.no_grad():
        X, T = torch.from_numpy(x), torch.from_numpy(tags)
        return {"add": model(X, T).numpy(), "cnn": model.base(X).numpy(),
                "tag": model.dnn(T).numpy(), "emb": model.base.net(X)[:, 0].numpy()}


@NEEDS_HSP_CNN
def test_port_matches_tensorflow_goldens(golden, model):
    ours = _forward(model, golden["x"], jynet_to_tags(golden["tags_jynet"]))
    assert ours["add"].shape == golden["add"].shape == (len(golden["case"]),)
    for i, case in enumerate(golden["case"]):
        for key in ("add", "cnn", "tag"):
            assert abs(ours[key][i] - golden[key][i]) <= TOL, (case, key)
        emb, ref = ours["emb"][i], golden["emb"][i]
        assert np.max(np.abs(emb - ref)) <= EMB_RTOL * np.max(np.abs(ref)), case
    # the trained graph's fusion constants are the converter's
    np.testing.assert_allclose(golden["fusion_weights"], FUSIONS["trained"], rtol=1e-7)


@NEEDS_HSP_CNN
def test_released_test_input_gives_the_reference_numbers(golden, model):
    x, tags = golden["x"][:1], jynet_to_tags(golden["tags_jynet"][:1])
    assert golden["case"][0] == "xte"
    add = _forward(model, x, tags)["add"]
    assert abs(add[0] - REF_ADD) <= 1e-6
    assert abs(denorm(add)[0] - REF_ADD_DENORM) <= 1e-7
    script = load_ret30(HSP_CNN, fusion="released_script")
    with torch.no_grad():
        y = script(torch.from_numpy(x), torch.from_numpy(tags)).numpy()
    assert abs(y[0] - REF_SCRIPT) <= 1e-6
    assert abs(denorm(y)[0] - REF_SCRIPT_DENORM) <= 1e-8


@NEEDS_HSP_CNN
def test_tags_in_hitrank_order_equal_tensorflow_fed_jynet_order(golden, model):
    names = (HSP_CNN / "data" / "data.magnatagatune" / "tag_list.top50.txt").read_text().split("\n")
    assert tuple(n for n in names if n) == JYNET_TAGS
    assert sorted(JYNET_TAGS) == sorted(TAGS) and JYNET_TAGS != TAGS
    tags_jynet = golden["tags_jynet"]
    reordered = jynet_to_tags(tags_jynet)
    for name in ("metal", "female voice", "guitar"):  # by name, whatever the index
        np.testing.assert_array_equal(reordered[:, TAGS.index(name)],
                                      tags_jynet[:, JYNET_TAGS.index(name)])
    with torch.no_grad():
        ours = model.dnn(torch.from_numpy(reordered)).numpy()
        unpermuted = model.dnn(torch.from_numpy(tags_jynet)).numpy()
    assert np.max(np.abs(ours - golden["tag"])) <= TOL
    assert np.max(np.abs(unpermuted - golden["tag"])) > 1e-3  # JYnet order into the port is wrong


@NEEDS_HSP_CNN
def test_converted_model_round_trips_through_torch_save(tmp_path, golden):
    d = convert_ret30(HSP_CNN)
    assert d["model"] == "tag_fusion"
    assert d["kwargs"]["base_kwargs"] == {"output_activation": "leaky_relu"}
    assert float(d["state_dict"]["base.in_mean"].abs().max()) == 0.0
    assert float((d["state_dict"]["base.in_std"] - 1).abs().max()) == 0.0
    torch.save(d, tmp_path / "ret30.pt")
    back = torch.load(tmp_path / "ret30.pt", map_location="cpu", weights_only=True)
    assert back["kwargs"] == d["kwargs"]
    a = build(d["model"], **d["kwargs"])
    a.load_state_dict(d["state_dict"])
    b = build(back["model"], **back["kwargs"])
    b.load_state_dict(back["state_dict"])
    x, tags = golden["x"][:2], jynet_to_tags(golden["tags_jynet"][:2])
    np.testing.assert_array_equal(_forward(a.eval(), x, tags)["add"], _forward(b.eval(), x, tags)["add"])


@NEEDS_HSP_CNN
def test_repository_layout_and_ret30_mdl_itself_are_accepted():
    a = convert_ret30(HSP_CNN)["state_dict"]
    b = convert_ret30(HSP_CNN / "ret30.mdl")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_missing_checkpoint_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match=r"ret30\.mdl/model\.ckpt\.index.*HSP_CNN"):
        convert_ret30(tmp_path)
    (tmp_path / "ret30.mdl").mkdir()
    (tmp_path / "ret30.mdl" / "model.ckpt.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.data-00000-of-00001"):
        convert_ret30(tmp_path)


def test_bad_fusion_and_tag_shapes_are_refused():
    with pytest.raises(ParameterError, match="fusion='mean'"):
        ret30_state({}, fusion="mean")  # refused before any variable is looked at
    with pytest.raises(ParameterError, match="expected"):
        jynet_to_tags(np.zeros((2, 49)))


@NEEDS_HSP_CNN
def test_bad_fusion_is_refused_by_the_converter():
    with pytest.raises(ParameterError, match="fusion='mean'"):
        convert_ret30(HSP_CNN, fusion="mean")


def test_denorm_inverts_the_target_and_zeroes_negatives():
    r = np.array([1e-4, 0.02, 0.5, 0.9])
    np.testing.assert_allclose(denorm(-1 / np.log10(r)), r, rtol=1e-12)
    np.testing.assert_array_equal(denorm(np.array([-0.3, 0.0])), [0.0, 0.0])


def test_tag_fusion_defaults_unchanged_by_the_new_options():
    torch.manual_seed(0)
    x, t = torch.randn(3, 128, 323), torch.rand(3, 50)
    plain = build("tag_fusion", base="simple_cnn", mu=0.3).eval()
    assert plain.weights == (1 - 0.3, 0.3)
    with_act = build("tag_fusion", base="simple_cnn", dnn_kwargs={"output_activation": "leaky_relu"},
                     weights=(1.0, 0.5)).eval()
    assert plain.state_dict().keys() == with_act.state_dict().keys()  # old checkpoints load
    with_act.load_state_dict(plain.state_dict())
    with torch.no_grad():
        lrelu = torch.nn.functional.leaky_relu(plain.dnn(t), 0.1)
        torch.testing.assert_close(with_act(x, t), plain.base(x) + 0.5 * lrelu)


# --- the released front end: the centre 323 frames of the whole clip's mel (mel_extract.py) ---

#: the imported yu2018-kkbox's audio features (hitrank.pretrained.import_release)
KKBOX_MID30 = FeatureParams(window="hann", log="none", mel_crop="centre")
RELEASED_SR, RELEASED_AUDIO_LEN, RELEASED_WSZ, RELEASED_MELS = 22050, 30, 4096, 128  # mel_extract.ParamsR
CROP_RTOL = 1e-5  # max |hitrank - released| / max(released) on the raw power (measured 4.5e-7)


def released_mel(y: np.ndarray) -> np.ndarray:
    """``feat_extract`` of the authors' mel_extract.py (OckhamsRazor/HSP_CNN, ParamsR), written
    out here as the oracle: the mel of the WHOLE clip, then all frames (exactly 30 s), the
    centre ``feat_len`` frames (longer) or zero frames appended (shorter). librosa's current
    STFT padding ('constant', as hitrank's) stands for the 2017 librosa's 'reflect', which
    differs only in a clip's first and last frame."""
    import librosa

    hop = RELEASED_WSZ // 2
    feat_len = int(np.ceil(RELEASED_SR * RELEASED_AUDIO_LEN / float(hop)))
    song_len = len(y) / float(RELEASED_SR)
    feat = librosa.feature.melspectrogram(y=y, sr=RELEASED_SR, n_fft=RELEASED_WSZ, hop_length=hop,
                                          n_mels=RELEASED_MELS)
    if song_len == RELEASED_AUDIO_LEN:
        return feat
    if song_len > RELEASED_AUDIO_LEN:
        start = feat.shape[1] // 2 - feat_len // 2
        end = feat.shape[1] // 2 + feat_len // 2 + feat_len % 2
        return feat[:, start:end]
    ret = np.zeros((RELEASED_MELS, feat_len))
    ret[:, : feat.shape[1]] = feat
    return ret


def _clip(path, seconds: float, seed: int = 0) -> np.ndarray:
    """A 22050 Hz float WAV (no resampling on either side): a gliding tone over amplitude-
    modulated noise, so that frames a fraction of a hop apart differ. Returns what was written."""
    n = int(round(seconds * RELEASED_SR))
    t = np.arange(n) / RELEASED_SR
    noise = np.random.default_rng(seed).standard_normal(n) * (1 + np.sin(2 * np.pi * 0.7 * t))
    y = (0.1 * noise + 0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.1 * t / seconds))).astype(np.float32)
    sf.write(str(path), y, RELEASED_SR, subtype="FLOAT")
    return y


@pytest.mark.parametrize("seconds", [30.0, 30.003, 45.0])
def test_clips_of_30_s_or_more_give_the_released_centre_frames(tmp_path, seconds):
    y = _clip(tmp_path / "c.wav", seconds)
    ref = released_mel(y)
    mel, info = extract_song(tmp_path / "c.wav", KKBOX_MID30)
    assert mel.shape == ref.shape == (128, 323) and mel.dtype == np.float32
    assert np.max(np.abs(mel - ref)) <= CROP_RTOL * ref.max()
    # the segment (tags, seg_start) starts where the first kept frame's window starts
    first = (1 + len(y) // 2048) // 2 - 161
    assert segments.centre_first(len(y), KKBOX_MID30) == first
    assert info["seg_start"] == pytest.approx(max(0, first - 1) * 2048 / RELEASED_SR, abs=1e-4)
    old, _ = extract_song(tmp_path / "c.wav", FeatureParams(window="hann", log="none"))
    if seconds > 30.0:  # the Mid-30 cut first: frames a fraction of a hop off (test can fail)
        assert np.max(np.abs(old - ref)) > 0.1 * ref.max()
    else:  # exactly 30 s: both ways keep every frame
        assert np.max(np.abs(old - ref)) <= CROP_RTOL * ref.max()


def test_a_clip_under_30_s_takes_the_cut_first_path(tmp_path):
    y = _clip(tmp_path / "c.wav", 29.98)
    mel, info = extract_song(tmp_path / "c.wav", KKBOX_MID30)
    old, old_info = extract_song(tmp_path / "c.wav", FeatureParams(window="hann", log="none"))
    np.testing.assert_array_equal(mel, old)
    assert info["padded"] and info["seg_start"] == old_info["seg_start"] == 0.0
    ref = released_mel(y)  # 29.98 s has 323 frames: the release appends none
    assert np.max(np.abs(mel - ref)) <= CROP_RTOL * ref.max()
    cut = segments.get("mid30").cut(tmp_path / "c.wav", KKBOX_MID30)
    assert not cut.centre_frames and len(cut.song) == len(y)


def test_centre_mel_equals_slicing_the_whole_mel(rng):
    for n in (661500, 661566, 700001):  # first kept frame 0 (window before the song), 1, 19
        y = rng.standard_normal(n).astype(np.float32)
        whole = log_mel(y, KKBOX_MID30).numpy()
        t = whole.shape[1]
        ours = segments.centre_mel(y, KKBOX_MID30).numpy()
        np.testing.assert_allclose(ours, whole[:, t // 2 - 161: t // 2 + 162], rtol=1e-5, atol=1e-5)
    with pytest.raises(ParameterError, match="at least 323 frames"):
        segments.centre_mel(np.zeros(322 * 2048 - 1, np.float32), KKBOX_MID30)


def test_mel_crop_is_checked_and_old_parameters_load_without_it():
    with pytest.raises(ParameterError, match="mel_crop='left'"):
        FeatureParams(mel_crop="left")
    with pytest.raises(ParameterError, match="mel_crop='centre'.*'hl30'"):
        segments.params_for("hl30", None, mel_crop="centre")
    old = {k: v for k, v in KKBOX_MID30.to_dict().items() if k != "mel_crop"}  # a store made before
    assert FeatureParams.from_dict(old).mel_crop == ""
    assert segments.params_for("mid30", None, mel_crop="centre").mel_crop == "centre"


def test_imported_model_scores_a_30_s_clip_as_the_released_pipeline(imported_cache, monkeypatch, tmp_path):
    """End to end on a 30.003 s clip (as FMA's): the imported yu2018-kkbox's features are the
    released frames and the JYnet tags of the clip from its start (where the released tagger
    reads it), so its score is the score of the released pipeline's inputs."""
    from hitrank.checkpoint import load_checkpoint
    from hitrank.tags import segment_tags

    monkeypatch.setenv("HITRANK_CACHE", str(imported_cache))
    model = imported_cache / "models" / "yu2018-kkbox" / "model.pt"
    scorer = load_checkpoint(model)
    params = FeatureParams.from_dict(scorer.feature_params)
    assert params.mel_crop == "centre"
    y = _clip(tmp_path / "c.wav", 30.003, seed=1)
    mel, info = extract_song(tmp_path / "c.wav", params)
    tags = segment_tags(y, RELEASED_SR, tagger="jynet")  # JYnet keeps the first 911 frames
    np.testing.assert_allclose(info["tags"], tags, atol=1e-6)
    ref = released_mel(y)
    with torch.no_grad():
        ours = scorer.score(torch.from_numpy(mel)[None], T=torch.from_numpy(info["tags"])[None])
        released = scorer.score(torch.from_numpy(ref.astype(np.float32))[None], T=torch.from_numpy(tags)[None])
    assert abs(float(ours[0]) - float(released[0])) <= 1e-5
