"""Descriptor-branch configs (``branch: descriptors`` at the top of the YAML).

Same rules as the spectrogram configs (:mod:`hitrank.config`; the shared machinery is
:mod:`hitrank.yamlconfig`): frozen dataclasses, strict keys, ``--set key=value`` overrides,
range checks before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..yamlconfig import Plain, build_config, check_choice, check_seeds, read_yaml
from .extractor_names import DEFAULT_EXTRACTOR, EXTRACTOR_NAMES
from .learners import LEARNERS, learner

BRANCH = "descriptors"  # the top-level `branch:` of these configs
TASKS = ("classify", "regress")
BALANCES = ("none", "smote", "downsample")
TRANSFORMS = ("none", "log1p", "log")
SPLITS = ("kfold", "holdout")
VAL_SPLITS = ("random", "latest", "auto")
DEDUPS = ("song", "uri", "none")
#: keys that descriptor configs no longer have: ``(section, key) -> why``. A YAML or ``--set``
#: that names one is refused; a config saved in an older checkpoint has it dropped.
RETIRED = {("train", "device"): "descriptor models always train on the CPU (the key was "
                                 "never read); delete it from the YAML and drop --device"}


@dataclass(frozen=True)
class DataConfig:
    features: tuple = ("all",)  # descriptor columns; "all" = every canonical descriptor present
    extra: tuple = ("none",)  # further numeric columns used as inputs (e.g. released_year)
    optional: tuple = ("none",)  # further numeric columns used when the table has them
    target: str = "target"  # target column
    task: str = "classify"  # classify (0/1, or value >= hit_threshold) | regress
    hit_threshold: float = -1.0  # classify: hit = target >= this; -1 = the column is already 0/1
    transform: str = "none"  # regress: none | log1p (log streams, takes 0) | log (scores > 0 only)
    keep_hits: float = 1.0  # keep this fraction of hits (seeded) to study class imbalance
    history: bool = False  # add artist-history features (artist's strictly earlier songs only)
    order_column: str = "decade"  # what "earlier" means: decade, released_year, ...
    history_len: int = 5  # history_lstm: at most this many earlier songs
    dedup: str = "song"  # before splitting, one row per song: song (same URI, or same artist +
    #   title + duration) | uri (same URI only) | none; the earliest copy (order_column) is kept
    extractor: str = DEFAULT_EXTRACTOR  # how this model's descriptors are computed from audio
    #   (rank, fit): hybrid (Essentia + MTT tags + librosa) | librosa (the earlier proxies)


@dataclass(frozen=True)
class GBDTConfig:
    """Gradient-boosted trees (scikit-learn HistGradientBoosting, stored as tensors)."""

    learning_rate: float = 0.05
    max_iter: int = 1000  # boosting rounds at most; the best round on validation is kept
    patience: int = 50  # stop after this many rounds without a lower validation loss
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0


@dataclass(frozen=True)
class DescModelConfig:
    name: str = "mlp"  # a learner of hitrank.descriptors.learners: mlp | siamese_mlp |
    #   history_lstm | gbdt | blend (MLPs + gbdt)
    hidden: tuple = (128, 128, 128)
    dropout: float = 0.5
    seeds: int = 1  # mlp / blend: networks trained with different seeds, averaged
    gbdt: GBDTConfig = field(default_factory=GBDTConfig)  # gbdt / blend: the trees


@dataclass(frozen=True)
class BalanceConfig:
    method: str = "none"  # none | smote (training folds only) | downsample
    max_ratio: float = 4.0  # downsample: at most this many non-hits per hit
    class_weight: bool = False  # weight the loss by inverse class frequency


@dataclass(frozen=True)
class DescTrainConfig:
    epochs: int = 40
    batch_size: int = 256
    lr: float = 0.001
    weight_decay: float = 0.0
    patience: int = 6  # epochs without validation improvement before stopping
    w: float = 1.0  # siamese_mlp: (1 - w) * BCE/MSE + w * ranking hinge
    margin: float = 1.0  # siamese_mlp: hinge margin
    seed: int = 0


@dataclass(frozen=True)
class DescCVConfig:
    split: str = "kfold"  # kfold (stratified for classify) | holdout (test = rows in test_values)
    folds: int = 10
    split_column: str = "decade"  # holdout: column that picks the test rows
    test_values: tuple = (2000.0,)  # holdout: values of split_column that form the test set
    val_fraction: float = 0.1  # of the training rows, for early stopping and calibration
    val_split: str = "random"  # random (val_fraction of the training rows, stratified) | latest
    #   (the training rows of the latest data.order_column value, e.g. the 1990s for a 2000s
    #   test; the model is then retrained on all training rows with the epochs, rounds and
    #   weights chosen there) | auto (latest for split=holdout, random for kfold)
    top_fraction: float = 0.1


@dataclass(frozen=True)
class DescriptorConfig(Plain):
    name: str = "descriptors"
    data: DataConfig = field(default_factory=DataConfig)
    model: DescModelConfig = field(default_factory=DescModelConfig)
    branch: str = "descriptors"  # written after the table and model sections
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    train: DescTrainConfig = field(default_factory=DescTrainConfig)
    cv: DescCVConfig = field(default_factory=DescCVConfig)


def validate(cfg: DescriptorConfig) -> DescriptorConfig:
    d, m, b, t, c = cfg.data, cfg.model, cfg.balance, cfg.train, cfg.cv
    check_choice("branch", cfg.branch, (BRANCH,))
    check_choice("data.task", d.task, TASKS)
    check_choice("data.extractor", d.extractor, EXTRACTOR_NAMES)
    check_choice("data.transform", d.transform, TRANSFORMS)
    spec = learner(m.name)
    check_choice("balance.method", b.method, BALANCES)
    check_choice("cv.split", c.split, SPLITS)
    check_choice("data.dedup", d.dedup, DEDUPS)
    check_choice("cv.val_split", c.val_split, VAL_SPLITS)
    check_seeds(train__seed=t.seed)
    if not 0 < d.keep_hits <= 1:
        raise ConfigError(f"data.keep_hits={d.keep_hits}: must be in (0, 1]")
    if d.task == "regress" and (b.method != "none" or b.class_weight or d.keep_hits != 1):
        raise ConfigError("balance.* and data.keep_hits apply to data.task='classify' only")
    if spec.sequences and not d.history:
        raise ConfigError(f"model.name={m.name!r} needs data.history=true")
    if d.history_len < 1:
        raise ConfigError(f"data.history_len={d.history_len}: must be >= 1")
    if any(int(h) != h or h < 1 for h in m.hidden):
        raise ConfigError(f"model.hidden={list(m.hidden)}: layer sizes must be integers >= 1")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"model.dropout={m.dropout}: must be in [0, 1)")
    if m.seeds < 1 or (m.seeds > 1 and not spec.many_seeds):
        several = " or ".join(repr(n) for n, s in LEARNERS.items() if s.many_seeds)
        raise ConfigError(f"model.seeds={m.seeds}: must be >= 1, and > 1 only for model.name "
                          f"{several}")
    g = m.gbdt
    for key, v in (("max_iter", g.max_iter), ("patience", g.patience),
                   ("min_samples_leaf", g.min_samples_leaf)):
        if v < 1:
            raise ConfigError(f"model.gbdt.{key}={v}: must be >= 1")
    if g.max_leaf_nodes < 2 or g.learning_rate <= 0 or g.l2_regularization < 0:
        raise ConfigError(f"model.gbdt: max_leaf_nodes={g.max_leaf_nodes} (>= 2), learning_rate="
                          f"{g.learning_rate} (> 0), l2_regularization={g.l2_regularization} (>= 0)")
    if b.max_ratio < 1:
        raise ConfigError(f"balance.max_ratio={b.max_ratio}: must be >= 1")
    if not 0 <= t.w <= 1:
        raise ConfigError(f"train.w={t.w}: must be in [0, 1]")
    if t.margin <= 0:
        raise ConfigError(f"train.margin={t.margin}: must be > 0")
    for key, v in (("train.epochs", t.epochs), ("train.batch_size", t.batch_size),
                   ("train.patience", t.patience)):
        if v < 1:
            raise ConfigError(f"{key}={v}: must be >= 1")
    if t.lr <= 0 or t.weight_decay < 0:
        raise ConfigError(f"train.lr={t.lr}, train.weight_decay={t.weight_decay}: need lr > 0, "
                          "weight_decay >= 0")
    if c.split == "kfold" and c.folds < 2:
        raise ConfigError(f"cv.folds={c.folds}: need at least 2")
    if not 0 < c.val_fraction < 0.5:
        raise ConfigError(f"cv.val_fraction={c.val_fraction}: must be in (0, 0.5)")
    if not 0 < c.top_fraction <= 1:
        raise ConfigError(f"cv.top_fraction={c.top_fraction}: must be in (0, 1]")
    return cfg


def is_descriptor_config(path: str | os.PathLike | None) -> bool:
    """True when the YAML at ``path`` says ``branch: descriptors``."""
    return path is not None and read_yaml(path).get("branch") == BRANCH


def load_descriptor_config(path: str | os.PathLike | None = None,
                           overrides: list[str] = ()) -> DescriptorConfig:
    """Load and validate a descriptor-branch YAML config with ``key=value`` overrides."""
    data = read_yaml(path, overrides)
    data.setdefault("branch", BRANCH)
    for (section, key), why in RETIRED.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(f"{section}.{key}={data[section][key]!r}: not a descriptor-config "
                              f"key any more: {why}")
    return validate(build_config(DescriptorConfig, data))


def config_from_dict(data: dict) -> DescriptorConfig:
    """Rebuild a config saved in a checkpoint (keys of :data:`RETIRED` that an older hitrank
    saved are dropped; their values were never read)."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, key in RETIRED:
        data.get(section, {}).pop(key, None)
    return validate(build_config(DescriptorConfig, data))
