"""Model bank: K independent models trained in lockstep as one batched computation.

A cross-validation fold trains several small models (every grid point ``(w, margin, mu)``,
the two members of A/B + artist); each one alone leaves a GPU mostly idle and pays the
Python and kernel-launch overhead of every step. A bank trains them together: at every step
the members' batches go through ONE forward and ONE backward pass (with the batched engines,
their weights stacked into one kernel per layer, see *Engines*), and each member behaves as
if :func:`hitrank.train.fit` trained it alone:

* its own model, built as ``fit`` builds it (``seed_everything(seed)`` then ``build``), its
  own input statistics (its training songs), its own torch optimiser (Adagrad/Adam: every
  member has its own learning rate and state), its own ``ReduceLROnPlateau``, its own
  :class:`~hitrank.loop.EpochLoop` (early stopping, the best epoch, the resume state);
* its own numpy Generator for batch order and pair sampling (the same draws as alone);
* its own torch random stream for dropout, continued from where ``build`` left the default
  generator, and drawn in the same order and shapes as alone: the masks are identical;
* a member whose epoch has fewer steps (fewer training songs or pairs) is left out of the
  steps it does not have (no forward, no gradient, no optimiser step); a member that stopped
  early is left out of all further steps; a trailing partial batch is a smaller batch, as
  alone (rows of shorter members are padded and carry no gradient).

Precision: the bank autocasts exactly when ``fit`` does
(:func:`hitrank.train.reduced_precision`: bf16 on CUDA and on CPUs with native bf16, unless
``train.precision`` / ``train.amp`` say fp32); outputs, losses and metrics are float32.

Resume: every member's EpochLoop writes its own end-of-epoch state to its job's ``resume``
file, in exactly the format ``fit`` writes (its model's state dict, its optimiser and
schedule, its numpy Generator, its dropout stream as the saved torch RNG state): a killed
bank continues where each member stopped (members may resume at different epochs), and a
state written by a bank can be resumed by ``fit`` and vice versa.

Engines (``engine=``, or the environment variable ``HITRANK_BANK_ENGINE``)
-------------------------------------------------------------------------
``loop``
    Each member's layers with its own torch ops on its own rows (the ops ``fit`` runs), in
    one lockstep graph: one backward pass, the members' optimiser steps, masks, batches and
    bookkeeping as above. Bitwise identical to ``fit`` (float32 and bf16, any thread count:
    tests/test_bank.py). No batched kernels, so it saves only per-step Python overhead.
    The CPU default: measured as fast as the batched engines there (the CNN's convolutions
    are compute bound on CPU, batching them buys nothing) and the only exact one.
``grouped``
    Layout ``(B, K * C, T)``; every convolution is one grouped ``conv1d`` with ``groups=K``
    (the CNN is fully convolutional, so member k's channels only meet member k's weights);
    the tag DNNs run member by member (tiny). One member: bitwise ``fit``. Several: the
    grouped 1x1 convolutions (and, with more than one thread, the grouped weight gradients)
    round differently (~1e-6 relative per step), which Adagrad's per-element normalisation
    amplifies in weights with near-zero gradients: after a few epochs a member's losses
    differ from ``fit``'s by ~1e-7..1e-3 relative (tests/test_bank.py).
``bmm``
    Channels-last ``(K, B, T, C)``; every convolution and the tag DNN is one batched matrix
    product (``bmm``; kernel-4 convolutions over im2col windows, accumulated in one pass; the
    bias added in float32, the overlapping windows' gradients summed in float32, as a
    convolution does under bf16). Rounding as ``grouped``. The CUDA default, chosen by
    reasoning (no GPU could be measured): a bank's point on a GPU is to replace K small
    kernel launches per layer by one large one, strided-batched GEMM is cuBLAS's
    best-supported batched primitive and runs on bf16 tensor cores, while grouped
    convolutions with 32-256 channels per group are a weak spot of cuDNN's algorithm
    choice. ``engine='grouped'`` / ``'loop'`` measure the alternatives on a GPU.

``bank='auto'``
---------------
On CUDA the bank is on. On CPU a micro-benchmark decides (a few seconds, once): a few steps
of up to :data:`AUTO_BENCH_MEMBERS` scratch members trained one after another (fit's own
forward / backward / optimiser step) against the same members in one bank step; the bank is
chosen when it is at least :data:`AUTO_MIN_SPEEDUP` times faster (the median ratio over
:data:`AUTO_BENCH_STEPS` back-to-back repeats of this process's CPU time, which other
processes on a shared machine inflate less than wall time). Measured on the development
CPU (2 cores, tests/test_bank.py and the issue report): no engine is faster than
sequential training there (the loop engine ties, the batched ones lose up to 2x at large
K x batch), so ``auto`` normally says off; with the default ``loop`` engine a wrong call
costs nothing but time, its results being bitwise those of ``fit``. The decision is cached
in ``cache_root()/bank_auto.json``, keyed by CPU model, torch version, thread count, model
kind, step size, optimiser, precision and engine; delete the file to measure again. One
job, data-parallel training or a model the bank does not support: off.

Members per bank: every job on CPU; on CUDA as many as the free device memory holds
(``torch.cuda.mem_get_info`` against an estimate of one member's activation memory at the
configured batch size), at most :data:`MAX_BANK_MEMBERS`; further jobs run in further banks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .data import Target, sample_pairs
from .distributed import SINGLE, Context
from .errors import ConfigError, ParameterError
from .fileio import atomic_write_text
from .loop import EpochLoop
from .losses import all_pairs_ranking_loss, multi_loss, rating_loss
from .models import build, with_tag_branch
from .models.cnn import SimpleCNN
from .models.layers import LEVELS, ByteDropout, dropout_multiplier, standardise
from .models.siamese import Siamese
from .models.tagfusion import TagDNN, TagFusion
from .runtime import autocast, cache_root, seed_everything, use_bf16
from .train import PREDICT_BATCH, FitResult, fit, input_stats, predict, reduced_precision, scored

log = logging.getLogger(__name__)

BANK_MODES = ("auto", "on", "off")
ENGINES = ("loop", "grouped", "bmm")
ENGINE_ENV = "HITRANK_BANK_ENGINE"  # overrides the device's default engine
CPU_ENGINE = "loop"  # measured: as fast as the batched engines on CPU, and exact
CUDA_ENGINE = "bmm"  # chosen by reasoning; measure engine='grouped' / 'loop' on a GPU

MAX_BANK_MEMBERS = 32  # members per bank on CUDA (beyond this a small CNN saturates a GPU)
CUDA_MEMORY_FRACTION = 0.7  # share of the free device memory a bank plans to fill
ACTIVATION_FACTOR = 3.0  # bytes kept per forward activation byte (saved tensor, its gradient,
#                          masks / pooling indices) in a training step
FLOAT16_BYTES, FLOAT32_BYTES, BFLOAT16_BYTES = 2, 4, 2
PARAM_COPIES = 5  # parameter, gradient, optimiser state (Adam: 2), the stacked copy

AUTO_CACHE_FILE = "bank_auto.json"  # under hitrank.runtime.cache_root()
AUTO_BENCH_MEMBERS = 4  # scratch members in the auto micro-benchmark
AUTO_BENCH_STEPS = 3  # timed repeats of each variant (after one warm-up step)
AUTO_MIN_SPEEDUP = 1.25  # the bank must be this many times faster than one-after-another
#                          (on a shared 2-core machine single repeats scatter by ~20 %)


@dataclass
class FitJob:
    """One model to train: what differs between the members of a bank.

    Attributes
    ----------
    train_idx, val_idx : (n_train,), (n_val,) int song indices
    target : the fitted target transform of this job's fold
    sampling : none | naive | ab | artist
    w, margin : multi-objective weight and hinge margin (Siamese)
    mu : tag-branch weight; None: no tag branch (the job ignores ``T``)
    seed : seeds initialisation, dropout, shuffling and pair sampling (as in ``fit``)
    resume : end-of-epoch training state file, or None
    """

    train_idx: np.ndarray
    val_idx: np.ndarray
    target: Target
    sampling: str = "none"
    w: float = 0.0
    margin: float | None = None
    mu: float | None = None
    seed: int = 0
    resume: str | os.PathLike | None = None


class BankUnsupported(ParameterError):
    """The model (or a layer of it) has no batched implementation in the bank."""


# ----------------------------------------------------------------------------- the public entry
def fit_many(cfg: Config, X: torch.Tensor, scores: np.ndarray, artists: np.ndarray,
             jobs: list[FitJob], T: torch.Tensor | None = None, bank: str = "auto",
             progress=None, engine: str | None = None, ctx: Context = SINGLE
             ) -> list[FitResult]:
    """Train every job; the same results as ``[fit(...) for job in jobs]``, in job order.

    Parameters
    ----------
    cfg : experiment config (model, train, pairs, cv sections); shared by all jobs
    X : (n, n_mels, n_frames) float16 tensor of all songs, on the training device
    scores : (n,) raw hit scores; artists : (n,) artist names
    jobs : what differs per model (:class:`FitJob`)
    T : (n, 50) tag vectors on the device, or None; used by the jobs whose ``mu`` is set
    bank : ``off`` (one ``fit`` after another), ``on`` (lockstep banks), ``auto`` (see the
        module docstring)
    progress : optional callable(str) for status lines (``job i: epoch ...``)
    engine : ``loop`` | ``grouped`` | ``bmm`` | None (``$HITRANK_BANK_ENGINE``, else the
        device default: loop on CPU, bmm on CUDA)
    ctx : torchrun context; the bank is single-process (data-parallel training runs ``off``)

    Returns
    -------
    list of :class:`~hitrank.train.FitResult`, one per job, in order. A banked member's
    ``seconds`` is its bank's wall time divided by its members.
    """
    if bank not in BANK_MODES:
        raise ParameterError(f"bank={bank!r}; expected one of {BANK_MODES}")
    jobs = list(jobs)
    for i, job in enumerate(jobs):
        if job.mu is not None and T is None:
            raise ParameterError(f"jobs[{i}].mu={job.mu} asks for the tag branch but T is None; "
                                 "pass the tag vectors T or set mu=None")
    if not jobs:
        return []
    use = _decide(bank, cfg, X, scores, artists, jobs, T, ctx, engine)
    if not use:
        return [fit(cfg, X, scores, artists, j.train_idx, j.val_idx, j.target, j.sampling, j.w,
                    j.margin, seed=j.seed, progress=_job_progress(progress, i),
                    T=T if j.mu is not None else None, mu=j.mu, resume=j.resume, ctx=ctx)
                for i, j in enumerate(jobs)]
    engine = _engine(engine, X.device)
    per_bank = members_per_bank(cfg, X, jobs, engine)
    results: list[FitResult] = []
    for start in range(0, len(jobs), per_bank):
        results += _fit_bank(cfg, X, scores, artists, jobs[start: start + per_bank], T, engine,
                             progress, first_index=start)
    return results


def _job_progress(progress, i: int):
    if progress is None:
        return None
    return lambda line: progress(f"job {i}: {line}")


def _engine(engine: str | None, device: torch.device) -> str:
    engine = engine or os.environ.get(ENGINE_ENV) or (
        CUDA_ENGINE if device.type == "cuda" else CPU_ENGINE)
    if engine not in ENGINES:
        raise ParameterError(f"bank engine {engine!r}; expected one of {ENGINES}")
    return engine


# ----------------------------------------------------------------------------- model structure
@dataclass(frozen=True)
class _Layer:
    """One layer of a member network: kind (conv, linear, lrelu, pool, drop) and arguments."""

    kind: str
    args: tuple = ()


def _cnn_spec(cnn: SimpleCNN, engine: str) -> tuple[_Layer, ...]:
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
            spec.append(_Layer("conv", args))
        elif isinstance(layer, nn.MaxPool1d):
            k, s, p, d = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
            if layer.return_indices:
                raise BankUnsupported("bank: MaxPool1d(return_indices=True) is not supported")
            if engine == "bmm" and (k != s or p != 0 or d != 1 or layer.ceil_mode):
                raise BankUnsupported(f"bank engine 'bmm': MaxPool1d({k}, {s}, {p}, {d}); "
                                      "use engine='grouped'")
            spec.append(_Layer("pool", (k, s, p, d, layer.ceil_mode)))
        else:
            spec.append(_elementwise(layer, "simple_cnn"))
    return tuple(spec)


def _dnn_spec(dnn: TagDNN) -> tuple[_Layer, ...]:
    return tuple(_Layer("linear", (layer.bias is not None,)) if isinstance(layer, nn.Linear)
                 else _elementwise(layer, "the tag DNN") for layer in dnn.net)


def _pointwise(layer: _Layer, h: torch.Tensor) -> torch.Tensor:
    """A LeakyReLU or max-pool bank operation on ``h`` (B, C, T)."""
    if layer.kind == "lrelu":
        return F.leaky_relu(h, layer.args[0])
    return F.max_pool1d(h, *layer.args)


def _elementwise(layer: nn.Module, owner: str) -> _Layer:
    """The bank operation of a LeakyReLU or Dropout layer (raises for any other layer)."""
    if isinstance(layer, nn.LeakyReLU):
        return _Layer("lrelu", (layer.negative_slope,))
    if isinstance(layer, (nn.Dropout, ByteDropout)):
        return _Layer("drop", (float(layer.p), isinstance(layer, ByteDropout)))
    raise BankUnsupported(f"bank: layer {type(layer).__name__} of {owner} has no batched implementation")


def _parts(model: nn.Module) -> tuple[SimpleCNN, TagDNN | None, tuple[float, float] | None]:
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


def bank_supports(cfg: Config, with_tags: bool = False) -> bool:
    """Whether the config's model (with or without the tag branch) can be banked."""
    try:
        _check_model(cfg, with_tags, CPU_ENGINE)
    except (BankUnsupported, ConfigError):
        return False
    return True


def _check_model(cfg: Config, with_tags: bool, engine: str) -> SimpleCNN:
    name, kwargs = cfg.model.name, dict(cfg.model.kwargs)
    if with_tags:
        name, kwargs = with_tag_branch(name, kwargs, 0.5)
    with torch.random.fork_rng(devices=[]):
        cnn, dnn, _ = _parts(build(name, **kwargs))
    _cnn_spec(cnn, engine)
    if dnn is not None:
        _dnn_spec(dnn)
    return cnn


# ----------------------------------------------------------------------------- dropout streams
class _Stream:
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


def _dropout(x: torch.Tensor, p: float, noise, byte: bool = False) -> torch.Tensor:
    """``nn.Dropout`` (or ``ByteDropout`` with ``byte``) in training mode with the multiplier
    from ``noise()``; no dropout and full dropout draw nothing, as in those layers."""
    level = round(p * LEVELS) / LEVELS if byte else p
    if level == 0:
        return x
    if level == 1:
        return x * torch.zeros((), dtype=x.dtype, device=x.device)
    return x * noise()


# ----------------------------------------------------------------------------- members
class _Member:
    """One job, set up exactly as :func:`hitrank.train.fit` sets up its model."""

    def __init__(self, cfg: Config, X: torch.Tensor, scores: np.ndarray, artists: np.ndarray,
                 job: FitJob, T: torch.Tensor | None, index: int):
        tc = cfg.train
        device = X.device
        self.job, self.index = job, index
        self.scores, self.artists = scores, artists
        seed_everything(job.seed)
        self.rng = np.random.default_rng(job.seed)
        name, kwargs = cfg.model.name, dict(cfg.model.kwargs)
        self.tags = T if job.mu is not None else None
        if self.tags is not None:
            name, kwargs = with_tag_branch(name, kwargs, job.mu)
        self.name, self.kwargs = name, kwargs
        model = build(name, **kwargs)
        if tc.init:  # the released weights instead of random ones (the random draws still happen)
            from .pretrained import init_weights

            init_weights(model, tc.init)
        self.model = model.to(device)
        self.model.set_input_stats(*input_stats(X, job.train_idx))
        self.siamese = job.sampling != "none"
        self.z = torch.as_tensor(job.target.transform(scores), dtype=torch.float32, device=device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = (torch.optim.Adagrad(params, lr=tc.lr) if tc.optimizer == "adagrad"
                    else torch.optim.Adam(params, lr=tc.lr))
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=tc.lr_decay,
                                                                patience=0)
        self.val_t = torch.as_tensor(job.val_idx, device=device)
        self.n_pairs = int(round(cfg.pairs.per_epoch * len(job.train_idx)))
        self.batch_size = tc.batch_size
        key = {"config": cfg.to_dict(), "sampling": job.sampling, "w": job.w,
               "margin": job.margin, "mu": job.mu, "seed": job.seed,
               "n_train": len(job.train_idx), "n_val": len(job.val_idx)}
        self.loop = EpochLoop(self.model, self.opt, self.sched, epochs=tc.epochs,
                              patience=tc.patience, mode="min", state_path=job.resume, key=key,
                              rng=self.rng, writes=True)
        # after the loop: a resumed loop has put the saved torch RNG state into the default
        # generator, a fresh one left it where build() did
        self.stream = _Stream(device)
        self.cnn, self.dnn, self.fusion = _parts(self.model)
        self.convs = [m for m in self.cnn.net if isinstance(m, nn.Conv1d)]
        self.linears = [m for m in self.dnn.net if isinstance(m, nn.Linear)] if self.dnn else []
        self._epochs = self.loop.epochs()
        self.epoch, self.batches, self.total, self.steps = 0, [], 0.0, 0

    def next_epoch(self) -> bool:
        """Start this member's next epoch (its batches, drawn as in ``fit``); False when done."""
        epoch = next(self._epochs, None)
        if epoch is None:
            return False
        self.epoch = epoch
        self.model.train()
        self.total, self.steps = 0.0, 0
        job, device, bs = self.job, self.z.device, self.batch_size
        if self.siamese:
            pairs = sample_pairs(job.sampling, job.train_idx, self.scores, self.artists,
                                 self.n_pairs, self.rng)
            pairs = torch.as_tensor(pairs, device=device)
            self.batches = [pairs[i: i + bs] for i in range(0, len(pairs), bs)]
        else:
            order = torch.as_tensor(self.rng.permutation(job.train_idx), device=device)
            self.batches = [order[i: i + bs] for i in range(0, len(order), bs)]
        return True

    def rows(self, s: int) -> torch.Tensor:
        """Songs fed to the network at step ``s``: the batch, or both songs of each pair
        (``pair`` scores ``cat([xi, xj])`` in one forward pass)."""
        b = self.batches[s]
        return torch.cat([b[:, 0], b[:, 1]]) if self.siamese else b

    def loss(self, s: int, out: torch.Tensor) -> torch.Tensor:
        b = self.batches[s]
        if self.siamese:
            fi, fj = out[: len(b)], out[len(b):]
            return multi_loss(fi.float(), fj.float(), self.z[b[:, 0]], self.z[b[:, 1]],
                              self.job.w, self.job.margin)
        return rating_loss(out.float(), self.z[b])

    def end_epoch(self, pred: np.ndarray, top: float, progress) -> bool:
        """Validation and the EpochLoop record of this epoch, as in ``fit``; False: stopped."""
        job = self.job
        pv = torch.as_tensor(pred, dtype=torch.float32, device=self.z.device)
        mse = rating_loss(pv, self.z[self.val_t])
        val_loss = mse
        if self.siamese and job.w > 0:
            val_loss = (1 - job.w) * mse + job.w * all_pairs_ranking_loss(
                pv, self.z[self.val_t], job.margin)
        val_loss = float(val_loss)
        metrics = {**scored(self.scores[job.val_idx], pred, top), "val_mse": float(mse)}
        train_loss = float(self.total) / max(1, self.steps)
        self.stream.publish()
        going = self.loop.record(self.epoch, {"train_loss": train_loss}, val_loss,
                                 {"val_loss": val_loss, "val_mse": metrics["val_mse"],
                                  "val_ndcg": metrics["ndcg"], "val_spearman": metrics["spearman"]},
                                 (pred, metrics))
        if progress:
            progress(f"job {self.index}: epoch {self.epoch} train {train_loss:.4f} "
                     f"val {val_loss:.4f}")
        return going

    def result(self, X: torch.Tensor, top: float, seconds: float) -> FitResult:
        res = self.loop.finish()
        self.model.eval()
        job = self.job
        if res.payload is None:  # no finite validation loss in any epoch
            pred = predict(self.model, X, job.val_idx, False, self.tags)
            res.payload = (pred, {**scored(self.scores[job.val_idx], pred, top),
                                  "val_mse": float("nan")})
        pred, metrics = res.payload
        metrics = {**metrics, "val_loss": res.best_value}
        return FitResult(self.model, self.name, self.kwargs, res.best_epoch, pred, metrics, job.w,
                         job.margin, job.sampling, res.curves, seconds, job.mu)


def _check_bank(members: list[_Member], engine: str) -> None:
    """All members share the CNN's layers and shapes (and the DNN's, where present)."""
    ref = members[0]
    ref_cnn = (_cnn_spec(ref.cnn, engine), [tuple(p.shape) for p in ref.cnn.parameters()])
    ref_dnn = None
    for mb in members:
        if (_cnn_spec(mb.cnn, engine), [tuple(p.shape) for p in mb.cnn.parameters()]) != ref_cnn:
            raise BankUnsupported(f"bank: job {mb.index}'s CNN differs from job {ref.index}'s")
        if mb.dnn is not None:
            spec = (_dnn_spec(mb.dnn), [tuple(p.shape) for p in mb.dnn.parameters()])
            if ref_dnn is not None and spec != ref_dnn:
                raise BankUnsupported(f"bank: job {mb.index}'s tag DNN differs from the others'")
            ref_dnn = spec


# ----------------------------------------------------------------------------- batched forward
def _padded(rows: list[torch.Tensor]) -> tuple[list[int], int, list[torch.Tensor]]:
    """Row counts, their maximum B, and each member's rows padded to B (with its first row;
    padded rows are computed and discarded, so they carry no gradient)."""
    n = [len(r) for r in rows]
    B = max(n)
    return n, B, [r if len(r) == B else torch.cat([r, r[:1].expand(B - len(r))]) for r in rows]


def _cnn_grouped(spec, members: list[_Member], rows: list[torch.Tensor], X: torch.Tensor,
                 train: bool) -> tuple[torch.Tensor, list[int]]:
    """Grouped-conv engine: scores ``(B, m)`` of every member's (padded) rows."""
    m = len(members)
    n, B, padded = _padded(rows)
    idx = torch.stack(padded, 1)  # (B, m)
    mean = torch.stack([mb.cnn.in_mean for mb in members])[:, :, None]  # (m, n_mels, 1)
    std = torch.stack([mb.cnn.in_std for mb in members])[:, :, None]
    x = standardise(X[idx], mean, std)  # (B, m, n_mels, T), as SimpleCNN.forward
    h = x.reshape(B, -1, x.shape[-1])
    conv = 0
    for layer in spec:
        if layer.kind == "conv":
            stride, padding, dilation, groups, has_bias = layer.args
            w = torch.cat([mb.convs[conv].weight for mb in members])
            b = torch.cat([mb.convs[conv].bias for mb in members]) if has_bias else None
            h = F.conv1d(h, w, b, stride, padding, dilation, groups * m)
            conv += 1
        elif layer.kind in ("lrelu", "pool"):
            h = _pointwise(layer, h)
        elif layer.kind == "drop" and train:
            C, L = h.shape[1] // m, h.shape[2]

            def noise(h=h, C=C, L=L, p=layer.args[0], byte=layer.args[1]):
                out = h.new_zeros(B, m, C, L, dtype=members[0].stream.dtype(h.dtype))
                for j, mb in enumerate(members):
                    out[: n[j], j] = mb.stream.noise((n[j], C, L), p, h.dtype, byte)
                return out.view(B, m * C, L)

            h = _dropout(h, layer.args[0], noise, layer.args[1])
    return h.reshape(B, m, -1).float().mean(dim=2), n  # SimpleCNN: mean over channels and time


def _conv_channels_last(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Stride-1 unpadded conv of channels-last ``h`` (m, B, L, C) with weights ``w``
    (m, O, C, k) -> (m, B, L - k + 1, O): one batched GEMM over the ``C * k`` window entries
    (im2col for k > 1), so that every output is accumulated in one pass and rounded once,
    as a convolution is (also under bf16 autocast)."""
    m, B, L, C = h.shape
    n_out, k = w.shape[1], w.shape[3]
    Lo = L - k + 1
    if k == 1:
        flat, wt = h.reshape(m, B * L, C), w[..., 0].transpose(1, 2)  # (m, C, O)
    else:
        # float32 windows: the gradient of overlapping windows is summed in float32 (as a
        # convolution's input gradient is accumulated) even when the GEMM runs in bf16
        flat = h.float().unfold(2, k, 1).reshape(m, B * Lo, C * k)  # windows (m, B, Lo, C, k)
        wt = w.reshape(m, n_out, C * k).transpose(1, 2)  # (m, C * k, O), the same (C, k) order
    return _biased(torch.bmm(flat, wt), b).view(m, B, Lo, n_out)


def _biased(y: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``y`` (m, rows, O) plus the members' biases ``b`` (m, O); under reduced precision the
    bias is added in float32 and the sum rounded once, as in a convolution's epilogue."""
    if b is None:
        return y
    if y.dtype == b.dtype:
        return y + b[:, None, :]
    return (y.float() + b[:, None, :]).to(y.dtype)


def _cnn_bmm(spec, members: list[_Member], rows: list[torch.Tensor], X: torch.Tensor,
             train: bool) -> tuple[torch.Tensor, list[int]]:
    """Batched-matmul engine: scores ``(m, B)`` of every member's (padded) rows."""
    m = len(members)
    n, B, padded = _padded(rows)
    idx = torch.stack(padded, 0)  # (m, B)
    mean = torch.stack([mb.cnn.in_mean for mb in members])[:, None, :, None]  # (m, 1, n_mels, 1)
    std = torch.stack([mb.cnn.in_std for mb in members])[:, None, :, None]
    x = standardise(X[idx], mean, std)  # (m, B, n_mels, T)
    h = x.transpose(2, 3).contiguous()  # (m, B, T, n_mels)
    conv = 0
    for layer in spec:
        if layer.kind == "conv":
            w = torch.stack([mb.convs[conv].weight for mb in members])
            b = torch.stack([mb.convs[conv].bias for mb in members]) if layer.args[4] else None
            h = _conv_channels_last(h, w, b)
            conv += 1
        elif layer.kind == "lrelu":
            h = F.leaky_relu(h, layer.args[0])
        elif layer.kind == "pool":
            k = layer.args[0]
            L2 = h.shape[2] // k
            h = h[:, :, : L2 * k].reshape(m, B, L2, k, h.shape[3]).max(dim=3).values
        elif layer.kind == "drop" and train:
            L, C = h.shape[2], h.shape[3]

            def noise(h=h, C=C, L=L, p=layer.args[0], byte=layer.args[1]):
                out = h.new_zeros(m, B, L, C, dtype=members[0].stream.dtype(h.dtype))
                for j, mb in enumerate(members):  # drawn in the model's (n, C, L) order
                    out[j, : n[j]] = mb.stream.noise((n[j], C, L), p, h.dtype, byte).transpose(1, 2)
                return out

            h = _dropout(h, layer.args[0], noise, layer.args[1])
    return h.reshape(m, B, -1).float().mean(dim=2), n


def _cnn_each(spec, mb: _Member, rows: torch.Tensor, X: torch.Tensor, train: bool) -> torch.Tensor:
    """Loop engine: one member's CNN on its own rows with the model's own torch ops, ``(n,)``."""
    cnn = mb.cnn
    h = standardise(X[rows], cnn.in_mean[:, None], cnn.in_std[:, None])
    conv = 0
    for layer in spec:
        if layer.kind == "conv":
            c = mb.convs[conv]
            h = F.conv1d(h, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)
            conv += 1
        elif layer.kind in ("lrelu", "pool"):
            h = _pointwise(layer, h)
        elif layer.kind == "drop" and train:
            h = _dropout(h, layer.args[0],
                         lambda h=h, p=layer.args[0], b=layer.args[1]: mb.stream.noise(tuple(h.shape), p, h.dtype, b),
                         layer.args[1])
    return h.float().mean(dim=(1, 2))


def _dnn_each(spec, mb: _Member, t: torch.Tensor, train: bool) -> torch.Tensor:
    """One member's tag DNN, ``(n, 50) -> (n,)``, with torch's own ops (exactly as alone)."""
    lin = 0
    for layer in spec:
        if layer.kind == "linear":
            t = F.linear(t, mb.linears[lin].weight, mb.linears[lin].bias)
            lin += 1
        elif layer.kind == "lrelu":
            t = F.leaky_relu(t, layer.args[0])
        elif layer.kind == "drop" and train:
            t = _dropout(t, layer.args[0],
                         lambda t=t, p=layer.args[0], b=layer.args[1]: mb.stream.noise(tuple(t.shape), p, t.dtype, b),
                         layer.args[1])
    return t.squeeze(-1)


def _dnn_bmm(spec, members: list[_Member], rows: list[torch.Tensor], T: torch.Tensor,
             train: bool) -> torch.Tensor:
    """The tag DNNs of ``members`` as batched matmuls: (m, B) scores of their padded rows."""
    n, B, padded = _padded(rows)
    t = T[torch.stack(padded, 0)].float()  # (m, B, n_tags)
    lin = 0
    for layer in spec:
        if layer.kind == "linear":
            w = torch.stack([mb.linears[lin].weight for mb in members]).transpose(1, 2)
            b = torch.stack([mb.linears[lin].bias for mb in members]) if layer.args[0] else None
            t = _biased(torch.bmm(t, w), b)
            lin += 1
        elif layer.kind == "lrelu":
            t = F.leaky_relu(t, layer.args[0])
        elif layer.kind == "drop" and train:

            def noise(t=t, p=layer.args[0], byte=layer.args[1]):
                out = t.new_zeros(t.shape, dtype=members[0].stream.dtype(t.dtype))
                for j, mb in enumerate(members):
                    out[j, : n[j]] = mb.stream.noise((n[j], t.shape[2]), p, t.dtype, byte)
                return out

            t = _dropout(t, layer.args[0], noise, layer.args[1])
    return t.squeeze(-1)


def _forward(engine: str, spec, dnn_spec, members: list[_Member], rows: list[torch.Tensor],
             X: torch.Tensor, train: bool) -> list[torch.Tensor]:
    """Every member's scores of its rows, ``[(n_j,), ...]``, as its model would compute them
    (``forward``, which ``pair`` calls on the concatenated pair songs)."""
    if engine == "loop":
        scores = [_cnn_each(spec, mb, r, X, train) for mb, r in zip(members, rows, strict=True)]
    elif engine == "grouped":
        out, n = _cnn_grouped(spec, members, rows, X, train)
        scores = [out[: n[j], j] for j in range(len(members))]
    else:
        out, n = _cnn_bmm(spec, members, rows, X, train)
        scores = [out[j, : n[j]] for j in range(len(members))]
    tagged = [j for j, mb in enumerate(members) if mb.dnn is not None]
    if not tagged:
        return scores
    if engine != "bmm":
        tag = {j: _dnn_each(dnn_spec, members[j], members[j].tags[rows[j]].float(), train)
               for j in tagged}
    else:
        t_out = _dnn_bmm(dnn_spec, [members[j] for j in tagged], [rows[j] for j in tagged],
                         members[tagged[0]].tags, train)
        tag = {j: t_out[i, : len(rows[j])] for i, j in enumerate(tagged)}
    for j in tagged:  # TagFusion.forward: a * cnn + b * dnn
        a, b = members[j].fusion
        scores[j] = a * scores[j] + b * tag[j]
    return scores


# ----------------------------------------------------------------------------- one bank
class _Bank:
    """Members trained in lockstep on one device."""

    def __init__(self, cfg: Config, X: torch.Tensor, members: list[_Member], engine: str):
        self.cfg, self.X, self.members, self.engine = cfg, X, members, engine
        _check_bank(members, engine)
        self.spec = _cnn_spec(members[0].cnn, engine)
        dnn = next((mb.dnn for mb in members if mb.dnn is not None), None)
        self.dnn_spec = _dnn_spec(dnn) if dnn is not None else None
        self.amp = reduced_precision(cfg, X.device)  # bf16 autocast exactly when fit uses it

    def step(self, active: list[_Member], s: int) -> None:
        """Step ``s`` of every member in ``active``: one forward, one backward, each member's
        own optimiser step."""
        with autocast(self.X.device, self.amp):
            outs = _forward(self.engine, self.spec, self.dnn_spec, active,
                            [mb.rows(s) for mb in active], self.X, True)
            losses = [mb.loss(s, out) for mb, out in zip(active, outs, strict=True)]
        for mb in active:
            mb.opt.zero_grad(set_to_none=True)
        # d(sum)/d(loss_k) = 1: each member receives exactly the gradient of its own loss
        torch.stack(losses).sum().backward()
        for mb, loss in zip(active, losses, strict=True):
            mb.opt.step()
            mb.total += loss.detach()
            mb.steps += 1

    @torch.no_grad()
    def predict(self, members: list[_Member]) -> list[np.ndarray]:
        """Validation scores of each member, in chunks of PREDICT_BATCH songs (as ``predict``)."""
        dev = self.X.device
        chunks = [[torch.as_tensor(mb.job.val_idx[i: i + PREDICT_BATCH], device=dev)
                   for i in range(0, len(mb.job.val_idx), PREDICT_BATCH)] for mb in members]
        outs: list[list[torch.Tensor]] = [[] for _ in members]
        for mb in members:
            mb.model.eval()
        for c in range(max((len(ch) for ch in chunks), default=0)):
            act = [j for j, ch in enumerate(chunks) if c < len(ch)]
            with autocast(dev, self.amp):
                res = _forward(self.engine, self.spec, self.dnn_spec, [members[j] for j in act],
                               [chunks[j][c] for j in act], self.X, False)
            for j, r in zip(act, res, strict=True):
                outs[j].append(r.float().cpu())
        return [torch.cat(o).double().numpy() if o else np.zeros(0) for o in outs]

    def epoch(self, progress=None) -> list[_Member]:
        """One epoch of every member still training; returns those that go on."""
        running = [mb for mb in self.members if mb.next_epoch()]
        if not running:
            return []
        for s in range(max(len(mb.batches) for mb in running)):
            active = [mb for mb in running if s < len(mb.batches)]
            self.step(active, s)
        preds = self.predict(running)
        top = self.cfg.cv.top_fraction
        return [mb for mb, pred in zip(running, preds, strict=True)
                if mb.end_epoch(pred, top, progress)]


def _fit_bank(cfg: Config, X, scores, artists, jobs: list[FitJob], T, engine: str, progress,
              first_index: int = 0) -> list[FitResult]:
    t0 = time.time()
    members = [_Member(cfg, X, scores, artists, job, T, first_index + i)
               for i, job in enumerate(jobs)]
    bank = _Bank(cfg, X, members, engine)
    log.info("model bank: %d members on %s (engine %s)", len(members), X.device, engine)
    live = members
    rounds = 0
    while live:
        bank.members = live
        live = bank.epoch(progress)
        rounds += 1
        log.debug("bank round %d: %d members still training", rounds, len(live))
    seconds = (time.time() - t0) / len(members)
    top = cfg.cv.top_fraction
    return [mb.result(X, top, seconds) for mb in members]


# ----------------------------------------------------------------------------- sizing
def _activation_numel(spec, n_mels: int, n_frames: int, cnn: SimpleCNN) -> int:
    """Elements of all forward activations of one song through the CNN."""
    C, L, total = n_mels, n_frames, 0
    convs = [m for m in cnn.net if isinstance(m, nn.Conv1d)]
    conv = 0
    for layer in spec:
        if layer.kind == "conv":
            stride, padding, dilation = layer.args[:3]
            k = convs[conv].kernel_size[0]
            C = convs[conv].out_channels
            L = (L + 2 * padding - dilation * (k - 1) - 1) // stride + 1
            conv += 1
        elif layer.kind == "pool":
            k, s, p, d, _ = layer.args
            L = (L + 2 * p - d * (k - 1) - 1) // s + 1
        total += C * max(L, 0)
    return total


def member_bytes(cfg: Config, n_mels: int, n_frames: int, pairs: bool = True,
                 engine: str = CUDA_ENGINE) -> int:
    """Estimated device memory of one bank member's training step at ``train.batch_size``
    (pairs: two songs per batch item), bytes: inputs, activations and their gradients,
    parameters with gradients and optimiser state."""
    cnn = _check_model(cfg, False, engine)
    rows = cfg.train.batch_size * (2 if pairs else 1)
    rows = max(rows, PREDICT_BATCH // 4)  # validation chunks run without gradients
    act_bytes = (BFLOAT16_BYTES if cfg.train.amp and use_bf16(cfg.train.precision, "cuda")
                 else FLOAT32_BYTES)
    per_song = (_activation_numel(_cnn_spec(cnn, engine), n_mels, n_frames, cnn)
                * act_bytes * ACTIVATION_FACTOR
                + n_mels * n_frames * (FLOAT16_BYTES + 2 * FLOAT32_BYTES))  # gather, float, std
    params = sum(p.numel() for p in cnn.parameters()) * FLOAT32_BYTES * PARAM_COPIES
    return int(rows * per_song + params)


def members_per_bank(cfg: Config, X: torch.Tensor, jobs: list[FitJob], engine: str) -> int:
    """All jobs on CPU; on CUDA what the free memory holds, at most MAX_BANK_MEMBERS."""
    if X.device.type != "cuda":
        return max(1, len(jobs))
    free, _ = torch.cuda.mem_get_info(X.device)
    per = member_bytes(cfg, X.shape[1], X.shape[2], any(j.sampling != "none" for j in jobs), engine)
    k = int(free * CUDA_MEMORY_FRACTION // max(per, 1))
    k = max(1, min(MAX_BANK_MEMBERS, k, len(jobs)))
    log.info("model bank: %.0f MB free on %s, ~%.0f MB per member: %d per bank",
             free / 2**20, X.device, per / 2**20, k)
    return k


# ----------------------------------------------------------------------------- the auto choice
def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def auto_key(cfg: Config, X: torch.Tensor, jobs: list[FitJob], T) -> str:
    """Identity of a measured decision: CPU model, torch version, threads, model kind, step
    size, optimiser and precision."""
    tags = T is not None and any(j.mu is not None for j in jobs)
    rows = cfg.train.batch_size * (2 if any(j.sampling != "none" for j in jobs) else 1)
    kind = json.dumps({"model": cfg.model.name, "kwargs": cfg.model.kwargs, "tags": tags},
                      sort_keys=True, default=str)
    return (f"{_cpu_model()} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
            f"{kind} | rows {rows} x {X.shape[1]} x {X.shape[2]} | optimizer {cfg.train.optimizer}"
            f" | {'bf16' if reduced_precision(cfg, X.device) else 'fp32'}")


def _read_cache(path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _saved_random_state():
    """Leave Python's, numpy's and torch's global random states as they were."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))
                               if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def _alone_step(mb: _Member, s: int, X: torch.Tensor, amp: bool) -> None:
    """One training step of a model alone, as ``fit`` runs it."""
    b = mb.batches[s]
    mb.model.train()
    with autocast(X.device, amp):
        tags = mb.tags
        if mb.siamese:
            xi, xj = X[b[:, 0]].float(), X[b[:, 1]].float()
            extra = (tags[b[:, 0]].float(), tags[b[:, 1]].float()) if tags is not None else ()
            fi, fj = mb.model.pair(xi, xj, *extra)
            loss = multi_loss(fi.float(), fj.float(), mb.z[b[:, 0]], mb.z[b[:, 1]], mb.job.w,
                              mb.job.margin)
        else:
            inputs = (X[b].float(),) if tags is None else (X[b].float(), tags[b].float())
            loss = rating_loss(mb.model(*inputs).float(), mb.z[b])
    mb.opt.zero_grad(set_to_none=True)
    loss.backward()
    mb.opt.step()


def _clock(device: torch.device) -> float:
    """Seconds to time a step with: this process's CPU time (all threads) on CPU, which other
    processes on a shared machine cannot inflate the way they inflate wall time; wall time
    (after a synchronise) on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def measure(cfg: Config, X: torch.Tensor, scores, artists, jobs: list[FitJob], T=None,
            engine: str | None = None, members: int = AUTO_BENCH_MEMBERS,
            steps: int = AUTO_BENCH_STEPS) -> dict:
    """Time one training step of ``members`` scratch members (built from the first jobs, no
    resume files) trained one after another vs in one bank step.

    Returns
    -------
    dict: ``members``, ``engine``, ``sequential_ms`` and ``bank_ms`` (one step of all
    members: the median over ``steps`` interleaved repeats after a warm-up, in process CPU
    time on CPU and wall time on CUDA), ``speedup`` (the median of the repeats' ratios, each
    pair timed back to back) and ``wall_speedup`` (the ratio of the wall-time minima, for
    information). The global random states are left as they were.
    """
    engine = _engine(engine, X.device)
    amp = reduced_precision(cfg, X.device)
    pick = [jobs[i % len(jobs)] for i in range(members)]
    with _saved_random_state():
        scratch = [_Member(cfg, X, scores, artists,
                           FitJob(j.train_idx, j.val_idx, j.target, j.sampling, j.w, j.margin,
                                  j.mu, j.seed + 7919 * i, None), T, i)
                   for i, j in enumerate(pick)]
        for mb in scratch:
            mb.next_epoch()
        bank = _Bank(cfg, X, scratch, engine)
        n_steps = min(len(mb.batches) for mb in scratch)
        seq, bat, seq_wall, bat_wall = [], [], [], []
        for r in range(steps + 1):
            s = r % n_steps
            c0, w0 = _clock(X.device), time.perf_counter()
            for mb in scratch:
                _alone_step(mb, s, X, amp)
            c1, w1 = _clock(X.device), time.perf_counter()
            bank.step(scratch, s)
            c2, w2 = _clock(X.device), time.perf_counter()
            if r:  # the first repeat warms up (allocations, oneDNN kernel choice)
                seq.append(c1 - c0)
                bat.append(c2 - c1)
                seq_wall.append(w1 - w0)
                bat_wall.append(w2 - w1)
    ratios = [a / max(b, 1e-9) for a, b in zip(seq, bat, strict=True)]  # back-to-back pairs
    return {"members": members, "engine": engine, "sequential_ms": 1e3 * float(np.median(seq)),
            "bank_ms": 1e3 * float(np.median(bat)), "speedup": float(np.median(ratios)),
            "wall_speedup": min(seq_wall) / max(min(bat_wall), 1e-9)}


def _decide(bank: str, cfg: Config, X, scores, artists, jobs, T, ctx: Context,
            engine: str | None) -> bool:
    """Whether to bank (see the module docstring)."""
    if bank == "off":
        return False
    if ctx.ddp:
        if bank == "on":
            raise ParameterError("bank='on' needs one process per model; data-parallel "
                                 "training (torchrun --distribute data) runs bank='off'")
        return False
    with_tags = T is not None and any(j.mu is not None for j in jobs)
    eng = _engine(engine, X.device)
    if bank == "on":
        _check_model(cfg, with_tags, eng)  # raises BankUnsupported, naming the layer
        return True
    if len(jobs) < 2:
        return False
    try:
        _check_model(cfg, with_tags, eng)
    except BankUnsupported as exc:
        log.info("model bank off: %s", exc)
        return False
    if X.device.type == "cuda":
        return True
    path = cache_root() / AUTO_CACHE_FILE
    key = f"{auto_key(cfg, X, jobs, T)} | engine {eng}"
    cache = _read_cache(path)
    if key in cache and "bank" in cache[key]:
        return bool(cache[key]["bank"])
    found = measure(cfg, X, scores, artists, jobs, T, eng,
                    members=min(AUTO_BENCH_MEMBERS, len(jobs)))
    found["bank"] = found["speedup"] >= AUTO_MIN_SPEEDUP
    found["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    log.info("model bank auto: %s (bank %.0f ms vs one after another %.0f ms per step of %d "
             "members); cached in %s", "on" if found["bank"] else "off", found["bank_ms"],
             found["sequential_ms"], found["members"], path)
    cache = _read_cache(path)  # another process may have written meanwhile
    cache[key] = found
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only cache: decide again next time
        log.warning("cannot write %s (%s)", path, exc)
    return found["bank"]
