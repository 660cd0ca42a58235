"""Experiment configs: frozen dataclasses loaded from commented YAML (``yaml.safe_load``).

Unknown keys, wrong types and out-of-range values are :class:`ConfigError` s that name the
key and the allowed values, raised before any expensive work. ``--set key=value`` overrides
any key (dotted path, value parsed as YAML: ``--set train.epochs=2``,
``--set pairs.w=[0.3,0.7]``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .runtime import check_device_spec

#: the configs shipped inside the package (configs/ at the top of the repository points here)
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"

SAMPLINGS = ("none", "naive", "ab", "artist", "ab_artist")
TARGETS = ("raw", "log", "neg_inv_log10")
OPTIMIZERS = ("adagrad", "adam")
PRECISIONS = ("auto", "fp32", "bf16")
FALLBACK = "fallback"  # features.highlighter: the training-free HL-30 highlighter
SELECT_METRICS = ("ndcg", "kendall", "spearman", "recall", "spearman_all", "val_loss")


@dataclass(frozen=True)
class FeaturesConfig:
    segment: str = "mid30"  # a segment method of hitrank.segments: mid30 | hl30
    highlighter: str = ""  # hl30: fallback (training-free) or an attention highlighter checkpoint
    window: str = "hamming"  # hamming (paper) | hann (authors' code)
    log: str = "db"  # db | log1p | none
    tags: bool = False  # add the 50 MTT tag activations through the tag DNN (paper Eq. 4)
    tag_scope: str = "segment"  # tags averaged over the 30 s segment | the whole song


@dataclass(frozen=True)
class ModelConfig:
    name: str = "simple_cnn"  # a registered scoring model (role 'scorer'): simple_cnn | siamese
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PairsConfig:
    sampling: str = "none"  # none (rating only) | naive | ab | artist | ab_artist
    per_epoch: float = 1.0  # pairs drawn per epoch, as a multiple of the training songs
    w: tuple = (0.5,)  # grid for the ranking-loss weight w in [0, 1]
    margin: tuple = (0.5,)  # grid for the hinge margin m > 0 (units: std of the target)
    fusion: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)  # ab_artist: grid for the weight of the A/B model


@dataclass(frozen=True)
class TagsConfig:
    mu: tuple = (0.5,)  # grid for the tag-branch weight mu in [0, 1]
    tagger: str = "auto"  # auto (jynet, the paper's tagger, when imported; else musicnn) | musicnn | jynet | jynet-mtt-std


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping on the validation loss
    batch_size: int = 16  # songs (rating) or pairs (Siamese) per step
    optimizer: str = "adagrad"  # adagrad (released code) | adam
    lr: float = 0.005
    lr_decay: float = 0.9  # lr multiplier when the validation loss does not improve
    patience: int = 8  # epochs without improvement before stopping
    target: str = "log"  # raw | log | neg_inv_log10 (released code: -1/log10(x))
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # deprecated: false = precision fp32 (kept so older configs load)
    precision: str = "auto"  # fp32 | bf16 | auto: bfloat16 autocast on CUDA and on CPUs with AVX512-BF16 or AMX
    bank: str = "auto"  # auto | on | off: train a fold's models (on a GPU: all folds) in lockstep as one model bank
    seed: int = 0
    init: str = ""  # start from released weights: an imported pretrained model (yu2018-kkbox) or a run / checkpoint


@dataclass(frozen=True)
class CVConfig:
    folds: int = 10  # k folds; fold f tests chunk f, validates on chunk f+1, trains on the rest
    artist_aware: bool = False  # keep each artist's songs in one chunk
    fold_seed: int = 0  # folds come from a hash of (fold_seed, song_id): independent of train.seed
    top_fraction: float = 0.1  # the "@10%" of the metrics
    select_metric: str = "ndcg"  # validation metric that picks grid values and fusion weights (val_loss: by validation MSE)
    allow_highlighter_overlap: bool = False  # evaluate on songs that supervised the attention highlighter (leaks labels)
    processes: int = 0  # 0 auto (CPU: one single-threaded process per core for the folds) | 1 this process | N


class Plain:
    """Mixin of the top-level config dataclasses: ``to_dict()`` as plain YAML/JSON types."""

    def to_dict(self) -> dict:
        return to_plain(dataclasses.asdict(self))


@dataclass(frozen=True)
class Config(Plain):
    name: str = "experiment"
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    tags: TagsConfig = field(default_factory=TagsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)


def to_plain(obj):
    """Dataclass-as-dict values with tuples as lists (for YAML, JSON and checkpoints)."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _coerce(path: str, value: Any, default: Any):
    """Check/convert ``value`` to the type of the field's default."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}={value!r}: expected true or false")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}={value!r}: expected an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}={value!r}: expected a number")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            return "on" if value else "off"
        if not isinstance(value, str):
            raise ConfigError(f"{path}={value!r}: expected a string")
        return value
    if isinstance(default, tuple):
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise ConfigError(f"{path}: the grid is empty; give at least one value")
        item_default = default[0] if default else 0.0  # lists of strings keep strings
        return tuple(_coerce(f"{path}[{i}]", v, item_default) for i, v in enumerate(items))
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}={value!r}: expected a mapping")
        return value
    return value


def build_config(cls, data: dict, prefix: str = ""):
    """Build the frozen dataclass ``cls`` from a mapping (strict: unknown keys, bad types)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; "
                          f"allowed under {prefix.rstrip('.') or 'the top level'}: {sorted(fields)}")
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = build_config(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, default)
    return cls(**kwargs)


def check_choice(key, value, allowed):
    """ConfigError naming the key and the allowed values unless ``value`` is allowed."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}; allowed: {list(allowed)}")


def validate(cfg: Config) -> Config:
    """Range and consistency checks; returns ``cfg`` or raises ConfigError."""
    from . import segments
    from .models import available, model_class

    f, p, t, c = cfg.features, cfg.pairs, cfg.train, cfg.cv
    check_choice("features.segment", f.segment, segments.names())
    takes_highlighter = segments.get(f.segment).takes_highlighter
    if takes_highlighter and not f.highlighter:
        raise ConfigError(f"features.segment={f.segment!r} needs features.highlighter: fallback "
                          "(training-free) or an attention highlighter checkpoint")
    if f.highlighter not in ("", FALLBACK) and not takes_highlighter:
        raise ConfigError(f"features.highlighter is set but features.segment={f.segment!r} "
                          "takes no highlighter (hl30 does)")
    check_choice("features.window", f.window, ("hamming", "hann"))
    check_choice("features.log", f.log, ("db", "log1p", "none"))
    check_choice("features.tag_scope", f.tag_scope, ("segment", "song"))
    check_choice("pairs.sampling", p.sampling, SAMPLINGS)
    check_choice("train.target", t.target, TARGETS)
    check_choice("train.optimizer", t.optimizer, OPTIMIZERS)
    check_choice("train.precision", t.precision, PRECISIONS)
    check_choice("train.bank", t.bank, ("auto", "on", "off"))
    check_choice("cv.select_metric", c.select_metric, SELECT_METRICS)
    from .tags import TAGGERS

    check_choice("tags.tagger", cfg.tags.tagger, ["auto", *TAGGERS])
    check_choice("model.name", cfg.model.name, available("scorer"))
    for key, grid in (("pairs.w", p.w), ("tags.mu", cfg.tags.mu), ("pairs.fusion", p.fusion)):
        bad = [v for v in grid if not 0 <= v <= 1]
        if bad:
            raise ConfigError(f"{key}={list(grid)}: values must lie in [0, 1] (bad: {bad})")
    if any(m <= 0 for m in p.margin):
        raise ConfigError(f"pairs.margin={list(p.margin)}: the margin m must be > 0")
    if p.per_epoch <= 0:
        raise ConfigError(f"pairs.per_epoch={p.per_epoch}: must be > 0")
    if c.processes < 0:
        raise ConfigError(f"cv.processes={c.processes}: 0 (auto), 1 (this process) or more")
    if c.folds < 3:
        raise ConfigError(f"cv.folds={c.folds}: need at least 3 (train, validation and test chunks)")
    if not 0 < c.top_fraction <= 1:
        raise ConfigError(f"cv.top_fraction={c.top_fraction}: must be in (0, 1]")
    for key, v in (("train.epochs", t.epochs), ("train.batch_size", t.batch_size),
                   ("train.patience", t.patience)):
        if v < 1:
            raise ConfigError(f"{key}={v}: must be >= 1")
    if t.lr <= 0 or not 0 < t.lr_decay <= 1:
        raise ConfigError(f"train.lr={t.lr}, train.lr_decay={t.lr_decay}: need lr > 0, 0 < lr_decay <= 1")
    on_pairs = model_class(cfg.model.name).trains_on_pairs
    pair_models = [m for m in available("scorer") if model_class(m).trains_on_pairs]
    if on_pairs and p.sampling == "none":
        raise ConfigError(f"model.name={cfg.model.name!r} needs pairs.sampling in "
                          f"{list(SAMPLINGS[1:])}; use simple_cnn for rating only")
    if not on_pairs and p.sampling != "none":
        raise ConfigError(f"pairs.sampling={p.sampling!r} needs a model trained on pairs "
                          f"(model.name in {pair_models})")
    check_device_spec(t.device)
    return cfg


def highlighter_checkpoint(cfg: Config) -> str | None:
    """The attention highlighter checkpoint a config names (None: the fallback, or none)."""
    h = cfg.features.highlighter
    return h if h not in ("", FALLBACK) else None


def feature_params(cfg: Config):
    """The :class:`~hitrank.features.FeatureParams` a config asks for (segment method,
    highlighter, window, log, tags and tagger)."""
    from . import segments
    from .tags import resolve_tagger

    f = cfg.features
    return segments.params_for(f.segment, highlighter_checkpoint(cfg), window=f.window, log=f.log,
                               tags=f.tag_scope if f.tags else "",
                               tagger=resolve_tagger(cfg.tags.tagger) if f.tags else "")


def check_available(cfg: Config) -> None:
    """Fail early, naming the missing piece, for configs that need unreleased features."""
    if highlighter_checkpoint(cfg) and not Path(cfg.features.highlighter).is_file():
        raise ConfigError(f"features.highlighter={cfg.features.highlighter!r}: no such checkpoint; "
                          "train one with `hitrank highlighter train` or leave it empty (fallback)")
    if cfg.features.tags:
        from .errors import CheckpointError
        from .tags import check_tagger

        try:
            check_tagger(feature_params(cfg).tagger)
        except CheckpointError as exc:
            raise ConfigError(f"{cfg.name}: features.tags=true: {exc}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=2")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def packaged_configs() -> list[str]:
    """Names of the configs shipped inside the package (``table1/a_simple_cnn_mid30``, ...)."""
    root = PACKAGED_CONFIGS
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def resolve_config(spec: str | os.PathLike) -> Path:
    """A config file: ``spec`` itself when it is a file, else the packaged config of that
    name (``table1/a_simple_cnn_mid30``, with or without ``.yaml``)."""
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec).removeprefix("configs/")
    for candidate in (PACKAGED_CONFIGS / name, PACKAGED_CONFIGS / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{str(spec)!r}: config file does not exist and is not a packaged config; "
                      f"packaged: {', '.join(packaged_configs())}")


def read_yaml(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict:
    """A YAML mapping (``safe_load``) with ``key=value`` overrides applied; not validated.

    ``path`` is a file or a packaged config name (see :func:`resolve_config`).
    """
    data: dict = {}
    if path is not None:
        path = resolve_config(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{str(path)!r}: config file does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{str(path)!r}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{str(path)!r}: expected a mapping at the top level")
        data.setdefault("name", path.stem)
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return data


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> Config:
    """Load and validate a YAML config, applying ``key=value`` overrides."""
    data = read_yaml(path, overrides)
    if data.get("branch", "spectrogram") != "spectrogram":
        raise ConfigError(f"{str(path)!r} is a branch={data['branch']!r} config; "
                          "descriptor configs run with --data TABLE.csv (see configs/descriptors/)")
    data.pop("branch", None)
    return validate(build_config(Config, data))


def config_from_dict(data: dict) -> Config:
    """Rebuild a validated config from its :meth:`Config.to_dict` (a run folder, a worker)."""
    return validate(build_config(Config, data))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
