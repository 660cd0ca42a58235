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


def test_seeds_must_not_be_negative(tmp_path, capsys):
    """numpy and torch refuse negative seeds: before, a traceback from a cv worker (spectrogram)
    or the descriptor trainer; now a one-line error naming the key, for every branch."""
    from hitrank.cli import main
    from hitrank.descriptors.config import load_descriptor_config
    from hitrank.thumbnail.training import load_highlighter_config
    from hitrank.transfer.config import load_transfer_config

    for load, config, key in ((load_config, None, "train.seed"), (load_config, None, "cv.fold_seed"),
                              (load_transfer_config, "real/ridge", "train.seed"),
                              (load_transfer_config, "real/ridge", "cv.fold_seed")):
        with pytest.raises(ConfigError, match=rf"^{key}=-1: a seed must be an integer from 0 to 4294967295$"):
            load(config, [f"{key}=-1"])
    with pytest.raises(ConfigError, match=r"^train.seed=-3: a seed"):
        load_descriptor_config("descriptors/topify_mlp", ["train.seed=-3"])
    with pytest.raises(ConfigError, match=r"^seed=-1: a seed"):
        load_highlighter_config(None, ["seed=-1"])
    for argv in (["synth", str(tmp_path / "c"), "--seed", "-1"],
                 ["cv", "--labels", "x.csv", "--out", str(tmp_path / "r"), "--seed", "-2"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "a seed must be an integer >= 0" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("content,message", [
    (b"train:\n  epochs: 1\n  epochs: 2\n", r"key 'epochs' is given twice \(line 3\); keep one"),
    (b"train:\n  lr: 0.1 \xff\n", r"not UTF-8 text \(byte 17\); save the config as UTF-8"),
    (b"- a\n- b\n", r"expected a mapping \(key: value lines\) at the top level, found list"),
    (b"train: 5\n", r"train: expected a section of key: value lines \(amp, bank, .*\), got 5"),
    (b"train: [\n", r"not valid YAML"),
])
def test_a_bad_config_file_is_named_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as exc:
        load_config(path)
    assert "\n" not in str(exc.value)


def test_a_folder_or_an_empty_file_as_config(tmp_path, caplog):
    with pytest.raises(ConfigError, match=r"is a folder; give a config .yaml file or a packaged config name"):
        load_config(tmp_path)
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert load_config(tmp_path / "empty.yaml").train == load_config(None).train  # the defaults, said so
    assert "is empty: every setting takes its default" in caplog.text


def test_yaml_merge_keys_still_work_and_a_list_as_key_is_named(tmp_path):
    """The duplicate-key check must leave YAML merge keys (`<<: *base`) to PyYAML."""
    (tmp_path / "merge.yaml").write_text("base: &b {epochs: 3, lr: 0.01}\n", encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text("x: &b\n  epochs: 3\n  lr: 0.01\ntrain:\n  <<: *b\n  lr: 0.02\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['x'\]"):  # the anchor's holder is not a section
        load_config(path)
    path.write_text("train: &b\n  epochs: 3\n  lr: 0.01\n")
    assert load_config(path).train.epochs == 3
    from hitrank.yamlconfig import load_mapping

    path.write_text("base: &b\n  epochs: 3\n  lr: 0.01\ntrain:\n  <<: *b\n  lr: 0.02\n")
    assert load_mapping(path)["train"] == {"epochs": 3, "lr": 0.02}  # merged, the explicit key wins
    path.write_text("? [a, b]\n: 1\n")
    with pytest.raises(ConfigError, match=r"a key that is a list \(line 1\); keys are names"):
        load_mapping(path)
    with pytest.raises(ConfigError, match=r"train.seed=4294967296: a seed must be an integer from 0 to 4294967295"):
        load_config(None, ["train.seed=4294967296"])
