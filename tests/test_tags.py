"""Tag branch: TensorBundle reader, the musicnn port against TensorFlow goldens, `hitrank tags`,
tag vectors in the store, and the tag DNN fused with the CNN (paper Eq. 4)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hitrank.cli import main
from hitrank.errors import CheckpointError
from hitrank.tags import TAGS
from hitrank.tags.clips import SR, clips

GOLDEN = Path(__file__).parent / "data" / "musicnn_golden.npz"
NEEDS_MUSICNN = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                   reason="pip install --no-deps musicnn==0.1.0 (pretrained MTT weights)")


@NEEDS_MUSICNN
def test_bundle_reader_reads_every_tensor():
    from hitrank.tags.bundle import read_bundle
    from hitrank.tags.musicnn import checkpoint_dir

    t = read_bundle(str(checkpoint_dir("MTT_musicnn")) + "/")
    assert t["conv2d/kernel"].shape == (7, 38, 1, 204) and t["dense_1/kernel"].shape == (200, 50)
    n_weights = sum(v.size for k, v in t.items() if "Adam" not in k and "power" not in k)
    assert n_weights == 792079  # inference variables of MTT_musicnn
    assert all(np.isfinite(v).all() for v in t.values())


def test_bundle_reader_refuses_other_files(tmp_path):
    from hitrank.tags.bundle import read_bundle

    with pytest.raises(CheckpointError, match="missing"):
        read_bundle(tmp_path / "nothing")
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    (tmp_path / "x.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(CheckpointError, match="magic"):
        read_bundle(tmp_path / "x")


@NEEDS_MUSICNN
@pytest.mark.parametrize("model", ["MTT_musicnn", "MTT_vgg"])
def test_port_matches_tensorflow_goldens(model):
    from hitrank.tags.musicnn import taggram

    golden = np.load(GOLDEN)
    for name, y in clips().items():
        ours = taggram(y, model)
        ref = golden[f"{name}/{model}/taggram"]
        assert ours.shape == ref.shape
        assert np.max(np.abs(ours - ref)) <= 1e-4, name


def test_log_mel_is_librosas_with_the_float16_round_trip():
    import librosa

    from hitrank.tags.musicnn import log_mel

    y = clips()["piano"]
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=256, n_mels=96).T
    ref = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    ours = log_mel(y).numpy()
    assert ours.shape == ref.shape == (1 + len(y) // 256, 96)
    assert np.max(np.abs(ours - ref)) < 2e-3  # float16 steps; the probabilities match to 1e-4


@NEEDS_MUSICNN
def test_tags_cli_on_synthesised_music(tmp_path, capsys):
    c = clips()
    sf.write(tmp_path / "drums.wav", np.tile(c["drums"], 3), SR)
    sf.write(tmp_path / "piano.flac", np.tile(c["piano"], 3), SR)
    sf.write(tmp_path / "short.wav", c["techno"][: SR], SR)  # 1 s: padded to one patch
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVE")
    files = [str(tmp_path / n) for n in ("drums.wav", "piano.flac", "short.wav", "broken.wav")]
    assert main(["tags", *files, "--json"]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["drums.wav", "piano.flac", "short.wav", "broken.wav"]
    assert set(rows.pop()) == {"path", "error"}  # a failed file has its line too
    assert all(list(r["tags"]) == list(TAGS) for r in rows)
    drums, piano = rows[0]["tags"], rows[1]["tags"]
    assert {"beat", "drums"} & set(rows[0]["top"][:2]) and drums["classical"] < 0.1
    assert "piano" in rows[1]["top"][:3] and piano["techno"] < 0.1
    assert "broken.wav" in captured.err and "1 of 4 files failed:\n  " in captured.err
    assert captured.err.split("files failed:\n")[1].count("broken.wav") == 1  # listed again at the end
    assert [r["padded"] for r in rows] == [False, False, True]  # 1 s: its tags describe silence too
    # a folder stands for its audio files (recursive, sorted); one without audio is a failure
    (tmp_path / "sub").mkdir()
    (tmp_path / "short.wav").rename(tmp_path / "sub" / "short.wav")
    (tmp_path / "no audio").mkdir()
    assert main(["tags", str(tmp_path), str(tmp_path / "no audio"), "--top", "2"]) == 1
    captured = capsys.readouterr()
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [
        str(tmp_path / n) for n in ("drums.wav", "piano.flac", "sub/short.wav")]
    assert "(padded: the song lasts 1.0 s" in captured.out.splitlines()[2]
    assert "2 of 5 files failed:" in captured.err  # broken.wav and the folder without audio
    assert f"{str(tmp_path / 'no audio')!r}: no audio files found (looked for .wav" in captured.err


@NEEDS_MUSICNN
@pytest.mark.slow  # minutes on 2 cores: run by .ci/run with -m 'slow or scale'
def test_extract_with_tags_and_a_tag_row(tmp_path, corpus, capsys):
    from hitrank.store import FeatureStore
    from hitrank.tags import segment_tags

    out = tmp_path / "store"
    assert main(["extract", str(corpus / "labels.csv"), "--out", str(out), "--tags", "-q"]) == 0
    store = FeatureStore.open(out)
    man = store.manifest
    assert store.has_tags and (out / "tags.npy").is_file()
    tags = store.load_tags(list(man.song_id))
    assert tags.shape == (24, 50) and np.all((tags >= 0) & (tags <= 1))
    # the stored vector is the tagger on the Mid-30 segment of the same decode
    from hitrank import audio

    seg = audio.load_mid30(man.path[0])
    assert np.allclose(tags[0], segment_tags(seg.audio, seg.sr), atol=1e-6)
    # a "+ tag" row and an audio-only row both run from the store with tags
    for cfg in ("b_simple_cnn_mid30_tag", "a_simple_cnn_mid30"):
        assert main(["cv", "--config", f"configs/table1/{cfg}.yaml", "--store", str(out), "--out",
                     str(tmp_path / cfg), "--folds", "3", "--set", "train.epochs=2", "-q"]) == 0
    folds = (tmp_path / "b_simple_cnn_mid30_tag" / "folds.csv").read_text()
    assert "mu" in folds.splitlines()[0]
    capsys.readouterr()
    assert main(["rank", str(corpus / "audio"), "--model", str(tmp_path / "b_simple_cnn_mid30_tag"),
                 "--cache", str(out), "--json", "-q"]) == 0
    assert len(json.loads(capsys.readouterr().out)["ranking"]) == 24


def test_tag_fusion_is_eq4():
    from hitrank.models import build

    torch.manual_seed(0)
    x, t = torch.randn(4, 128, 323), torch.rand(4, 50)
    for mu in (0.0, 0.3, 1.0):
        m = build("tag_fusion", base="simple_cnn", mu=mu).eval()
        expect = (1 - mu) * m.base(x) + mu * m.dnn(t)
        assert torch.allclose(m(x, t), expect)
        fi, fj = m.pair(x[:2], x[2:], t[:2], t[2:])
        assert torch.allclose(torch.cat([fi, fj]), m(x, t), atol=1e-6)
    m = build("tag_fusion", base="siamese", base_kwargs={"scorer": "simple_cnn"}, mu=0.5)
    m(x, t).sum().backward()
    assert all(p.grad is not None for p in m.dnn.parameters())
    assert any(p.grad is not None for p in m.base.parameters())  # trained jointly


@NEEDS_MUSICNN
def test_fit_with_tags_prefers_the_reference_style(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path / "cache"))
    c = clips()
    ref, cand = tmp_path / "ref", tmp_path / "cand"
    ref.mkdir()
    cand.mkdir()
    for i in range(3):
        sf.write(ref / f"drums{i}.wav", np.roll(c["drums"], 4000 * i), SR)
    sf.write(cand / "drums_new.wav", np.roll(c["drums"], 3000), SR)
    sf.write(cand / "piano.wav", c["piano"], SR)
    sf.write(cand / "strings.wav", c["strings"], SR)
    assert main(["fit", "--reference", str(ref), "--candidates", str(cand), "--tags", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "tag_beat" in out["columns"] and "tempo" in out["columns"]
    assert out["ranking"][0]["id"] == "drums_new.wav"


def test_tags_cli_fails_a_file_whose_tagger_output_is_not_finite(tmp_path, capsys, monkeypatch):
    """Damaged weights give NaN tags: a failure of that file blaming the model, not the audio,
    and never a NaN in the output (nor a crash of --json)."""
    from hitrank import tags

    def nan_tags(y, sr, device="cpu"):
        return np.full(len(TAGS), np.nan)

    monkeypatch.setitem(tags.TAGGERS, "jynet", tags.Tagger("jynet", nan_tags, nan_tags, lambda: None, ""))
    sf.write(tmp_path / "drums.wav", np.tile(clips()["drums"], 3), SR)
    for extra in ([], ["--json"]):
        assert main(["tags", str(tmp_path / "drums.wav"), "--model", "jynet", *extra]) == 1
        captured = capsys.readouterr()
        if extra:  # the file's JSON line holds its error, no tag
            assert set(json.loads(captured.out)) == {"path", "error"}
        else:
            assert captured.out == ""
        assert "nan" not in captured.err.lower().replace("nan or inf", "")
        assert "drums.wav" in captured.err and "output is not finite" in captured.err
        assert "weights" in captured.err and "1 of 1 files failed" in captured.err
