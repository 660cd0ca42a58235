"""Music tags: pretrained MagnaTagATune taggers, ported to PyTorch, as a registry.

Taggers (:data:`TAGGERS`): ``musicnn`` (MTT_musicnn of musicnn 0.1.0, :mod:`.musicnn`) and
``jynet`` (JYnet, Liu & Yang 2016, the paper's tagger, :mod:`.jynet`; also ``jynet-mtt-std``
with its shipped standardisers). Every tagger returns the 50 tags in hitrank's canonical
order :data:`TAGS`. ``hitrank tags FILE...`` prints them; ``hitrank extract --tags --tagger
NAME`` stores a 50-d tag vector per song next to its log-mel (the store records the tagger),
for the tag branch of Yu et al. (2018) (Table 1 rows b, d, f, h, j, l). This module is light
(no torch); the networks are imported when first used.

Adding a tagger: a module with the network, a :class:`Tagger` entry in :data:`TAGGERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import audio
from ..constants import DEFAULT_TAGGER, N_TAGS, TAGS  # noqa: F401  (re-exported: the tag order)
from ..errors import AudioLoadError, CheckpointError, HitrankError, ParameterError
from ..runtime import models_dir, pick_device

#: the musicnn ports ``hitrank tags --model`` runs directly (``musicnn`` is ``MTT_musicnn``)
MUSICNN_MODELS = ("MTT_musicnn", "MTT_vgg")
#: other names of a tagger: ``auto`` (configs) is the default tagger, whatever is installed
TAGGER_ALIASES = {"auto": DEFAULT_TAGGER, "MTT_musicnn": "musicnn"}


def tag_models() -> list[str]:
    """What ``hitrank tags --model`` accepts: every tagger and both musicnn ports."""
    return [*TAGGERS, *MUSICNN_MODELS]


def _port(model: str) -> str:
    """The musicnn port a tagger name runs in :func:`tag_file` (``musicnn``: MTT_musicnn)."""
    return "MTT_musicnn" if model == "musicnn" else model


def _check_model(model: str) -> None:
    model = _port(model)
    if model in MUSICNN_MODELS:
        from .musicnn import checkpoint_dir

        checkpoint_dir(model)
    elif model in TAGGERS:
        check_tagger(model)
    else:
        raise HitrankError(f"tagger {model!r} is not known; choose one of {tag_models()}")


def tag_file(path, model: str = DEFAULT_TAGGER, device: str = "cpu") -> dict:
    """Song-level tags of an audio file (the whole song).

    musicnn models decode at 16 kHz with soxr HQ and average their 3 s patches; JYnet reads
    the song at its own rate and averages its 29.1 s clips.

    Returns
    -------
    dict with ``path``, ``duration`` (s), ``model``, ``tags`` ({name: probability}),
    ``top`` (names, best first) and ``padded`` (True when the song is shorter than the
    tagger's input, one 3 s patch for musicnn, and was zero-padded to it: its tags describe
    partly silence).

    Raises
    ------
    AudioLoadError
        When the file cannot be decoded or is silent.
    CheckpointError
        When the tagger's output is not finite (damaged weights, not the audio).
    """
    if _port(model) in MUSICNN_MODELS:
        from .musicnn import SR, tag_vector

        sr = SR
        y, duration = audio.load(path, sr)
        padded = len(_at_least_one_patch(y)) > len(y)
        vec = None if audio.is_silent(y, sr, duration) else tag_vector(_at_least_one_patch(y), _port(model), device)
    else:  # JYnet pools over time: any length is its input
        padded = False
        sr = audio.info(path).samplerate
        y, duration = audio.load(path, sr)
        vec = None if audio.is_silent(y, sr, duration) else get_tagger(model).song(y, sr, device)
    if vec is None:
        raise AudioLoadError(path, "audio is " + audio.silent_message(y, sr, duration))
    if not np.all(np.isfinite(vec)):  # the audio decoded and is not silent: the network is at fault
        raise CheckpointError(f"{str(path)!r}: the {model} tagger's output is not finite (NaN or inf); "
                              "the audio decoded fine: check the model's weights (JYnet: re-run "
                              "`hitrank pretrained import PATH --force` from the released files)")
    order = np.argsort(-vec, kind="stable")
    return {"path": str(path), "duration": duration, "model": _port(model),
            "tags": {TAGS[i]: float(vec[i]) for i in range(N_TAGS)},
            "top": [TAGS[i] for i in order], "padded": bool(padded)}


def tag_files(paths, model: str = DEFAULT_TAGGER, device: str = "auto"):
    """Tag each file: yields ``(path, tag_file result)``, or ``(path, HitrankError)`` for a file
    that fails (the batch goes on). Missing tagger weights stop before the first file."""

    _check_model(model)  # missing weights are one error, not one per file, raised here (not lazily)
    return _tag_each(list(paths), model, str(pick_device(device)))


def _tag_each(paths: list, model: str, device: str):
    for path in paths:
        try:
            yield path, tag_file(path, model, device)
        except HitrankError as exc:
            yield path, exc


@dataclass(frozen=True)
class Tagger:
    """A registered tagger: 50 MTT tag probabilities of mono audio.

    ``segment(y, sr, device)`` tags a 30 s segment and ``song(y, sr, device)`` a whole song
    (``y`` (n,) at ``sr`` Hz, resampled by the tagger as its original did), both ``(50,)`` in
    :data:`TAGS` order; ``check()`` raises a CheckpointError naming how to get the weights
    when they are missing.
    """

    name: str
    segment: Callable
    song: Callable
    check: Callable
    about: str


def _musicnn(y, sr: int, device: str = "cpu"):
    from .musicnn import SR, tag_vector

    return tag_vector(_at_least_one_patch(audio.resample(y, sr, SR)), "MTT_musicnn", device)


def _musicnn_check():
    from .musicnn import checkpoint_dir

    checkpoint_dir("MTT_musicnn")


def jynet_checkpoint():
    """Where ``hitrank pretrained import`` puts the converted JYnet weights."""
    return models_dir() / "jynet" / "jynet.pt"


def _jynet_check():
    if not jynet_checkpoint().is_file():
        raise CheckpointError(f"the JYnet tagger is not imported ({str(jynet_checkpoint())!r} is missing): "
                              "run `hitrank pretrained import PATH` with PATH a checkout of "
                              "github.com/OckhamsRazor/HSP_CNN or a folder with its released weights")


def _jynet(standardisation: str, whole: bool):
    def run(y, sr: int, device: str = "cpu"):
        from . import jynet

        net = jynet.load_converted(str(jynet_checkpoint()))
        fn = jynet.song_tag_vector if whole else jynet.tag_vector
        return fn(y, sr, net, standardisation, device, "kaiser_best")

    return run


#: taggers by name (``extract --tagger``, ``tags.tagger`` in configs, ``tags --model``)
TAGGERS = {
    "musicnn": Tagger("musicnn", _musicnn, _musicnn, _musicnn_check,
                      "MTT_musicnn of musicnn 0.1.0 (Pons & Serra), ported to PyTorch"),
    "jynet": Tagger("jynet", _jynet("clip", False), _jynet("clip", True), _jynet_check,
                    "JYnet (Liu & Yang 2016), the paper's tagger, per-clip standardisation as the "
                    "released pipeline ran it"),
    "jynet-mtt-std": Tagger("jynet-mtt-std", _jynet("shipped", False), _jynet("shipped", True),
                            _jynet_check, "JYnet with the shipped MagnaTagATune standardisers"),
}


def resolve_tagger(name: str) -> str:
    """The registered tagger a name means: an alias (``auto``: :data:`DEFAULT_TAGGER`, by a
    fixed rule, never by what is installed) or the name itself."""
    return TAGGER_ALIASES.get(name, name)


def get_tagger(name: str) -> Tagger:
    """The tagger ``name``; ParameterError listing the known ones otherwise."""
    if name not in TAGGERS:
        raise ParameterError(f"tagger={name!r}; known taggers: {list(TAGGERS)}")
    return TAGGERS[name]


def check_tagger(name: str) -> None:
    """Fail early (one line naming the install step) when a tagger's weights are missing."""
    get_tagger(name).check()


def segment_tags(y, sr: int, whole=None, device: str = "cpu", tagger: str = DEFAULT_TAGGER,
                 scope: str = "segment"):
    """Tag vector ``(50,)`` float32 (:data:`TAGS` order) of decoded audio, for a store.

    ``y`` (n,) at ``sr``; ``whole`` is a path to decode instead (at its own rate: song scope
    when only a segment was decoded). ``scope``: ``segment`` (a 30 s segment) or ``song``.
    """
    t = get_tagger(tagger)
    if whole is not None:
        meta = audio.info(whole)
        y, sr, scope = audio.load(whole, meta.samplerate)[0], meta.samplerate, "song"
    fn = t.song if scope == "song" else t.segment
    return fn(y, sr, device).astype("float32")


def _at_least_one_patch(y):
    """Zero-pad audio shorter than one 3 s patch (the original crashes on it)."""
    from .musicnn import HOP, PATCH

    need = (PATCH - 1) * HOP + 1
    return np.pad(y, (0, need - len(y))) if len(y) < need else y
