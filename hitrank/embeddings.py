"""Song embeddings from pretrained audio networks, as a registry.

A pretrained network's inner layer describes a song far better than its 50 tag outputs, and
it is what works on small labelled music datasets: an embedding per song with a small model
on top (:mod:`hitrank.transfer`). Each entry of :data:`EMBEDDINGS` runs one network's own
front end on mono audio and returns one vector per analysis window of that network; a song's
embedding is the mean of those vectors over the analysed audio:

- ``scope="segment"``: the 30 s segment the config's segment method picks (Mid-30, HL-30);
- ``scope="song"``: the whole file (what a one-minute excerpt or a full song sounds like).

==============  ====  ============================================  =====================
name            dim   layer                                         window (hop)
==============  ====  ============================================  =====================
musicnn         200   MTT_musicnn penultimate (dense + ReLU + BN)    3 s patches (3 s)
musicnn-msd     200   MSD_musicnn penultimate (same graph, MSD)      3 s patches (3 s)
jynet           512   JYnet's last hidden 1x1 conv (ReLU), per clip  29.1 s clips (29.1 s)
ret30           256   KKBOX ret30 CNN conv2d_3 (LeakyReLU), averaged  30 s windows (30 s)
==============  ====  ============================================  =====================

musicnn and musicnn-msd need the musicnn wheel; jynet and ret30 the authors' release imported
with ``hitrank pretrained import`` (ret30 reads the ``yu2018-kkbox`` model's fold 0 network
and its raw-power 128-bin mel front end; a file shorter than 30 s is zero-padded).

``hitrank extract --embedding NAME --embedding-scope segment|song`` stores the vectors in the
feature store (``emb_<name>_<scope>.npy``, one float32 row per song) and records the network;
the transfer branch (:mod:`hitrank.transfer`, ``configs/real/``) learns from them. Nothing is downloaded: the musicnn
weights come with ``pip install --no-deps musicnn==0.1.0``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import audio
from .errors import AudioLoadError, CheckpointError, HitrankError, ParameterError
from .features import FeatureParams, log_mel
from .payload import load_payload
from .runinfo import find_checkpoints
from .runtime import models_dir
from .tags import get_tagger, jynet_checkpoint

# The networks' own constants (checked against their modules by tests/test_transfer.py; the
# modules load torch, so they are imported only when an embedding is computed)
MUSICNN_SR = 16000  # Hz: hitrank.tags.musicnn.SR
MUSICNN_PATCH_SECONDS = 187 * 256 / 16000  # one 187-frame patch, hop 256 at 16 kHz
JYNET_SR = 16000  # Hz: hitrank.tags.jynet.SR
JYNET_CLIP_SECONDS = 29.1  # one MagnaTagATune clip: hitrank.tags.jynet.N_FRAMES frames
KKBOX_SR = 22050  # Hz: the yu2018-kkbox model's feature parameters
KKBOX_WINDOW_SECONDS = 30.0

SCOPES = ("segment", "song")
DEFAULT_EMBEDDING = "musicnn"  # weights ship with the musicnn wheel; about 1 s per minute of audio on one core
DEFAULT_SCOPE = "song"


@dataclass(frozen=True)
class Embedding:
    """A registered embedding network.

    ``frames(y, device)`` maps mono audio ``y`` (n,) at :attr:`sr` Hz to per-window vectors
    ``(P, dim)`` float32 (P >= 1; raises :class:`HitrankError` when the audio is shorter than
    one window); ``check()`` raises a :class:`CheckpointError` naming how to get the weights.
    """

    name: str
    dim: int
    sr: int  # Hz: the rate the network's front end takes
    window_seconds: float  # one analysis window
    frames: Callable
    check: Callable
    layer: str  # which layer, in words


def _musicnn(model: str):
    def frames(y, device: str = "cpu"):
        from .tags import musicnn

        return musicnn.penultimate(y, model, device)

    def check():
        from .tags import musicnn

        musicnn.checkpoint_dir(model)

    return frames, check


#: embedding networks by name (``extract --embedding``, ``rank --embedding``, configs)
EMBEDDINGS: dict[str, Embedding] = {}


def register(entry: Embedding) -> Embedding:
    """Add an embedding network to :data:`EMBEDDINGS` (a plug-in may add its own)."""
    if entry.dim < 1 or entry.sr < 1:
        raise ParameterError(f"embedding {entry.name!r}: dim={entry.dim}, sr={entry.sr}; both must be positive")
    EMBEDDINGS[entry.name] = entry
    return entry


for _name, _model, _about in (("musicnn", "MTT_musicnn", "MTT_musicnn penultimate (dense 1506->200, ReLU, BN)"),
                              ("musicnn-msd", "MSD_musicnn", "MSD_musicnn penultimate (dense 1506->200, ReLU, BN)")):
    register(Embedding(_name, 200, MUSICNN_SR, MUSICNN_PATCH_SECONDS, *_musicnn(_model), _about))


def _jynet_frames(y, device: str = "cpu"):
    from .tags import jynet

    net = jynet.load_converted(str(jynet_checkpoint()))
    return jynet.penultimate(y, JYNET_SR, net, "clip", device)


register(Embedding("jynet", 512, JYNET_SR, JYNET_CLIP_SECONDS, _jynet_frames, get_tagger("jynet").check,
                   "JYnet's last hidden layer (1x1 conv, 512, ReLU) averaged over each 29.1 s clip"))

KKBOX = "yu2018-kkbox"  # the imported model whose ret30 CNN embeds


def _kkbox():
    """The ret30 network of the imported KKBOX model (fold 0) and its feature parameters."""
    folder = models_dir() / KKBOX
    if not folder.is_dir():
        raise CheckpointError(f"the ret30 embedding needs the authors' KKBOX model: run `hitrank "
                              f"pretrained import PATH` ({str(folder)!r} is missing)")
    return _load_kkbox(str(find_checkpoints(folder)[0]))


@functools.lru_cache(maxsize=2)
def _load_kkbox(path: str):
    from .models import build

    payload = load_payload(path, "spectrogram")
    member = payload["members"][0]
    net = build(member["model"], **member["kwargs"])
    net.load_state_dict(member["state_dict"])
    return net.eval(), FeatureParams.from_dict(payload["feature_params"])


def _ret30_frames(y, device: str = "cpu"):
    import torch

    from .models import ret30 as ret30_net

    net, params = _kkbox()
    mel = log_mel(y, params)  # (128, T) raw power
    width = params.n_frames
    n = max(1, mel.shape[1] // width)
    if mel.shape[1] < width:
        mel = torch.nn.functional.pad(mel, (0, width - mel.shape[1]))
    x = mel[:, : n * width].reshape(mel.shape[0], n, width).permute(1, 0, 2)
    with torch.no_grad():
        return ret30_net.penultimate(net.to(device), x.to(device)).cpu().numpy()


register(Embedding("ret30", 256, KKBOX_SR, KKBOX_WINDOW_SECONDS, _ret30_frames, lambda: _kkbox() and None,
                   "the KKBOX ret30 CNN's conv2d_3 (256, LeakyReLU) averaged over each 30 s window"))


def get(name: str) -> Embedding:
    """The embedding ``name``; a ParameterError listing the known ones otherwise."""
    if name not in EMBEDDINGS:
        raise ParameterError(f"embedding={name!r}; known embeddings: {list(EMBEDDINGS)}")
    return EMBEDDINGS[name]


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ParameterError(f"embedding scope={scope!r}; expected one of {list(SCOPES)}")
    return scope


def embed_audio(y: np.ndarray, sr: int, name: str = DEFAULT_EMBEDDING, device: str = "cpu") -> np.ndarray:
    """The embedding of decoded mono audio: per-window vectors averaged, ``(dim,)`` float32.

    Parameters
    ----------
    y : (n,) mono audio at ``sr`` Hz
    sr : its sample rate (resampled to the network's own rate here)
    name : a registered embedding (:data:`EMBEDDINGS`)
    device : torch device

    Raises
    ------
    HitrankError
        When the audio is shorter than one analysis window of the network.
    """
    e = get(name)
    y = np.asarray(y, dtype=np.float32)
    frames = np.asarray(e.frames(audio.resample(y, sr, e.sr), device), dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != e.dim or len(frames) == 0:
        raise HitrankError(f"embedding {name!r} returned shape {frames.shape}; expected (P >= 1, {e.dim})")
    return frames.mean(axis=0)


def embed_file(path, name: str = DEFAULT_EMBEDDING, device: str = "cpu") -> np.ndarray:
    """The whole-song embedding of an audio file, ``(dim,)`` float32 (decoded at the network's
    rate). Raises :class:`AudioLoadError` naming the file when it cannot be used."""
    e = get(name)
    y, _ = audio.load(path, e.sr)
    try:
        return embed_audio(y, e.sr, name, device)
    except HitrankError as exc:
        raise AudioLoadError(path, str(exc)) from None




def with_embedding(params, name: str | None, scope: str = DEFAULT_SCOPE):
    """Feature parameters ``params`` (:class:`hitrank.features.FeatureParams`) that also store
    the embedding ``name`` over ``scope`` (None or '': without one)."""
    if not name:
        return replace(params, embedding="", embedding_scope="", embedding_dim=0)
    return replace(params, embedding=name, embedding_scope=check_scope(scope), embedding_dim=get(name).dim)


__all__ = ["EMBEDDINGS", "Embedding", "register", "get", "embed_audio", "embed_file", "SCOPES",
           "DEFAULT_EMBEDDING", "DEFAULT_SCOPE", "check_scope", "with_embedding"]
