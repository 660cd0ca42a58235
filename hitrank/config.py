"""Experiment configs of the spectrogram branch: frozen dataclasses (:mod:`hitrank.schema`)
loaded from commented YAML (``yaml.safe_load``, :mod:`hitrank.yamlconfig`) and validated.

Unknown keys, wrong types and out-of-range values are :class:`ConfigError` s that name the
key and the allowed values, raised before any expensive work. ``--set key=value`` overrides
any key (dotted path, value parsed as YAML: ``--set train.epochs=2``,
``--set pairs.w=[0.3,0.7]``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import yaml

from . import segments
from .errors import CheckpointError, ConfigError
from .features import CONTRASTS, FeatureParams
from .models import available, model_class
from .runinfo import find_checkpoints
from .runtime import check_device_spec
from .schema import (  # noqa: F401  (the config's sections, re-exported)
    Config,
    CVConfig,
    FeaturesConfig,
    ModelConfig,
    PairsConfig,
    TagsConfig,
    TrainConfig,
)
from .tags import TAGGER_ALIASES, TAGGERS, check_tagger, resolve_tagger
from .targets import KINDS as TARGETS
from .yamlconfig import (  # noqa: F401  (re-exported: the shared machinery, by its old paths)
    PACKAGED_CONFIGS,
    Plain,
    apply_overrides,
    build_config,
    check_choice,
    check_seeds,
    packaged_configs,
    parse_override,
    read_yaml,
    resolve_config,
    to_plain,
)

SAMPLINGS = ("none", "naive", "ab", "artist", "ab_artist")
OPTIMIZERS = ("adagrad", "adam")
PRECISIONS = ("auto", "fp32", "bf16")
FALLBACK = "fallback"  # features.highlighter: the training-free HL-30 highlighter
SELECT_METRICS = ("ndcg", "kendall", "spearman", "recall", "spearman_all", "val_loss")


def validate(cfg: Config) -> Config:
    """Range and consistency checks; returns ``cfg`` with its tagger resolved to a registered
    one (``auto`` -> :data:`~hitrank.tags.DEFAULT_TAGGER`, so the run records a concrete
    tagger), or raises ConfigError."""
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
    check_choice("tags.tagger", cfg.tags.tagger, [*TAGGERS, *(a for a in TAGGER_ALIASES if a not in TAGGERS)])
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
    check_seeds(train__seed=t.seed, cv__fold_seed=c.fold_seed)
    if c.folds < 3:
        raise ConfigError(f"cv.folds={c.folds}: need at least 3 (train, validation and test chunks)")
    if c.artist_aware and c.group_by not in ("", "artist"):
        raise ConfigError(f"cv.artist_aware=true (the old name of cv.group_by=artist) contradicts "
                          f"cv.group_by={c.group_by!r}; drop cv.artist_aware")
    if not 0 < c.top_fraction <= 1:
        raise ConfigError(f"cv.top_fraction={c.top_fraction}: must be in (0, 1]")
    for key, v in (("train.epochs", t.epochs), ("train.batch_size", t.batch_size),
                   ("train.patience", t.patience)):
        if v < 1:
            raise ConfigError(f"{key}={v}: must be >= 1")
    if t.lr <= 0 or not 0 < t.lr_decay <= 1:
        raise ConfigError(f"train.lr={t.lr}, train.lr_decay={t.lr_decay}: need lr > 0, 0 < lr_decay <= 1")
    check_choice("features.contrast", f.contrast, CONTRASTS)
    if f.contrast and f.contrast not in segments.get(f.segment).contrasts:
        raise ConfigError(f"features.contrast={f.contrast!r} needs a segment method that finds a "
                          f"contrast window; features.segment={f.segment!r} has none (use hl30)")
    if not (math.isfinite(t.contrast) and t.contrast >= 0) or not (
            math.isfinite(t.contrast_margin) and t.contrast_margin > 0):
        raise ConfigError(f"train.contrast={t.contrast}, train.contrast_margin={t.contrast_margin}: "
                          "need a weight >= 0 (0: off) and a margin > 0")
    if t.contrast > 0 and t.bank == "on":
        raise ConfigError(f"train.bank='on' cannot train with train.contrast={t.contrast} (within-song "
                          "training runs each model alone); use train.bank auto or off")
    if t.contrast > 0 and not f.contrast:
        raise ConfigError(f"train.contrast={t.contrast} trains each song's segment above its contrast "
                          "window: set features.contrast: median (or lowest), with segment hl30")
    if not (math.isfinite(t.window_loss) and t.window_loss >= 0):
        raise ConfigError(f"train.window_loss={t.window_loss}: need a weight >= 0 (0: off)")
    if t.window_loss > 0:
        if not f.whole_song:
            raise ConfigError(f"train.window_loss={t.window_loss} trains on each song's whole log-mel: "
                              "set features.whole_song: true")
        if f.tags or p.sampling != "none" or t.bank == "on":
            raise ConfigError(f"train.window_loss={t.window_loss} trains a rating model on whole songs, "
                              f"one model at a time: needs features.tags false (got {f.tags}), "
                              f"pairs.sampling none (got {p.sampling!r}) and train.bank auto or off "
                              f"(got {t.bank!r})")
    on_pairs = model_class(cfg.model.name).trains_on_pairs
    pair_models = [m for m in available("scorer") if model_class(m).trains_on_pairs]
    if on_pairs and p.sampling == "none":
        raise ConfigError(f"model.name={cfg.model.name!r} needs pairs.sampling in "
                          f"{list(SAMPLINGS[1:])}; use simple_cnn for rating only")
    if not on_pairs and p.sampling != "none":
        raise ConfigError(f"pairs.sampling={p.sampling!r} needs a model trained on pairs "
                          f"(model.name in {pair_models})")
    check_device_spec(t.device)
    return dataclasses.replace(cfg, tags=dataclasses.replace(cfg.tags, tagger=resolve_tagger(cfg.tags.tagger)))


def highlighter_checkpoint(cfg: Config) -> str | None:
    """The attention highlighter checkpoint a config names (None: the fallback, or none)."""
    h = cfg.features.highlighter
    return h if h not in ("", FALLBACK) else None


def feature_params(cfg: Config) -> FeatureParams:
    """The :class:`~hitrank.features.FeatureParams` a config asks for (segment method,
    highlighter, window, log, tags and tagger); no file is looked at."""
    f = cfg.features
    return segments.params_for(f.segment, highlighter_checkpoint(cfg), window=f.window, log=f.log,
                               tags=f.tag_scope if f.tags else "",
                               tagger=cfg.tags.tagger if f.tags else "", contrast=f.contrast,
                               whole_song=f.whole_song)


def check_available(cfg: Config) -> FeatureParams:
    """Fail early, naming the missing piece, for configs that need what is not installed (a
    highlighter checkpoint, tagger weights); returns the config's :func:`feature_params`."""
    if highlighter_checkpoint(cfg) and not Path(cfg.features.highlighter).is_file():
        raise ConfigError(f"features.highlighter={cfg.features.highlighter!r}: no such checkpoint; "
                          "train one with `hitrank highlighter train` or leave it empty (fallback)")
    params = feature_params(cfg)
    if cfg.features.tags:
        try:
            check_tagger(params.tagger)
        except CheckpointError as exc:
            raise ConfigError(f"{cfg.name}: features.tags=true: {exc}") from None
    if cfg.train.init:
        try:
            find_checkpoints(cfg.train.init)
        except CheckpointError as exc:  # before any run folder is written
            raise ConfigError(f"train.init={cfg.train.init!r} (--init): {exc}") from None
    return params


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


def with_overrides(cfg: Config, overrides: list[str] = ()) -> Config:
    """``cfg`` with ``key=value`` overrides applied, validated again."""
    return config_from_dict(apply_overrides(cfg.to_dict(), overrides)) if overrides else cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
