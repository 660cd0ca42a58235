"""Music tags: the pretrained MagnaTagATune taggers of musicnn, ported to PyTorch.

``hitrank tags FILE...`` prints them; ``hitrank extract --tags`` stores a 50-d tag vector per
song next to its log-mel, for the tag branch of Yu et al. (2018) (Table 1 rows b, d, f, h,
j, l). This module is light (no torch); the network is in :mod:`hitrank.tags.musicnn`.
"""

from __future__ import annotations

#: The 50 MagnaTagATune tags in musicnn's output order (map by name, never by index).
TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)
N_TAGS = len(TAGS)


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


def segment_tags(y, sr: int, whole=None, path=None, device: str = "cpu"):
    """Tag vector ``(50,)`` of already decoded audio for a feature store.

    ``y`` (n,) at ``sr`` is resampled to 16 kHz (soxr HQ); ``whole`` is the path to decode at
    16 kHz instead (song scope when only a segment was decoded).
    """
    from .. import audio
    from .musicnn import SR, tag_vector

    y16 = audio.load(whole, SR)[0] if whole is not None else audio.resample(y, sr, SR)
    return tag_vector(_at_least_one_patch(y16), "MTT_musicnn", device).astype("float32")


def _at_least_one_patch(y):
    """Zero-pad audio shorter than one 3 s patch (the original crashes on it)."""
    import numpy as np

    from .musicnn import HOP, PATCH

    need = (PATCH - 1) * HOP + 1
    return np.pad(y, (0, need - len(y))) if len(y) < need else y
