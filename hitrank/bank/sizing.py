"""How many members a bank holds, and the tools of the ``bank='auto'`` measurement.

Members per bank: every job on CPU; on CUDA as many as the free device memory holds
(``torch.cuda.mem_get_info`` against an estimate of one member's activation memory at the
configured batch size), at most :data:`MAX_BANK_MEMBERS`; further jobs run in further banks.

The ``auto`` choice itself (:func:`hitrank.bank.measure`, described in :mod:`hitrank.bank`)
times steps with :func:`clock`, leaves the random states as it found them
(:func:`saved_random_state`) and keeps its decisions in a JSON file (:func:`read_cache`,
:func:`write_cache`) keyed by, among others, :func:`cpu_model`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..fileio import atomic_write_text
from ..inference import PREDICT_BATCH
from ..models.cnn import SimpleCNN
from ..runtime import use_bf16
from ..schema import Config
from .network import CUDA_ENGINE, check_model, cnn_spec

log = logging.getLogger(__name__)

MAX_BANK_MEMBERS = 32  # members per bank on CUDA (beyond this a small CNN saturates a GPU)
CUDA_MEMORY_FRACTION = 0.7  # share of the free device memory a bank plans to fill
ACTIVATION_FACTOR = 3.0  # bytes kept per forward activation byte (saved tensor, its gradient,
#                          masks / pooling indices) in a training step
FLOAT16_BYTES, FLOAT32_BYTES, BFLOAT16_BYTES = 2, 4, 2
PARAM_COPIES = 5  # parameter, gradient, optimiser state (Adam: 2), the stacked copy


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
    cnn = check_model(cfg, False, engine)
    rows = cfg.train.batch_size * (2 if pairs else 1)
    rows = max(rows, PREDICT_BATCH // 4)  # validation chunks run without gradients
    act_bytes = (BFLOAT16_BYTES if cfg.train.amp and use_bf16(cfg.train.precision, "cuda")
                 else FLOAT32_BYTES)
    per_song = (_activation_numel(cnn_spec(cnn, engine), n_mels, n_frames, cnn)
                * act_bytes * ACTIVATION_FACTOR
                + n_mels * n_frames * (FLOAT16_BYTES + 2 * FLOAT32_BYTES))  # gather, float, std
    params = sum(p.numel() for p in cnn.parameters()) * FLOAT32_BYTES * PARAM_COPIES
    return int(rows * per_song + params)


def members_per_bank(cfg: Config, X: torch.Tensor, jobs: list, engine: str) -> int:
    """Members per bank for ``jobs`` (:class:`~hitrank.train.FitJob`): all of them on CPU; on
    CUDA what the free memory holds, at most MAX_BANK_MEMBERS."""
    if X.device.type != "cuda":
        return max(1, len(jobs))
    free, _ = torch.cuda.mem_get_info(X.device)
    per = member_bytes(cfg, X.shape[1], X.shape[2], any(j.sampling != "none" for j in jobs), engine)
    k = int(free * CUDA_MEMORY_FRACTION // max(per, 1))
    k = max(1, min(MAX_BANK_MEMBERS, k, len(jobs)))
    log.info("model bank: %.0f MB free on %s, ~%.0f MB per member: %d per bank",
             free / 2**20, X.device, per / 2**20, k)
    return k


# ----------------------------------------------------------------------------- auto-choice tools
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_cache(path: Path) -> dict:
    """The decisions kept in the JSON file ``path`` ({} when it is missing or unreadable)."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def saved_random_state():
    """Leave Python's, numpy's and torch's global random states as they were."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))
                               if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def clock(device: torch.device) -> float:
    """Seconds to time a step with: this process's CPU time (all threads) on CPU, which other
    processes on a shared machine cannot inflate the way they inflate wall time; wall time
    (after a synchronise) on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def write_cache(path: Path, key: str, entry: dict) -> None:
    """Keep ``entry`` under ``key`` in the JSON file ``path``, with what other processes
    wrote meanwhile; a cache that cannot be written is logged and left (decided again next
    time)."""
    cache = read_cache(path)
    cache[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    except OSError as exc:
        log.warning("cannot write %s (%s)", path, exc)
