"""Transfer-branch configs (``branch: transfer`` at the top of the YAML; ``configs/real/``).

Same rules as the other configs (:mod:`hitrank.config`): frozen dataclasses, strict keys,
``--set key=value`` overrides, checks before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import embeddings, segments
from ..errors import ConfigError
from ..targets import KINDS as TARGETS
from ..yamlconfig import Plain, build_config, check_choice, check_seeds, read_yaml
from .learners import LEARNERS

BRANCH = "transfer"  # the top-level `branch:` of these configs
GROUP_BY_SONG = ""  # the paper's folds: songs hashed one by one
SELECT_RULES = ("one_se", "best")  # how the inner CV picks a learner (protocol.pick)


@dataclass(frozen=True)
class TransferFeatures:
    embedding: str = embeddings.DEFAULT_EMBEDDING  # a network of hitrank.embeddings
    scope: str = embeddings.DEFAULT_SCOPE  # song (the whole file) | segment (the 30 s segment)
    segment: str = "mid30"  # scope=segment: which 30 s (a segment method: mid30 | hl30 ...)


@dataclass(frozen=True)
class RidgeConfig:
    alphas: tuple = (1.0, 10.0, 100.0, 1000.0, 10000.0)  # penalties tried; leave-one-out picks one


@dataclass(frozen=True)
class GBDTConfig:
    n_estimators: int = 300  # boosting rounds
    learning_rate: float = 0.03
    max_depth: int = 3
    min_samples_leaf: int = 5
    subsample: float = 0.8  # rows per round (stochastic boosting)
    max_features: float = 0.3  # share of embedding dimensions tried per split


@dataclass(frozen=True)
class MLPRankConfig:
    hidden: int = 64  # one hidden layer
    dropout: float = 0.3
    w: float = 0.5  # (1 - w) * MSE + w * pairwise hinge (the paper's multi-objective loss)
    margin: float = 0.5  # hinge margin, in standard deviations of the target
    pairs_per_song: int = 8  # A/B pairs drawn per training song and epoch
    epochs: int = 80  # full-batch steps (each with fresh pairs)
    lr: float = 0.005
    weight_decay: float = 0.001
    seeds: int = 3  # networks averaged


@dataclass(frozen=True)
class TransferModel:
    candidates: tuple = ("ridge",)  # one learner, or several chosen by inner cross-validation
    ridge: RidgeConfig = field(default_factory=RidgeConfig)
    gbdt: GBDTConfig = field(default_factory=GBDTConfig)
    mlp_rank: MLPRankConfig = field(default_factory=MLPRankConfig)


@dataclass(frozen=True)
class TransferTrain:
    target: str = "rank"  # rank (percentile) | raw | log (scores > 0) | neg_inv_log10
    weight: str = ""  # '' unweighted | a labels column of sample weights (e.g. n_raters)
    seed: int = 0


@dataclass(frozen=True)
class TransferCV:
    folds: int = 10  # outer folds (each song tested once)
    inner_folds: int = 5  # inner folds choosing among several candidates (nested: the outer
    #   test songs never take part in the choice)
    select_by: str = "spearman"  # inner metric: spearman (over all songs) | within (inside strata)
    select_rule: str = "one_se"  # one_se: the simplest candidate (earliest listed) within one
    #   standard error of the best inner score | best: the highest inner score
    fold_seed: int = 0
    group_by: str = GROUP_BY_SONG  # '' songs one by one | artist | group | any labels column
    within: str = ""  # a labels column (genre, market, label): metrics inside each stratum too
    top_fraction: float = 0.1


@dataclass(frozen=True)
class TransferConfig(Plain):
    """A transfer experiment: an embedding (``features``), candidate learners (``model``), the
    target (``train``) and the nested cross-validation (``cv``)."""

    name: str = "transfer"
    branch: str = BRANCH
    features: TransferFeatures = field(default_factory=TransferFeatures)
    model: TransferModel = field(default_factory=TransferModel)
    train: TransferTrain = field(default_factory=TransferTrain)
    cv: TransferCV = field(default_factory=TransferCV)


def validate(cfg: TransferConfig) -> TransferConfig:
    f, m, t, c = cfg.features, cfg.model, cfg.train, cfg.cv
    check_choice("branch", cfg.branch, (BRANCH,))
    check_choice("features.embedding", f.embedding, list(embeddings.EMBEDDINGS))
    check_choice("features.scope", f.scope, embeddings.SCOPES)
    check_choice("features.segment", f.segment, segments.names())
    if not m.candidates:
        raise ConfigError("model.candidates is empty; name at least one of " + str(list(LEARNERS)))
    for name in m.candidates:
        check_choice("model.candidates", name, list(LEARNERS))
    if len(set(m.candidates)) != len(m.candidates):
        raise ConfigError(f"model.candidates={list(m.candidates)} names a learner twice")
    check_choice("train.target", t.target, TARGETS)
    check_choice("cv.select_by", c.select_by, ("spearman", "within"))
    check_choice("cv.select_rule", c.select_rule, SELECT_RULES)
    if c.select_by == "within" and not c.within:
        raise ConfigError("cv.select_by=within needs cv.within (a stratum column, e.g. genre)")
    check_seeds(train__seed=t.seed, cv__fold_seed=c.fold_seed)
    if c.folds < 3 or c.inner_folds < 3:
        raise ConfigError(f"cv.folds={c.folds}, cv.inner_folds={c.inner_folds}: need at least 3 each")
    if not 0 < c.top_fraction <= 1:
        raise ConfigError(f"cv.top_fraction={c.top_fraction}; expected (0, 1]")
    if not m.ridge.alphas or min(m.ridge.alphas) <= 0:
        raise ConfigError(f"model.ridge.alphas={list(m.ridge.alphas)}; give positive penalties")
    g, p = m.gbdt, m.mlp_rank
    if g.n_estimators < 1 or g.max_depth < 1 or not 0 < g.subsample <= 1 or not 0 < g.max_features <= 1:
        raise ConfigError("model.gbdt: n_estimators, max_depth >= 1; subsample, max_features in (0, 1]")
    if (not 0 <= p.w <= 1 or p.margin <= 0 or min(p.hidden, p.seeds, p.epochs, p.pairs_per_song) < 1
            or not 0 <= p.dropout < 1 or p.lr <= 0 or p.weight_decay < 0):
        raise ConfigError("model.mlp_rank: w in [0, 1], margin > 0, hidden, seeds, epochs, pairs_per_song "
                          ">= 1, dropout in [0, 1), lr > 0, weight_decay >= 0")
    return cfg


def load_transfer_config(path, overrides=()) -> TransferConfig:
    """Load and validate a ``branch: transfer`` YAML with ``key=value`` overrides."""
    data = read_yaml(path, list(overrides))
    if data.get("branch") != BRANCH:
        raise ConfigError(f"{str(path)!r} is not a branch=transfer config")
    return validate(build_config(TransferConfig, data))


def transfer_config_from_dict(data: dict) -> TransferConfig:
    """Rebuild a validated config from :meth:`TransferConfig.to_dict` (a run folder)."""
    return validate(build_config(TransferConfig, data))
