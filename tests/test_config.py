from pathlib import Path

import pytest

from hitrank.config import check_available, load_config
from hitrank.errors import ConfigError

ROOT = Path(__file__).parents[1] / "configs"
CONFIGS = sorted((ROOT / "table1").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_validates(path):
    cfg = load_config(path)
    assert cfg.name


def test_table1_has_twelve_rows():
    names = sorted(p.name[0] for p in (Path(__file__).parents[1] / "configs" / "table1").glob("*.yaml"))
    assert names == list("abcdefghijkl")


def test_highlighter_config_validates():
    from hitrank.thumbnail.training import load_highlighter_config

    assert load_highlighter_config(ROOT / "highlighter" / "hit_score.yaml").epochs > 0
    with pytest.raises(ConfigError, match="unknown key"):
        load_highlighter_config(None, ["epochz=3"])


def test_missing_tagger_weights_name_the_install_line(monkeypatch):
    import importlib.util

    check_available(load_config(ROOT / "table1" / "i_siamese_ab_hl30.yaml"))  # HL-30 is here
    cfg = load_config(ROOT / "table1" / "j_siamese_ab_hl30_tag.yaml")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "musicnn" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install --no-deps musicnn==0.1.0"):
        check_available(cfg)


@pytest.mark.parametrize("override,match", [
    ("train.epochz=3", "unknown key"),
    ("pairs.w=[1.5]", r"\[0, 1\]"),
    ("pairs.margin=[0]", "m must be > 0"),
    ("cv.folds=2", "at least 3"),
    ("train.epochs=two", "integer"),
    ("pairs.sampling=random", "allowed"),
    ("model.name=siamese", "needs pairs.sampling"),
    ("tags.mu=[-0.1]", r"\[0, 1\]"),
])
def test_bad_values_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_overrides_apply():
    cfg = load_config(None, ["train.epochs=2", "pairs.w=[0.2,0.4]", "model.name=siamese",
                             "pairs.sampling=ab"])
    assert cfg.train.epochs == 2 and cfg.pairs.w == (0.2, 0.4)


def test_an_empty_value_clears_an_optional_string_and_names_a_required_one():
    cfg = load_config(ROOT / "table1" / "c_simple_cnn_hl30.yaml", ["features.segment=mid30", "features.highlighter="])
    assert cfg.features.highlighter == ""
    assert load_config(None, ["train.init="]).train.init == ""
    with pytest.raises(ConfigError, match=r"features.segment is empty; give a value, e.g. features.segment=mid30"):
        load_config(None, ["features.segment="])


def test_tagger_auto_is_the_default_tagger_whatever_is_installed(monkeypatch, tmp_path):
    from hitrank.config import dump_config, feature_params
    from hitrank.tags import DEFAULT_TAGGER, jynet_checkpoint

    monkeypatch.setenv("HITRANK_CACHE", str(tmp_path))
    cfgs = {}
    for imported in (False, True):
        if imported:  # JYnet imported: `auto` still means the default tagger
            jynet_checkpoint().parent.mkdir(parents=True)
            jynet_checkpoint().write_bytes(b"")
        cfgs[imported] = load_config(ROOT / "table1" / "j_siamese_ab_hl30_tag.yaml")
    assert cfgs[False] == cfgs[True]
    assert cfgs[True].tags.tagger == DEFAULT_TAGGER == feature_params(cfgs[True]).tagger
    assert f"tagger: {DEFAULT_TAGGER}" in dump_config(cfgs[True])  # the run records the concrete name
    assert load_config(None, ["tags.tagger=jynet"]).tags.tagger == "jynet"
    with pytest.raises(ConfigError, match="tags.tagger='nope'; allowed"):
        load_config(None, ["tags.tagger=nope"])


def test_yaml_exponents_without_a_dot_are_numbers_and_nan_is_refused(tmp_path):
    from hitrank.config import load_config, with_overrides
    from hitrank.errors import ConfigError

    cfg = load_config("table1/a_simple_cnn_mid30")
    # before: "train.lr='1e-3': expected a number" (YAML 1.1 reads 1e-3 as text)
    assert with_overrides(cfg, ["train.lr=1e-3"]).train.lr == pytest.approx(0.001)
    assert with_overrides(cfg, ["train.lr=5E-4"]).train.lr == pytest.approx(0.0005)
    with pytest.raises(ConfigError, match=r"train.lr=nan: expected a number, not NaN"):
        with_overrides(cfg, ["train.lr=.nan"])  # before: a traceback from the optimiser
    with pytest.raises(ConfigError, match=r"train.lr='1e-3x': expected a number"):
        with_overrides(cfg, ["train.lr=1e-3x"])
