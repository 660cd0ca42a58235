"""Music tags: the pretrained MagnaTagATune taggers of musicnn, ported to PyTorch.

``hitrank tags FILE...`` prints them; ``hitrank extract --tags`` stores a 50-d tag vector per
song next to its log-mel, for the tag branch of Yu et al. (2018) (Table 1 rows b, d, f, h,
j, l). This module is light (no torch); the network is in :mod:`hitrank.tags.musicnn`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..constants import N_TAGS, TAGS  # noqa: F401  (re-exported: the canonical tag order)


def tag_file(path, model: str = "MTT_musicnn", device: str = "cpu") -> dict:
    """Song-level tags of an audio file (whole song, decoded at 16 kHz with soxr HQ).

    Returns
    -------
    dict with ``path``, ``duration`` (s), ``model``, ``tags`` ({name: probability}, the
    per-patch sigmoid probabilities averaged over the song) and ``top`` (names, best first).
    """
    import numpy as np

    from .. import audio
    from ..errors import AudioLoadError
    from .musicnn import SR, tag_vector

    y, duration = audio.load(path, SR)
    if float(np.max(np.abs(y), initial=0.0)) < audio.SILENCE_PEAK:
        raise AudioLoadError(path, "audio is silent")
    vec = tag_vector(_at_least_one_patch(y), model, device)
    order = np.argsort(-vec, kind="stable")
    return {"path": str(path), "duration": duration, "model": model,
            "tags": {TAGS[i]: float(vec[i]) for i in range(N_TAGS)},
            "top": [TAGS[i] for i in order]}


def tag_files(paths, model: str = "MTT_musicnn", device: str = "auto"):
    """Tag each file: yields ``(path, tag_file result)``, or ``(path, HitrankError)`` for a file
    that fails (the batch goes on). Missing tagger weights stop before the first file."""
    from ..errors import HitrankError
    from ..runtime import pick_device
    from .musicnn import checkpoint_dir

    checkpoint_dir(model)  # a missing musicnn wheel is one error, not one per file
    dev = str(pick_device(device))
    for path in paths:
        try:
            yield path, tag_file(path, model, dev)
        except HitrankError as exc:
            yield path, exc


@dataclass(frozen=True)
class Tagger:
    """A registered tagger: 50 MTT tag probabilities of mono audio at its own rate ``sr``.

    ``vector(y, device) -> (50,)`` in :data:`TAGS` order; ``check()`` raises a
    CheckpointError naming how to install the weights when they are missing.
    """

    name: str
    sr: int  # Hz, the rate the tagger reads
    vector: Callable
    check: Callable
    about: str


def _musicnn_vector(y, device: str = "cpu"):
    from .musicnn import tag_vector

    return tag_vector(_at_least_one_patch(y), "MTT_musicnn", device)


def _musicnn_check():
    from .musicnn import checkpoint_dir

    checkpoint_dir("MTT_musicnn")


#: taggers by name (``extract --tagger``, ``tags.tagger`` in configs)
TAGGERS = {
    "musicnn": Tagger("musicnn", 16000, _musicnn_vector, _musicnn_check,
                      "MTT_musicnn of musicnn 0.1.0 (Pons & Serra), ported to PyTorch"),
}


def get_tagger(name: str) -> Tagger:
    """The tagger ``name``; ParameterError listing the known ones otherwise."""
    from ..errors import ParameterError

    if name not in TAGGERS:
        raise ParameterError(f"tagger={name!r}; known taggers: {list(TAGGERS)}")
    return TAGGERS[name]


def check_tagger(name: str) -> None:
    """Fail early (one line naming the install step) when a tagger's weights are missing."""
    get_tagger(name).check()


def segment_tags(y, sr: int, whole=None, device: str = "cpu", tagger: str = "musicnn"):
    """Tag vector ``(50,)`` float32 (:data:`TAGS` order) of already decoded audio, for a store.

    ``y`` (n,) at ``sr`` is resampled to the tagger's rate (soxr HQ); ``whole`` is the path to
    decode at that rate instead (song scope when only a segment was decoded).
    """
    from .. import audio

    t = get_tagger(tagger)
    y_t = audio.load(whole, t.sr)[0] if whole is not None else audio.resample(y, sr, t.sr)
    return t.vector(y_t, device).astype("float32")


def _at_least_one_patch(y):
    """Zero-pad audio shorter than one 3 s patch (the original crashes on it)."""
    import numpy as np

    from .musicnn import HOP, PATCH

    need = (PATCH - 1) * HOP + 1
    return np.pad(y, (0, need - len(y))) if len(y) < need else y
