"""The authors' released models: import, rank any folder, fine-tune from them, no tagger mixing."""

from __future__ import annotations

import importlib.util
import json
import re

import numpy as np
import pytest
import torch

from hitrank.cli import main
from hitrank.errors import CheckpointError, ConfigError
from hitrank.features import FeatureParams
from hitrank.models import build
from hitrank.store import FeatureStore

from .conftest import HSP_CNN
from .conftest import SHARED_AUDIO as AUDIO


def test_every_importable_model_is_known_by_name():
    from hitrank.pretrained import KKBOX_MODELS
    from hitrank.runinfo import PRETRAINED

    assert set(KKBOX_MODELS) <= set(PRETRAINED)


@pytest.fixture
def imported(imported_cache, monkeypatch):
    """The cache with the released models imported (conftest's ``imported_cache``; skips
    without ../shared/reference/hsp_cnn), with HITRANK_CACHE pointing at it."""
    monkeypatch.setenv("HITRANK_CACHE", str(imported_cache))
    return imported_cache


def test_import_writes_models_with_provenance_and_licence(imported):
    for name in ("yu2018-kkbox", "yu2018-kkbox-hl30"):
        run = imported / "models" / name
        info = json.loads((run / "run.json").read_text())
        assert info["kind"] == "spectrogram" and info["command"] == "import"
        prov = json.loads((run / "provenance.json").read_text())
        assert "Apache-2.0" in prov["licence"] and "ISC" in prov["tagger_licence"]
        assert prov["fusion"] == "trained" and len(prov["files"]["ret30.mdl/model.ckpt.index"]) == 40
        assert "Apache License" in (run / "LICENSE").read_text()
        payload = torch.load(run / "model.pt", weights_only=True)
        fp = payload["feature_params"]
        assert (fp["window"], fp["log"], fp["tags"], fp["tagger"]) == ("hann", "none", "segment", "jynet")
        # the released extractor's centre frames on clips of 30 s or more (HL-30 cuts exactly 30 s)
        assert fp["mel_crop"] == prov["mel_crop"] == ("centre" if name == "yu2018-kkbox" else "")
        assert payload["target"]["kind"] == "neg_inv_log10"
    assert (imported / "models" / "jynet" / "jynet.pt").is_file()
    assert main(["pretrained", "import", str(HSP_CNN)]) == 2  # no silent overwrite without --force
    # every imported model is known by name to `rank --model`, `similar --model` ...
    from hitrank.pretrained import KKBOX_MODELS
    from hitrank.runinfo import resolve_model

    for name in KKBOX_MODELS:
        assert resolve_model(name) == imported / "models" / name
    # no training songs to place a score among: said as such (before: "re-run `hitrank train`")
    from hitrank.reference import training_reference
    from hitrank.targets import Target

    ref, why = training_reference(resolve_model("yu2018-kkbox"), Target("log"))
    assert ref is None and why.startswith("yu2018-kkbox is an imported pretrained model: no training songs")


def test_the_imported_model_equals_the_released_graph(imported):
    """Scoring the released test input through the imported checkpoint gives the TF value."""
    from hitrank.checkpoint import load_checkpoint
    from hitrank.models.ret30 import jynet_to_tags

    scorer = load_checkpoint(imported / "models" / "yu2018-kkbox" / "model.pt")
    x = torch.from_numpy(np.load(HSP_CNN / "test_data" / "xte.npy").astype(np.float32))
    t = torch.from_numpy(jynet_to_tags(np.load(HSP_CNN / "test_data" / "tgte.jynet.npy")).astype(np.float32))
    z = scorer.score(x, T=t)
    assert abs(z[0] - 0.632921517) < 1e-4
    assert abs(scorer.to_raw(z)[0] - 0.02630421) < 1e-5


@pytest.mark.skipif(not AUDIO.is_dir(), reason=f"the real recordings are not at {AUDIO}")
def test_rank_real_recordings_with_the_kkbox_model(imported, tmp_path, capsys):
    html = tmp_path / "r.html"
    assert main(["rank", str(AUDIO), "--model", "yu2018-kkbox", "--json", "--html", str(html)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["ranking"]) == 5 and out["failures"] == []
    assert all(0 < r["predicted_hit_score"] < 1 for r in out["ranking"])
    assert "Karissa_Hobbs" in html.read_text()


def test_missing_import_says_how_to_get_the_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path))
    assert main(["rank", str(tmp_path), "--model", "yu2018-kkbox"]) == 2
    assert "hitrank pretrained import PATH" in capsys.readouterr().err
    assert main(["tags", str(tmp_path / "x.wav"), "--model", "jynet"]) == 2
    assert "hitrank pretrained import PATH" in capsys.readouterr().err


def test_init_starts_from_the_released_weights(imported):
    from hitrank.checkpoint import init_weights

    src = torch.load(imported / "models" / "yu2018-kkbox" / "model.pt", weights_only=True)
    released = src["members"][0]["state_dict"]
    cnn = build("simple_cnn")
    init_weights(cnn, "yu2018-kkbox")
    assert torch.equal(cnn.state_dict()["net.0.weight"], released["base.net.0.weight"])
    assert torch.equal(cnn.state_dict()["in_std"], torch.ones(128))  # its own standardisation kept
    fused = build("tag_fusion", base="siamese", mu=0.5)
    names = init_weights(fused, "yu2018-kkbox")
    assert "base.scorer.net.13.weight" in names and "dnn.net.0.weight" in names
    assert torch.equal(fused.state_dict()["dnn.net.0.weight"], released["dnn.net.0.weight"])
    with pytest.raises(CheckpointError, match="shape"):
        init_weights(build("simple_cnn", conv_channels=(16, 64)), "yu2018-kkbox")


def test_cv_init_runs(imported, store, tmp_path):
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--store", str(store), "--out",
                 str(tmp_path / "run"), "--folds", "3", "--set", "train.epochs=1", "--init", "yu2018-kkbox"]) == 0
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "init: yu2018-kkbox" in cfg


@pytest.mark.parametrize("store_tagger, cfg_tagger", [("musicnn", "jynet"), ("jynet", "musicnn")])
def test_tag_dnn_refuses_a_store_of_another_tagger(store_tagger, cfg_tagger, tmp_path, rng, request,
                                                   monkeypatch):
    from hitrank.config import load_config
    from hitrank.cv import prepare
    from hitrank.data import load_dataset

    # the config's tagger is checked for its weights first: JYnet's come from an import
    if cfg_tagger == "jynet":
        monkeypatch.setenv("HITRANK_CACHE", str(request.getfixturevalue("imported_cache")))
    elif importlib.util.find_spec("musicnn") is None:
        pytest.skip("pip install --no-deps musicnn==0.1.0 (pretrained MTT weights)")
    params = FeatureParams(tags="segment", tagger=store_tagger)
    with FeatureStore.create_or_open(tmp_path, params) as st:
        st.plan([(f"s{i}", f"s{i}.wav", "", float(i + 1)) for i in range(12)])
        for i in range(12):
            st.write(f"s{i}", rng.normal(size=(128, 323)), {"seg_start": 0.0, "seg_end": 30.0,
                                                              "duration": 60.0, "padded": False},
                     tags=rng.random(50))
    ds, _ = load_dataset(FeatureStore.open(tmp_path))
    cfg = load_config("table1/b_simple_cnn_mid30_tag", [f"tags.tagger={cfg_tagger}"])
    with pytest.raises(ConfigError, match=f"tagger='{cfg_tagger}' but the store was made with "
                                          f"tagger='{store_tagger}'"):
        prepare(cfg, ds)


def test_extract_records_the_tagger(imported, corpus, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.wav").symlink_to(corpus / "audio" / "song_00000.wav")
    assert main(["extract", str(src), "--out", str(tmp_path / "st"), "--tags", "--tagger", "jynet"]) == 0
    meta = json.loads((tmp_path / "st" / "params.json").read_text())
    assert meta["features"]["tagger"] == "jynet"
    tags = np.load(tmp_path / "st" / "tags.npy")
    assert tags.shape == (1, 50) and np.all((tags > 0) & (tags < 1))


def _release_copy(folder, damaged: str, write) -> None:
    """The release files ``pretrained import`` reads, linked into ``folder``, but ``damaged``
    (a path inside it) written by ``write(path, original path)``; never a copy of the weights."""
    from hitrank.tags import jynet

    rels = [jynet.MODEL_FILE, jynet.TAGS188_FILE, "LICENSE"] + [
        f"ret30.mdl/model.ckpt.{ext}" for ext in ("index", "data-00000-of-00001", "meta")] + [
        f"{jynet.STANDARDISER_DIR.format(n_fft=n)}/{f}" for n in jynet.N_FFTS for f in ("mean.npy", "std.npy")]
    for rel in rels:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel == damaged:
            write(folder / rel, HSP_CNN / rel)
        else:
            (folder / rel).symlink_to(HSP_CNN / rel)


def _truncate(n_bytes):
    return lambda path, src: path.write_bytes(src.read_bytes()[:n_bytes])


def _npz_with_nan(path, src):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["arr_0"] = np.full_like(arrays["arr_0"], np.nan)
    with open(path, "wb") as f:  # np.savez would append .npz to a str path
        np.savez(f, **arrays)


def _ckpt_with_nan(path, src):
    from hitrank.tags.bundle import read_bundle

    kernel = read_bundle(src.with_name("model.ckpt"))["conv2d/kernel"].astype("<f4").tobytes()
    data = bytearray(src.read_bytes())
    offset = data.find(kernel)
    assert offset >= 0
    data[offset:offset + 4] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))


STD = "data/standardizers/logmelspec10000.16000_512_512_128.0/std.npy"
MEAN = STD.replace("std.npy", "mean.npy")
NPZ = "data/models/model.20160309_111546.npz"
DATA = "ret30.mdl/model.ckpt.data-00000-of-00001"
DAMAGES = {  # what the QA made (/tmp/qa5/pt) and more: damaged file, how, what the error says
    "zero_std": (STD, lambda p, s: np.save(p, np.zeros(128)), r"std\.npy.*128 of 128 standard deviations are <= 0"),
    "nan_mean": (MEAN, lambda p, s: np.save(p, np.full(128, np.nan)), r"mean\.npy.*mean has 128 of 128 values not finite"),
    "nan_jynet_weight": (NPZ, _npz_with_nan, r"\.npz.*array arr_0 has 32768 of 32768 values not finite"),
    "nan_ret30_weight": (DATA, _ckpt_with_nan, r"data-00000-of-00001.*'conv2d/kernel' has 1 of 16384 values not finite"),
    "truncated_ckpt": (DATA, _truncate(300000), r"data-00000-of-00001.*truncated or damaged: expected 16384 values, found 8760"),
    "truncated_npz": (NPZ, _truncate(1000000), r"\.npz.*not a valid \.npz archive"),
    "text_npy": (STD, lambda p, s: p.write_text("not numbers\n"), r"std\.npy.*not a numpy array file"),
    "truncated_npy": (STD, _truncate(300), r"std\.npy.*truncated or damaged: expected 128 values, found \d+"),
    "pickled_npy": (STD, lambda p, s: np.save(p, np.array([{}] * 128), allow_pickle=True), r"std\.npy.*pickled"),
}


@pytest.mark.skipif(not (HSP_CNN / "ret30.mdl").is_dir(), reason=f"the authors' released weights are not at {HSP_CNN}")
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_release_is_refused_in_one_line_and_keeps_the_earlier_import(damage, tmp_path, monkeypatch, capsys):
    rel, write, message = DAMAGES[damage]
    _release_copy(tmp_path / "release", rel, write)
    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    earlier = tmp_path / "cache" / "models" / "jynet" / "jynet.pt"  # stands for a good import
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"earlier import")
    capsys.readouterr()
    assert main(["pretrained", "import", str(tmp_path / "release"), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and rel in err, err
    assert re.search(message, err), err
    assert earlier.read_bytes() == b"earlier import"
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == ["jynet"]
