"""The authors' released ret30 regressor converted to hitrank's tag_fusion model, against goldens
of the ORIGINAL TensorFlow graph (``scripts/make_ret30_goldens.py``) and the reference numbers
of ``shared/reference/hsp_cnn.md`` section 2.6."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hitrank.errors import CheckpointError, ParameterError
from hitrank.models import build
from hitrank.models.ret30 import FUSIONS, JYNET_TAGS, denorm, jynet_to_tags
from hitrank.pretrained import convert_ret30, load_ret30
from hitrank.tags import TAGS

HSP_CNN = Path(__file__).resolve().parents[2] / "shared" / "reference" / "hsp_cnn"
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
        convert_ret30(HSP_CNN, fusion="mean")
    with pytest.raises(ParameterError, match="expected"):
        jynet_to_tags(np.zeros((2, 49)))


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
