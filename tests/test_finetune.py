"""Fine-tuning from the released KKBOX weights with layers frozen (``train.freeze``): frozen
parameters stay bitwise at their released values while the head learns, bad names are clear
errors that list the model's layers, and the configs/real/kkbox_finetune* configs load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hitrank.cli import main
from hitrank.config import load_config, resolve_config
from hitrank.data import Target
from hitrank.errors import ConfigError
from hitrank.models import build
from hitrank.train import FitJob, Training, fit, frozen_norms, frozen_parameters

N_SONGS = 24  # synthetic songs of the training tests
N_FRAMES = 64  # frames per song: the CNN takes any length; short keeps the tests fast
HEAD = ("net.7.", "net.10.", "net.13.")  # simple_cnn's 1x1 fully-convolutional head
CONV = ("net.0.", "net.3.")  # its two convolutional blocks (the "conv" shorthand)
FAST = ["train.epochs=2", "train.device=cpu", "train.precision=fp32", "train.patience=2"]


@pytest.fixture
def imported(imported_cache, monkeypatch):
    """HITRANK_CACHE at the cache holding the imported yu2018-kkbox (skips without
    ../shared/reference/hsp_cnn)."""
    monkeypatch.setenv("HITRANK_CACHE", str(imported_cache))
    return imported_cache


def _released() -> dict:
    model = build("simple_cnn")
    from hitrank.checkpoint import init_weights

    init_weights(model, "yu2018-kkbox", input_stats=True)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _data(rng):
    """Raw-power-like mel features (n, 128, T) float32 and a learnable score: the louder the
    low bins, the higher."""
    X = rng.gamma(0.5, 2.0, size=(N_SONGS, 128, N_FRAMES)).astype(np.float32)
    scores = X[:, :16].mean(axis=(1, 2)) + 0.1 * rng.standard_normal(N_SONGS)
    artists = np.array([f"a{i % 6}" for i in range(N_SONGS)])
    return torch.as_tensor(X), scores, artists


def _split():
    idx = np.arange(N_SONGS)
    return idx[:18], idx[18:]


def test_frozen_layers_stay_bitwise_while_the_head_learns(imported, rng):
    cfg = load_config("real/kkbox_finetune", FAST)
    X, scores, artists = _data(rng)
    tr, va = _split()
    target = Target.fit("rank", scores[tr])
    run = Training(cfg, X, scores, artists, FitJob(tr, va, target))
    in_opt = {id(p) for g in run.opt.param_groups for p in g["params"]}
    named = dict(run.model.named_parameters())
    assert run.frozen == [n for n in named if n.startswith(CONV)]
    assert {id(p) for n, p in named.items() if n.startswith(HEAD)} == in_opt  # frozen: not in the optimiser
    res = fit(cfg, X, scores, artists, tr, va, target)
    before, after = _released(), res.model.state_dict()
    for name in named:
        if name.startswith(CONV):
            assert torch.equal(after[name], before[name]), name
        else:
            assert not torch.equal(after[name], before[name]), f"{name} did not learn"
    # frozen layers see what they were trained on: ret30's input standardisation (none)
    assert torch.equal(after["in_mean"], torch.zeros(128)) and torch.equal(after["in_std"], torch.ones(128))


def test_nothing_frozen_trains_every_layer(imported, rng):
    cfg = load_config("real/kkbox_finetune_all", FAST)
    X, scores, artists = _data(rng)
    tr, va = _split()
    res = fit(cfg, X, scores, artists, tr, va, Target.fit("rank", scores[tr]))
    before, after = _released(), res.model.state_dict()
    for name, _ in res.model.named_parameters():
        assert not torch.equal(after[name], before[name]), f"{name} did not learn"


def test_freeze_by_prefix_through_the_command_line(imported, store, tmp_path):
    out = tmp_path / "run"
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--store", str(store), "--out", str(out),
                 "--folds", "3", "--init", "yu2018-kkbox", "--set", "train.epochs=1", "--set", "cv.processes=1",
                 "--set", "train.freeze=[net.0, net.3, net.7]"]) == 0
    assert "- net.7" in (out / "config.yaml").read_text()
    fold = torch.load(out / "fold_00.pt", weights_only=True)["members"][0]["state_dict"]
    released = _released()
    assert all(torch.equal(fold[k], released[k]) for k in released if k.startswith(("net.0.", "net.3.", "net.7.")))
    assert not torch.equal(fold["net.13.weight"], released["net.13.weight"])


def test_a_bad_prefix_names_it_and_lists_the_layers(imported, store, tmp_path, capsys):
    assert main(["cv", "--config", "table1/a_simple_cnn_mid30", "--store", str(store), "--out",
                 str(tmp_path / "run"), "--folds", "3", "--init", "yu2018-kkbox",
                 "--set", "cv.processes=1", "--set", "train.freeze=[net.5]"]) == 2
    err = capsys.readouterr().err
    assert "'net.5' names no layer" in err and "net.0, net.3, net.7, net.10, net.13" in err


def test_prefixes_stop_at_a_dot_and_errors_name_the_value():
    model = build("simple_cnn")
    assert frozen_parameters(model, ("net.10", "net.0.bias")) == ["net.0.bias", "net.10.weight", "net.10.bias"]
    assert not model.net[10].weight.requires_grad and model.net[0].weight.requires_grad
    with pytest.raises(ConfigError, match="'net.1' names no layer"):  # net.1 does not hold net.10
        frozen_parameters(build("simple_cnn"), ("net.1",))
    with pytest.raises(ConfigError, match=r"'net\.5' names no layer of SimpleCNN.*net\.0, net\.3, net\.7"):
        frozen_parameters(build("simple_cnn"), ("net.5",))
    with pytest.raises(ConfigError, match="freezes every parameter"):
        frozen_parameters(build("simple_cnn"), ("net",))
    assert frozen_parameters(build("simple_cnn"), ("none",)) == []
    fused = build("tag_fusion", base="siamese", mu=0.5)  # the shorthand follows the model's names
    assert frozen_parameters(fused, ("conv",)) == [f"base.scorer.net.{i}.{p}" for i in (0, 3)
                                                    for p in ("weight", "bias")]


def test_conv_blocks_take_their_batch_norm_which_stays_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                torch.nn.Conv1d(8, 1, 1))
    assert frozen_parameters(model, ("conv",)) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert frozen_norms(model) == [model[1]]


def test_freezing_needs_init_and_none_stands_alone():
    with pytest.raises(ConfigError, match="train.init"):
        load_config("table1/a_simple_cnn_mid30", ["train.freeze=[conv]"])
    with pytest.raises(ConfigError, match="cannot be combined"):
        load_config("table1/a_simple_cnn_mid30", ["train.init=yu2018-kkbox", "train.freeze=[none, conv]"])
    with pytest.raises(ConfigError, match="expected a string"):
        load_config("table1/a_simple_cnn_mid30", ["train.init=yu2018-kkbox", "train.freeze=[1]"])


def test_the_finetune_configs_load_by_name():
    frozen, every = load_config("real/kkbox_finetune"), load_config("real/kkbox_finetune_all")
    assert resolve_config("real/kkbox_finetune").parent.name == "real"
    for cfg in (frozen, every):
        assert cfg.train.init == "yu2018-kkbox" and cfg.train.target == "rank"
        assert (cfg.features.segment, cfg.features.window, cfg.features.log) == ("mid30", "hann", "none")
    assert frozen.train.freeze == ("conv",) and every.train.freeze == ("none",)
    assert every.train.lr < frozen.train.lr


def test_an_init_model_not_imported_is_refused_before_any_folder_is_written(store, tmp_path, capsys):
    """`--init yu2018-kkbox` with nothing imported (this test's empty HITRANK_CACHE): one line
    naming the option and how to import, and no run folder left half-made."""
    out = tmp_path / "run"
    assert main(["train", "--config", "table1/a_simple_cnn_mid30", "--store", str(store), "--out",
                 str(out), "--init", "yu2018-kkbox-missing", "--set", "train.epochs=1"]) == 2
    assert "train.init='yu2018-kkbox-missing' (--init)" in capsys.readouterr().err
    assert not out.exists()
