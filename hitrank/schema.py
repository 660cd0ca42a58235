"""The spectrogram branch's experiment config: its sections as frozen dataclasses, with their
defaults and what each key means (``configs/table1/*.yaml`` set them).

:mod:`hitrank.config` reads, validates and loads them (and re-exports them). They live here,
below the registries that validation consults (segments, taggers, models), so that code which
only passes a config around (the trainer, the model bank) does not sit above those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .constants import DEFAULT_TAGGER
from .errors import ConfigError
from .yamlconfig import Plain, without_late_defaults

#: ``train.freeze`` value that freezes nothing (the default; a list field cannot default to empty)
FREEZE_NONE = "none"
#: ``train.freeze`` shorthand: every convolutional block (the convolutions wider than one frame,
#: with their normalisation layers), leaving the 1x1 fully-convolutional head to train
FREEZE_CONV = "conv"


@dataclass(frozen=True)
class FeaturesConfig:
    segment: str = "mid30"  # a segment method of hitrank.segments: mid30 | hl30
    highlighter: str = ""  # hl30: fallback (training-free) or an attention highlighter checkpoint
    window: str = "hamming"  # hamming (paper) | hann (authors' code)
    log: str = "db"  # db | log1p | none
    tags: bool = False  # add the 50 MTT tag activations through the tag DNN (paper Eq. 4)
    tag_scope: str = "segment"  # tags averaged over the 30 s segment | the whole song
    contrast: str = ""  # '' | median | lowest: also extract each song's contrast window away from the segment, of median or lowest highlighter rating (hl30; for train.contrast)
    whole_song: bool = False  # also extract each song's whole log-mel (for train.window_loss; about 0.5 MB per 3-minute song)


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
    tagger: str = DEFAULT_TAGGER  # musicnn | jynet (the paper's; `hitrank pretrained import`) | jynet-mtt-std; auto: musicnn


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping on the validation loss
    batch_size: int = 16  # songs (rating) or pairs (Siamese) per step
    optimizer: str = "adagrad"  # adagrad (released code) | adam
    lr: float = 0.005
    lr_decay: float = 0.9  # lr multiplier when the validation loss does not improve
    patience: int = 8  # epochs without improvement before stopping
    target: str = "log"  # log (scores > 0) | raw | rank (percentile; any finite score) | neg_inv_log10 (released code: -1/log10(x))
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # deprecated: false = precision fp32 (kept so older configs load)
    precision: str = "auto"  # fp32 | bf16 | auto: bfloat16 autocast on CUDA and on CPUs with AVX512-BF16 or AMX
    bank: str = "auto"  # auto | on | off: train a fold's models (on a GPU: all folds) in lockstep as one model bank
    seed: int = 0
    init: str = ""  # start from released weights: an imported pretrained model (yu2018-kkbox) or a run / checkpoint
    freeze: tuple = (FREEZE_NONE,)  # parameters kept at their train.init values: none | conv | state-dict name prefixes (net.0, base.net.3, ...)
    contrast: float = 0.0  # weight of the within-song hinge (a song's segment above its contrast window, features.contrast); 0 off
    contrast_margin: float = 0.5  # its margin, in standard units of the target
    window_loss: float = 0.0  # whole-song training: weight of the best 30 s window's rating error (features.whole_song; hitrank.whole_song); 0 off

    def __post_init__(self):
        # the checks that need no model; hitrank.train.frozen_parameters checks the names
        # against the model's layers when the model is built
        freeze = self.freeze
        if FREEZE_NONE in freeze and len(freeze) > 1:
            raise ConfigError(f"train.freeze={list(freeze)}: {FREEZE_NONE!r} means nothing frozen "
                              "and cannot be combined with layer names")
        if any(not isinstance(p, str) or not p.strip(".") for p in freeze):
            raise ConfigError(f"train.freeze={list(freeze)}: expected layer-name prefixes such as "
                              f"net.0 or the shorthand {FREEZE_CONV!r}")
        if freeze != (FREEZE_NONE,) and not self.init:
            raise ConfigError(f"train.freeze={list(freeze)} keeps layers at their starting values, "
                              "which without train.init are random: set train.init (--init "
                              f"yu2018-kkbox) or train.freeze={FREEZE_NONE}")


@dataclass(frozen=True)
class CVConfig:
    folds: int = 10  # k folds; fold f tests chunk f, validates on chunk f+1, trains on the rest
    artist_aware: bool = False  # the old name of group_by: artist (true = group_by: artist)
    group_by: str = ""  # '' songs one by one (the paper) | artist | any labels column (needs --labels): a group's songs stay in one chunk
    fold_seed: int = 0  # folds come from a hash of (fold_seed, song_id): independent of train.seed
    top_fraction: float = 0.1  # the "@10%" of the metrics
    select_metric: str = "ndcg"  # validation metric that picks grid values and fusion weights (val_loss: by validation MSE)
    allow_highlighter_overlap: bool = False  # evaluate on songs that supervised the attention highlighter (leaks labels)
    processes: int = 0  # 0 auto (CPU: one single-threaded process per core for the folds) | 1 this process | N


#: keys added after training states existed: left out of :meth:`Config.state_key` while they
#: hold their default, so that a run interrupted before they existed resumes after an upgrade
LATE_KEYS = ("features.contrast", "train.contrast", "train.contrast_margin", "features.whole_song",
             "train.window_loss")


@dataclass(frozen=True)
class Config(Plain):
    name: str = "experiment"
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    tags: TagsConfig = field(default_factory=TagsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)

    def state_key(self) -> dict:
        """:meth:`to_dict` without the :data:`LATE_KEYS` that hold their default: the config
        part of a training state's key (:class:`hitrank.loop.EpochLoop`)."""
        return without_late_defaults(self.to_dict(), self, LATE_KEYS)
