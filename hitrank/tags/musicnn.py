"""PyTorch port of the pretrained taggers of ``musicnn`` 0.1.0 (Pons & Serra, ISC).

Ported checkpoints (:data:`MODELS`): ``MTT_musicnn`` and ``MTT_vgg`` (MagnaTagATune, 50 MTT
tags) and ``MSD_musicnn`` (Million Song Dataset; its 50 outputs are the wheel's MSD tags, in
``musicnn.configuration.MSD_LABELS`` order, not hitrank's :data:`~hitrank.constants.TAGS`: it is
used for its embedding, :func:`penultimate`).

The weights are read from the TensorFlow checkpoints inside the installed ``musicnn`` wheel
(``pip install --no-deps musicnn==0.1.0``) by :mod:`hitrank.tags.bundle`; TensorFlow is never
imported. Everything the port must reproduce (layer order, TF padding, the interleaved
max/mean pooling, batch-norm epsilon, the float16 round trip of the input) is listed in the
project's reference notes; the golden test (``tests/test_tags.py``) checks the port against
outputs of the original TensorFlow model.

Input pipeline (``musicnn.extractor.batch_data``): mono audio at 16 kHz; power mel spectrogram
(periodic Hann, n_fft 512, hop 256, centred with zero padding, 96 Slaney mel bands 0-8 kHz);
``log10(10000 * mel + 1)`` after a float16 round trip; patches of 187 frames (3 s) without
overlap, the remainder dropped; tag probability = sigmoid(logits), averaged over patches.

Embedding (:func:`penultimate`): the 200-d ``bn_dense`` layer of a musicnn model, one vector per
3 s patch. The original's ``musicnn.extractor`` returns the wrong penultimate for every patch
after the first (it repeats patch 0's); the golden test (``tests/test_embedding_golden.py``)
compares with the original graph run on each patch separately.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, HitrankError, ParameterError
from .bundle import read_bundle

SR = 16000
N_FFT, HOP, N_MELS = 512, 256, 96
PATCH = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
BN_EPS = 1e-3
INSTALL = "pip install --no-deps musicnn==0.1.0"

#: the ported checkpoints of the musicnn wheel (MSD_vgg is not ported; MSD_musicnn_big is not in
#: the wheel)
MODELS = ("MTT_musicnn", "MTT_vgg", "MSD_musicnn")
#: the ports with a 200-d penultimate dense layer (:func:`penultimate`)
EMBEDDING_MODELS = ("MTT_musicnn", "MSD_musicnn")
EMBEDDING_DIM = 200  # units of bn_dense


def _bn(n: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(n, eps=BN_EPS)


def _bn1d(n: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, eps=BN_EPS)


class MusiCNN(nn.Module):
    """MTT_musicnn / MSD_musicnn: musically motivated front end (timbral + temporal), dense mid
    end, back end (the two checkpoints share this architecture: mid end 64, back end 200).

    Input ``(B, 187, 96)`` log-mel patches; :meth:`forward` returns ``(B, 50)`` logits, or with
    ``features=True`` the ``(B, 200)`` penultimate layer (the original's ``bn_dense``: dense
    1506 -> 200, ReLU, batch norm) instead. It keeps no state between calls.
    """

    def __init__(self):
        super().__init__()
        self.bn_in = _bn(1)
        self.timbral = nn.ModuleList([nn.Conv2d(1, 204, (7, w)) for w in (38, 67)])
        self.timbral_bn = nn.ModuleList([_bn(204) for _ in range(2)])
        self.temporal = nn.ModuleList([nn.Conv2d(1, 51, (k, 1)) for k in (128, 64, 32)])
        self.temporal_bn = nn.ModuleList([_bn(51) for _ in range(3)])
        self.mid = nn.ModuleList([nn.Conv1d(561, 64, 7), nn.Conv1d(64, 64, 7), nn.Conv1d(64, 64, 7)])
        self.mid_bn = nn.ModuleList([_bn1d(64) for _ in range(3)])
        self.pool_bn = _bn1d(1506)
        self.dense = nn.Linear(1506, 200)
        self.dense_bn = _bn1d(200)
        self.out = nn.Linear(200, 50)

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor:
        """Logits ``(B, 50)`` of patches ``x`` ``(B, T, 96)``; the penultimate ``(B, 200)`` if
        ``features``."""
        x = self.bn_in(x[:, None])  # (B, 1, T, 96): time is H, frequency is W
        fe = []
        for conv, bn in zip(self.timbral, self.timbral_bn, strict=False):
            fe.append(bn(F.relu(conv(F.pad(x, (0, 0, 3, 3))))).amax(dim=3))
        for conv, bn in zip(self.temporal, self.temporal_bn, strict=False):
            k = conv.kernel_size[0]
            pad = ((k - 1) // 2, k - 1 - (k - 1) // 2)  # TF 'same': the extra row at the end
            fe.append(bn(F.relu(conv(F.pad(x, (0, 0) + pad)))).amax(dim=3))
        fe = torch.cat(fe, dim=1)  # (B, 561, T)
        m1 = self.mid_bn[0](F.relu(self.mid[0](F.pad(fe, (3, 3)))))
        m2 = self.mid_bn[1](F.relu(self.mid[1](F.pad(m1, (3, 3))))) + m1
        m3 = self.mid_bn[2](F.relu(self.mid[2](F.pad(m2, (3, 3))))) + m2
        mid = torch.cat([fe, m1, m2, m3], dim=1)  # (B, 753, T)
        pooled = torch.stack([mid.amax(dim=2), mid.mean(dim=2)], dim=2).flatten(1)  # interleaved
        pen = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return pen if features else self.out(pen)

    def load_tf(self, t: dict) -> None:
        """Copy the TensorFlow variables (dict name -> array) into this module."""
        convs = [*self.timbral, *self.temporal]
        for i, conv in enumerate(convs):
            name = "conv2d" if i == 0 else f"conv2d_{i}"
            conv.weight.data = torch.from_numpy(t[f"{name}/kernel"]).permute(3, 2, 0, 1).contiguous()
            conv.bias.data = torch.from_numpy(t[f"{name}/bias"])
        for i, conv in enumerate(self.mid):
            k = t[f"conv2d_{5 + i}/kernel"]  # (7, F_in, 1, 64)
            conv.weight.data = torch.from_numpy(k[:, :, 0, :]).permute(2, 1, 0).contiguous()
            conv.bias.data = torch.from_numpy(t[f"conv2d_{5 + i}/bias"])
        bns = [self.bn_in, *self.timbral_bn, *self.temporal_bn, *self.mid_bn, self.pool_bn, self.dense_bn]
        for i, bn in enumerate(bns):
            _load_bn(bn, t, "batch_normalization" + (f"_{i}" if i else ""))
        for lin, name in ((self.dense, "dense"), (self.out, "dense_1")):
            lin.weight.data = torch.from_numpy(t[f"{name}/kernel"]).T.contiguous()
            lin.bias.data = torch.from_numpy(t[f"{name}/bias"])


class VGG(nn.Module):
    """MTT_vgg: five 3x3 conv blocks (128 channels) with batch norm and max pooling, dense 256 -> 50."""

    POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

    def __init__(self):
        super().__init__()
        self.bn_in = _bn(1)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else 128, 128, 3, padding=1) for i in range(5)])
        self.bns = nn.ModuleList([_bn(128) for _ in range(5)])
        self.out = nn.Linear(256, 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_in(x[:, None])  # (B, 1, T, 96)
        for conv, bn, (k, s) in zip(self.convs, self.bns, self.POOLS, strict=False):
            x = F.max_pool2d(bn(F.relu(conv(x))), k, s)
        return self.out(x.permute(0, 2, 3, 1).flatten(1))  # NHWC flatten: (time, freq, channel)

    def load_tf(self, t: dict) -> None:
        for i, conv in enumerate(self.convs):
            conv.weight.data = torch.from_numpy(t[f"{i + 1}CNN/kernel"]).permute(3, 2, 0, 1).contiguous()
            conv.bias.data = torch.from_numpy(t[f"{i + 1}CNN/bias"])
        for i, bn in enumerate([self.bn_in, *self.bns]):
            _load_bn(bn, t, "batch_normalization" + (f"_{i}" if i else ""))
        self.out.weight.data = torch.from_numpy(t["dense/kernel"]).T.contiguous()
        self.out.bias.data = torch.from_numpy(t["dense/bias"])


def _load_bn(bn: nn.Module, t: dict, name: str) -> None:
    bn.weight.data = torch.from_numpy(t[f"{name}/gamma"])
    bn.bias.data = torch.from_numpy(t[f"{name}/beta"])
    bn.running_mean.data = torch.from_numpy(t[f"{name}/moving_mean"])
    bn.running_var.data = torch.from_numpy(t[f"{name}/moving_variance"])


def checkpoint_dir(model: str = "MTT_musicnn") -> Path:
    """Folder of a musicnn checkpoint inside the installed wheel (never downloaded)."""
    if model not in MODELS:
        raise HitrankError(f"tagger {model!r} is not ported; choose one of {list(MODELS)}")
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the pretrained MTT taggers come from the musicnn wheel, which is not "
                              f"installed; run: {INSTALL}  (--no-deps: its declared dependencies "
                              "are ancient and not needed)")
    folder = Path(list(spec.submodule_search_locations)[0]) / model
    if not (folder / ".index").is_file():
        raise CheckpointError(f"{str(folder)!r}: musicnn checkpoint files missing; reinstall with: {INSTALL}")
    return folder


@functools.lru_cache(maxsize=4)
def load_tagger(model: str = "MTT_musicnn") -> nn.Module:
    """The ported network with the pretrained weights of ``model`` (:data:`MODELS`), eval mode (CPU)."""
    net = VGG() if model == "MTT_vgg" else MusiCNN()
    net.load_tf(read_bundle(str(checkpoint_dir(model)) + "/"))
    return net.eval()


@functools.lru_cache(maxsize=2)
def _mel_basis(device: str) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)).to(device)


def log_mel(y: torch.Tensor | np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """musicnn's input representation of 16 kHz mono audio ``(n,)`` -> ``(T, 96)``, T = 1 + n // 256."""
    y = torch.as_tensor(np.asarray(y, dtype=np.float32) if not torch.is_tensor(y) else y).to(device)
    window = torch.hann_window(N_FFT, periodic=True, device=y.device)
    spec = torch.stft(F.pad(y[None], (N_FFT // 2, N_FFT // 2)), N_FFT, HOP, window=window,
                      center=False, return_complex=True)[0]
    power = spec.real ** 2 + spec.imag ** 2  # (257, T)
    mel = _mel_basis(str(y.device)) @ power  # (96, T)
    mel = mel.to(torch.float16).to(torch.float32)  # the original's float16 round trip
    return torch.log10(10000 * mel + 1).T


def patches(rep: torch.Tensor) -> torch.Tensor:
    """Non-overlapping 187-frame patches ``(P, 187, 96)``; the remainder is dropped."""
    n = rep.shape[0] // PATCH
    if n == 0:
        raise HitrankError(f"audio too short for musicnn: {rep.shape[0]} frames of its input, it needs "
                           f"{PATCH} (about 3 s of audio)")
    return rep[: n * PATCH].reshape(n, PATCH, N_MELS)


# Patches per forward pass. On the CPU one at a time: each activation then stays under glibc's
# mmap threshold (32 MiB at most) and its memory is reused from the heap; a batch of 64 patches
# (activations of 170-600 MB) was mapped afresh and page-faulted by the kernel on every pass,
# which took longer than the computation: one patch per pass embeds a minute of audio in
# 1.0 s instead of 2.1 s with 23% less peak memory (docs/benchmarks.md). A GPU takes them
# 64 at a time.
CPU_BATCH, GPU_BATCH = 1, 64


def patch_batch(device: str | torch.device, batch: int | None = None) -> int:
    """Patches per forward pass: ``batch``, or by default :data:`CPU_BATCH` on the CPU and
    :data:`GPU_BATCH` elsewhere (memory and speed only: the result does not depend on it)."""
    if batch is None:
        return CPU_BATCH if torch.device(device).type == "cpu" else GPU_BATCH
    if batch < 1:
        raise ParameterError(f"batch={batch}; expected a positive number of patches")
    return batch


def _forward(net: nn.Module, x: torch.Tensor, batch: int, **kwargs) -> torch.Tensor:
    """``net`` over patches ``x`` (P, 187, 96), ``batch`` at a time, without gradients."""
    with torch.no_grad():
        return torch.cat([net(x[i:i + batch], **kwargs) for i in range(0, len(x), batch)])


def taggram(y: np.ndarray, model: str = "MTT_musicnn", device: str = "cpu",
            batch: int | None = None) -> np.ndarray:
    """Per-patch tag probabilities ``(P, 50)`` of 16 kHz mono audio ``y`` (n,); ``batch``
    patches per forward pass (:func:`patch_batch`)."""
    net = load_tagger(model).to(device)
    x = patches(log_mel(y, device))
    return torch.sigmoid(_forward(net, x, patch_batch(device, batch))).cpu().numpy().astype(np.float64)


def tag_vector(y: np.ndarray, model: str = "MTT_musicnn", device: str = "cpu") -> np.ndarray:
    """Song-level tags: the per-patch sigmoid probabilities averaged over patches, ``(50,)``."""
    return taggram(y, model, device).mean(axis=0)


def penultimate(y: np.ndarray, model: str = "MTT_musicnn", device: str = "cpu",
                batch: int | None = None) -> np.ndarray:
    """Per-patch penultimate layer of a musicnn model: the pretrained embedding.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio at 16 kHz (:data:`SR`), at least 187 frames (about 2.98 s) long.
    model : {"MTT_musicnn", "MSD_musicnn"}
        Which checkpoint (:data:`EMBEDDING_MODELS`); MTT_vgg has no penultimate dense layer.
    device : str
        Torch device.
    batch : int or None
        Patches per forward pass (speed and memory only; the result does not depend on it):
        None for :func:`patch_batch`'s default (1 on the CPU, 64 on a GPU).

    Returns
    -------
    np.ndarray, shape (P, 200), float32
        The ``bn_dense`` activations (dense 1506 -> 200, ReLU, batch norm with moving statistics)
        of each non-overlapping 3 s patch (P = T // 187, T = 1 + n // 256 frames, the same
        front end and patches as :func:`taggram`). Matches the original TensorFlow graph run on
        each patch to about 1e-5 (``tests/test_embedding_golden.py``).
    """
    if model not in EMBEDDING_MODELS:
        raise ParameterError(f"model {model!r} has no penultimate dense layer to embed with; choose "
                             f"one of {list(EMBEDDING_MODELS)}")
    batch = patch_batch(device, batch)
    net = load_tagger(model).to(device)
    x = patches(log_mel(y, device))
    return _forward(net, x, batch, features=True).cpu().numpy().astype(np.float32)
