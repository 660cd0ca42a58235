"""Honest numbers (issue 20): each fault found in review has a test here that failed before
its fix (metric ties, A/B sampling, folds and `compare` pairing are in test_metrics.py,
test_data.py and test_cvreport.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from hitrank.cli import main
from hitrank.config import load_config

SR = 22050
QUICK = ["--folds", "3", "--set", "train.epochs=2"]
TABLE1 = Path(__file__).resolve().parents[1] / "configs" / "table1"


def test_hl30_configs_name_their_highlighter():
    for path in sorted(TABLE1.glob("*.yaml")):
        cfg = load_config(path)
        if cfg.features.segment == "hl30":
            assert cfg.features.highlighter == "fallback", path.name
    with pytest.raises(Exception, match="needs features.highlighter"):
        load_config(None, ["features.segment=hl30"])


def test_cv_refuses_songs_that_trained_the_highlighter(corpus, tmp_path, capsys):
    hl = tmp_path / "hl"
    assert main(["highlighter", "train", "--labels", str(corpus / "labels.csv"), "--out", str(hl),
                 "--set", "epochs=1", "-q"]) == 0
    info = torch.load(hl / "highlighter.pt", weights_only=True)["info"]
    assert len(info["paths"]) == 24 and info["labels_sha1"]
    store = tmp_path / "st"
    assert main(["extract", str(corpus / "labels.csv"), "--out", str(store), "--segment", "hl30",
                 "--highlighter", str(hl / "highlighter.pt"), "-q"]) == 0
    args = ["cv", "--config", str(TABLE1 / "c_simple_cnn_hl30.yaml"), "--store", str(store), "--out",
            str(tmp_path / "run"), "--set", f"features.highlighter={hl / 'highlighter.pt'}", *QUICK]
    assert main(args) == 2
    assert "supervised the attention highlighter" in capsys.readouterr().err
    # the config's own highlighter (the fallback) did not make this store: the mismatch is named
    # (the fallback was once opened as a checkpoint file)
    assert main(["cv", "--config", str(TABLE1 / "c_simple_cnn_hl30.yaml"), "--store", str(store), "--out",
                 str(tmp_path / "run_fallback"), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "the config asks for features with highlighter='fallback' but the store was made with " \
           "highlighter='attention:" in err and "re-extract, or change features.highlighter" in err
    assert main([*args, "--allow-highlighter-overlap"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["highlighter_overlap"] == 24
    assert "supervised the highlighter" in capsys.readouterr().out


def test_rank_averages_fold_models_on_one_scale(store, corpus, tmp_path):
    from hitrank.checkpoint import find_checkpoints, load_checkpoint
    from hitrank.rank import rank_folder
    from hitrank.store import FeatureStore

    run = tmp_path / "run"
    assert main(["cv", "--config", str(TABLE1 / "a_simple_cnn_mid30.yaml"), "--store", str(store), "--out", str(run),
                 *QUICK]) == 0
    ranking, _ = rank_folder(corpus / "audio", run, cache=tmp_path / "cache", progress=False)
    st = FeatureStore.open(tmp_path / "cache")
    X = torch.from_numpy(st.load(list(ranking.song_id)))
    scorers = [load_checkpoint(p) for p in find_checkpoints(run)]
    assert len({(s.target.mean, s.target.std) for s in scorers}) == 3  # each fold its own units
    per_fold = np.stack([s.score(X) * s.target.std + s.target.mean for s in scorers])  # log hit scores
    assert np.allclose(ranking.score, per_fold.mean(axis=0), atol=1e-6)
    assert np.allclose(ranking.predicted_hit_score, np.exp(per_fold.mean(axis=0)), rtol=1e-6)


def test_val_loss_selection_compares_validation_mse(store, tmp_path):
    run = tmp_path / "run"
    assert main(["cv", "--config", str(TABLE1 / "e_siamese_naive_hl30.yaml"), "--store", str(store), "--out", str(run),
                 "--set", "features.segment=mid30", "--set", "pairs.w=[0.0,0.9]",
                 "--set", "cv.select_metric=val_loss", *QUICK]) == 0
    curves = pd.read_csv(run / "curves.csv")
    folds = pd.read_csv(run / "folds.csv")
    for f, c in curves.groupby("fold"):
        best = c.loc[c.groupby("grid").val_loss.idxmin()]  # each grid point's kept epoch
        chosen = folds.set_index("fold").loc[f, "w"]
        assert best.loc[best.val_mse.idxmin(), "w"] == chosen


def test_raw_power_features_do_not_overflow(tmp_path):
    from hitrank.data import load_dataset
    from hitrank.store import FeatureStore

    t = np.arange(40 * SR) / SR
    square = np.sign(np.sin(2 * np.pi * 55 * t)).astype(np.float32)  # a loud 55 Hz square wave
    sf.write(tmp_path / "loud.wav", square, SR, subtype="FLOAT")
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(tmp_path / f"n{i}.wav", 0.05 * rng.standard_normal(40 * SR).astype(np.float32), SR)
    (tmp_path / "labels.csv").write_text("song_id,path,hit_score\n" + "".join(
        f"{n},{n}.wav,{i + 1}\n" for i, n in enumerate(["loud", "n0", "n1", "n2"])))
    assert main(["extract", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "st"), "--log", "none",
                 "-q"]) == 0
    mel = np.load(tmp_path / "st" / "mel_mid30.npy")
    assert mel.dtype == np.float32 and np.isfinite(mel).all() and mel.max() > np.finfo(np.float16).max
    ds, problems = load_dataset(FeatureStore.open(tmp_path / "st"))
    assert "loud" in set(ds.song_ids) and not problems


def test_attention_highlighter_pads_with_silence():
    from hitrank.thumbnail.attention import CHUNK_FRAMES, batch_chunks

    mel = torch.full((128, CHUNK_FRAMES + 8), -30.0)
    x, mask = batch_chunks([mel])
    assert mask.tolist() == [[True, True]]
    assert torch.all(x[0, 1, :, 8:] == -100.0)  # silence on the dB scale, not 0 dB


def test_sample_std_and_a_run_that_diverges_from_the_first_epoch(store, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["cv", "--config", str(TABLE1 / "a_simple_cnn_mid30.yaml"), "--store", str(store), "--out", str(run),
                 *QUICK]) == 0
    s, folds = json.loads((run / "summary.json").read_text()), pd.read_csv(run / "folds.csv")
    assert s["ndcg_std"] == pytest.approx(folds.ndcg.std(ddof=1))
    assert s["ndcg_se"] == pytest.approx(folds.ndcg.std(ddof=1) / np.sqrt(3))
    bad = tmp_path / "bad"
    assert main(["cv", "--config", str(TABLE1 / "a_simple_cnn_mid30.yaml"), "--store", str(store), "--out", str(bad),
                 "--set", "train.lr=1.0e+30", *QUICK]) == 1  # NaN from the first epoch: no crash, but said
    assert len(pd.read_csv(bad / "folds.csv")) == 3


def test_silent_segment_is_kept_ranked_last_and_flagged(store, corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["cv", "--config", str(TABLE1 / "a_simple_cnn_mid30.yaml"), "--store", str(store), "--out", str(run),
                 *QUICK]) == 0
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(3):
        (folder / f"s{i}.wav").symlink_to(corpus / "audio" / f"song_{i:05d}.wav")
    sf.write(folder / "silent.wav", np.zeros(60 * SR, np.float32), SR)
    capsys.readouterr()
    assert main(["rank", str(folder), "--model", str(run), "--json", "--cache", str(tmp_path / "c")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["failures"] == [] and len(out["ranking"]) == 4
    last = out["ranking"][-1]
    assert last["song_id"] == "silent.wav" and last["silent"] is True and "silent" in last["flags"]
    man = pd.read_csv(tmp_path / "c" / "manifest.csv")
    assert man.set_index("song_id").loc["silent.wav", "status"] == "ok"


def test_out_of_distribution_inputs_are_flagged(store, corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["cv", "--config", str(TABLE1 / "a_simple_cnn_mid30.yaml"), "--store", str(store), "--out", str(run),
                 *QUICK]) == 0
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(4):
        (folder / f"s{i}.wav").symlink_to(corpus / "audio" / f"song_{i:05d}.wav")
    t = np.arange(40 * SR) / SR
    sf.write(folder / "tone.wav", (0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32), SR)
    capsys.readouterr()
    assert main(["rank", str(folder), "--model", str(run), "--json", "--cache", str(tmp_path / "c")]) == 0
    rows = {r["song_id"]: r for r in json.loads(capsys.readouterr().out)["ranking"]}
    assert rows["tone.wav"]["ood"] is True and rows["tone.wav"]["ood_score"] > 3
    assert "out_of_distribution" in rows["tone.wav"]["flags"]
    assert sum(rows[f"s{i}.wav"]["ood"] for i in range(4)) <= 1


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_holding_code_is_refused_in_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"format": "hitrank-checkpoint/2", "kind": "spectrogram", "x": _Evil(marker)},
               tmp_path / "evil.pt")
    assert main(["rank", str(tmp_path), "--model", str(tmp_path / "evil.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "executable" in err and "refused" in err
    assert "weights_only=False" not in err and "likely succeed" not in err
    assert not marker.exists()  # nothing ran


@pytest.mark.parametrize("damage, reason", [("empty", "empty"), ("text", "not a PyTorch checkpoint"),
                                           ("random", "not a PyTorch checkpoint"), ("cut", "truncated")])
def test_a_damaged_checkpoint_is_named_as_damaged_not_as_code(damage, reason, tmp_path, capsys):
    from hitrank.payload import save_payload

    path = tmp_path / "model.pt"
    save_payload(path, "transfer", {"x": torch.zeros(1000)})
    whole = path.read_bytes()
    path.write_bytes({"empty": b"", "text": b"garbage\n", "random": np.random.default_rng(0).bytes(4000),
                      "cut": whole[: len(whole) // 2]}[damage])
    assert main(["rank", str(tmp_path), "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and reason in err and "model.pt" in err
    assert "executable" not in err


def test_tiny_top_fractions_warn_and_pooled_intervals_are_reported(store, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["cv", "--config", str(TABLE1 / "a_simple_cnn_mid30.yaml"), "--store", str(store), "--out", str(run),
                 *QUICK]) == 0
    out = capsys.readouterr().out
    s = json.loads((run / "summary.json").read_text())
    assert s["fold_n_top"] == 2 and any("fewer than 10" in w for w in s["warnings"])
    assert "warning:" in out and "pooled out-of-fold" in out
    lo, hi = s["pooled_ci"]["ndcg"]
    assert lo <= s["pooled"]["ndcg"] <= hi


def test_an_embedding_unit_that_never_moves_in_training_does_not_flag_every_new_song():
    from hitrank import ood

    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 50))
    train[:, 0] = 0.0  # a unit silent on every training song
    new = rng.normal(size=(100, 50))
    new[:, 0] = 0.05  # stirred a little by the new songs
    absolute = ood.profile_reference(train)
    relative = ood.profile_reference(train, relative_floor=ood.EMBEDDING_FLOOR)
    assert (ood.profile_scores(new, absolute) > 1).mean() > 0.9
    assert (ood.profile_scores(new, relative) > 1).mean() < 0.1
    assert (ood.profile_scores(new * 6, relative) > 1).all()  # far away still is
