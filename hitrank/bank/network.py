"""Member networks as bank operations: what a batched forward pass needs of each member.

A bank member (:class:`hitrank.bank.Member`) is the trainer's own
:class:`~hitrank.train.Training` of its job; the bank adds only its model read as bank
operations (:func:`parts`, :func:`cnn_spec`, :func:`dnn_spec`; a model the bank cannot batch
raises :class:`BankUnsupported`, naming the layer) and its own torch random stream
(:class:`Stream`), so that it draws the dropout masks it would draw alone. Which layers an
engine can batch is checked here, so the engines' names and the device defaults live here
too (the engines themselves: :mod:`hitrank.bank.engines`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ParameterError
from ..models import build, with_tag_branch
from ..models.cnn import SimpleCNN
from ..models.layers import LEVELS, ByteDropout, dropout_multiplier
from ..models.siamese import Siamese
from ..models.tagfusion import TagDNN, TagFusion
from ..schema import Config

# ----------------------------------------------------------------------------- engine names
ENGINES = ("loop", "grouped", "bmm")
ENGINE_ENV = "HITRANK_BANK_ENGINE"  # overrides the device's default engine
CPU_ENGINE = "loop"  # measured: as fast as the batched engines on CPU, and exact
CUDA_ENGINE = "bmm"  # chosen by reasoning; measure engine='grouped' / 'loop' on a GPU


def pick_engine(engine: str | None, device: torch.device) -> str:
    """``engine``, else ``$HITRANK_BANK_ENGINE``, else the device's default; checked."""
    engine = engine or os.environ.get(ENGINE_ENV) or (
        CUDA_ENGINE if device.type == "cuda" else CPU_ENGINE)
    if engine not in ENGINES:
        raise ParameterError(f"bank engine {engine!r}; expected one of {ENGINES}")
    return engine


class BankUnsupported(ParameterError):
    """The model (or a layer of it) has no batched implementation in the bank."""


# ----------------------------------------------------------------------------- model structure
@dataclass(frozen=True)
class Layer:
    """One layer of a member network: kind (conv, linear, lrelu, pool, drop) and arguments."""

    kind: str
    args: tuple = ()


def cnn_spec(cnn: SimpleCNN, engine: str) -> tuple[Layer, ...]:
    """The layers of a SimpleCNN's ``net`` as bank operations (raises for unknown layers)."""
    spec = []
    for layer in cnn.net:
        if isinstance(layer, nn.Conv1d):
            if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
                raise BankUnsupported(f"bank: Conv1d padding {layer.padding!r} / "
                                      f"{layer.padding_mode!r} is not supported")
            args = (layer.stride[0], layer.padding[0], layer.dilation[0], layer.groups,
                    layer.bias is not None)
            if engine == "bmm" and args[:4] != (1, 0, 1, 1):
                raise BankUnsupported(f"bank engine 'bmm': Conv1d stride/padding/dilation/groups "
                                      f"{args[:4]}; use engine='grouped'")
            spec.append(Layer("conv", args))
        elif isinstance(layer, nn.MaxPool1d):
            k, s, p, d = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
            if layer.return_indices:
                raise BankUnsupported("bank: MaxPool1d(return_indices=True) is not supported")
            if engine == "bmm" and (k != s or p != 0 or d != 1 or layer.ceil_mode):
                raise BankUnsupported(f"bank engine 'bmm': MaxPool1d({k}, {s}, {p}, {d}); "
                                      "use engine='grouped'")
            spec.append(Layer("pool", (k, s, p, d, layer.ceil_mode)))
        else:
            spec.append(_elementwise(layer, "simple_cnn"))
    return tuple(spec)


def dnn_spec(dnn: TagDNN) -> tuple[Layer, ...]:
    """The layers of a tag DNN's ``net`` as bank operations (raises for unknown layers)."""
    return tuple(Layer("linear", (layer.bias is not None,)) if isinstance(layer, nn.Linear)
                 else _elementwise(layer, "the tag DNN") for layer in dnn.net)


def _elementwise(layer: nn.Module, owner: str) -> Layer:
    """The bank operation of a LeakyReLU or Dropout layer (raises for any other layer)."""
    if isinstance(layer, nn.LeakyReLU):
        return Layer("lrelu", (layer.negative_slope,))
    if isinstance(layer, (nn.Dropout, ByteDropout)):
        return Layer("drop", (float(layer.p), isinstance(layer, ByteDropout)))
    raise BankUnsupported(f"bank: layer {type(layer).__name__} of {owner} has no batched implementation")


def parts(model: nn.Module) -> tuple[SimpleCNN, TagDNN | None, tuple[float, float] | None]:
    """The CNN, the tag DNN (or None) and the fusion weights (or None) of a member model:
    ``simple_cnn``, ``siamese`` around it, and ``tag_fusion`` around either."""
    dnn, weights, base = None, None, model
    if type(base) is TagFusion:
        dnn, weights, base = base.dnn, base.weights, base.base
    if type(base) is Siamese:
        base = base.scorer
    if type(base) is not SimpleCNN:
        raise BankUnsupported(f"bank: model {type(model).__name__} (scorer "
                              f"{type(base).__name__}) is not supported; the bank batches "
                              "simple_cnn, siamese(simple_cnn) and tag_fusion around either")
    return base, dnn, weights


def check_model(cfg: Config, with_tags: bool, engine: str) -> SimpleCNN:
    """The CNN of the config's model (with the tag branch when ``with_tags``), built without
    touching the global random state; raises :class:`BankUnsupported` naming the layer the
    ``engine`` cannot batch."""
    name, kwargs = cfg.model.name, dict(cfg.model.kwargs)
    if with_tags:
        name, kwargs = with_tag_branch(name, kwargs, 0.5)
    with torch.random.fork_rng(devices=[]):
        cnn, dnn, _ = parts(build(name, **kwargs))
    cnn_spec(cnn, engine)
    if dnn is not None:
        dnn_spec(dnn)
    return cnn


# ----------------------------------------------------------------------------- dropout streams
class Stream:
    """A member's torch random stream: the default generator's state where ``fit`` would
    have it, continued privately so that the member draws the masks it would draw alone.

    CPU: a ``torch.Generator`` drives ``bernoulli_`` exactly as ``nn.Dropout`` does
    (``empty_like(x).bernoulli_(1 - p)``, ``div_(1 - p)``, ``x * noise``: checked bitwise, in
    float32 and under bfloat16 autocast). CUDA: dropout is a fused kernel on the global CUDA
    generator, so the member's CUDA state is swapped in and the same kernel is run on ones of
    the activation's shape and dtype (same philox offsets, same mask); the multiplier is kept
    in float32, as the kernel computes ``x * mask * scale`` in float before rounding.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu = torch.Generator()
        self.cpu.set_state(torch.get_rng_state())
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def dtype(self, activation: torch.dtype) -> torch.dtype:
        """dtype of the multipliers for activations of dtype ``activation``."""
        return activation if self.cuda is None else torch.float32

    def noise(self, shape: tuple, p: float, dtype: torch.dtype, byte: bool = False) -> torch.Tensor:
        """Dropout multiplier of shape ``shape`` for activations of dtype ``dtype``: 0 or
        ``1 / (1 - p)``, from the mask ``nn.Dropout`` (or, with ``byte``,
        :class:`~hitrank.models.layers.ByteDropout`) would draw (dtype :meth:`dtype`)."""
        if byte:
            return self._byte_noise(shape, p, dtype)
        if self.cuda is None:
            return torch.empty(shape, dtype=dtype).bernoulli_(1 - p, generator=self.cpu).div_(1 - p)
        saved = torch.cuda.get_rng_state(self.device)
        torch.cuda.set_rng_state(self.cuda, self.device)
        try:
            keep = F.dropout(torch.ones(shape, dtype=dtype, device=self.device), p, True) != 0
            self.cuda = torch.cuda.get_rng_state(self.device)
        finally:
            torch.cuda.set_rng_state(saved, self.device)
        return keep.to(torch.float32) * (1.0 / float(np.float32(1 - p)))  # the kernel's scale

    def _byte_noise(self, shape: tuple, p: float, dtype: torch.dtype) -> torch.Tensor:
        if self.cuda is None:
            return dropout_multiplier(shape, p, dtype, generator=self.cpu)
        gen = torch.Generator(device=self.device)
        gen.set_state(self.cuda)
        out = dropout_multiplier(shape, p, dtype, self.device, gen)
        self.cuda = gen.get_state()
        return out

    def publish(self) -> None:
        """Put this stream into the default generators (what EpochLoop saves as the run's
        torch RNG state, so the state file is the one ``fit`` would write)."""
        torch.set_rng_state(self.cpu.get_state())
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def dropout(x: torch.Tensor, p: float, noise, byte: bool = False) -> torch.Tensor:
    """``nn.Dropout`` (or ``ByteDropout`` with ``byte``) in training mode with the multiplier
    from ``noise()``; no dropout and full dropout draw nothing, as in those layers."""
    level = round(p * LEVELS) / LEVELS if byte else p
    if level == 0:
        return x
    if level == 1:
        return x * torch.zeros((), dtype=x.dtype, device=x.device)
    return x * noise()


def check_bank(members: list, engine: str) -> None:
    """All members (:class:`hitrank.bank.Member`) share the CNN's layers and shapes (and the
    DNN's, where present)."""
    ref = members[0]
    ref_cnn = (cnn_spec(ref.cnn, engine), [tuple(p.shape) for p in ref.cnn.parameters()])
    ref_dnn = None
    for mb in members:
        if (cnn_spec(mb.cnn, engine), [tuple(p.shape) for p in mb.cnn.parameters()]) != ref_cnn:
            raise BankUnsupported(f"bank: job {mb.index}'s CNN differs from job {ref.index}'s")
        if mb.dnn is not None:
            spec = (dnn_spec(mb.dnn), [tuple(p.shape) for p in mb.dnn.parameters()])
            if ref_dnn is not None and spec != ref_dnn:
                raise BankUnsupported(f"bank: job {mb.index}'s tag DNN differs from the others'")
            ref_dnn = spec
