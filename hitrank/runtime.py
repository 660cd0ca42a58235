"""Where and how code runs: the device, seeding, thread counts, precision and cache folders.

The lowest layer of hitrank besides constants and errors: everything that trains, extracts
or caches asks here, so that one seed, one thread policy and one cache root serve the whole
package. torch is imported inside the functions that need it, so importing this module is
cheap (``hitrank --help`` must start fast).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
from pathlib import Path

from .errors import ConfigError

#: Environment variables that set the BLAS / OpenMP thread counts of a process.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
DEVICES = "auto, cpu, cuda, cuda:N"
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


# ----------------------------------------------------------------------------- devices
def check_device_spec(spec: str, key: str = "train.device") -> str:
    """``spec`` unchanged if it names a device kind hitrank knows, else a ConfigError."""
    if not (spec in ("auto", "cpu", "cuda") or spec.startswith("cuda:")):
        raise ConfigError(f"{key}={spec!r}; allowed: {DEVICES}")
    return spec


def pick_device(spec: str = "auto"):
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a ConfigError."""
    import torch

    check_device_spec(spec, "device")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={spec!r} but no CUDA device is available; use auto or cpu")
    return torch.device(spec)


# ----------------------------------------------------------------------------- seeding
def seed_everything(seed: int) -> None:
    """The one seeding helper: Python, numpy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- threads
@contextlib.contextmanager
def single_thread():
    """Compute with one torch thread: one process per core, and results that do not depend
    on the thread count (so serial, parallel and resumed extractions are byte-identical)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set the environment variables ``values`` while the block runs (worker processes started
    inside it inherit them); the caller's environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def one_thread_per_worker():
    """Worker processes inherit the environment: one BLAS/OpenMP thread each (one process
    per core); the caller's environment is restored afterwards."""
    return environment({k: "1" for k in THREAD_VARS})


def worker_init(log_queue=None, log_level: int = 0) -> None:
    """Initialiser of a worker process: one torch thread (one worker per core), on Linux a
    worker that dies with its parent (a killed command leaves no orphan still computing or
    writing), and hitrank's log records sent to the parent through ``log_queue``."""
    import logging
    import logging.handlers

    import torch

    torch.set_num_threads(1)
    die_with_parent()
    import_plugins()
    if log_queue is not None:
        root = logging.getLogger("hitrank")
        root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
        root.setLevel(log_level)
        root.propagate = False


PLUGINS_VAR = "HITRANK_PLUGINS"  # comma-separated modules that register segment methods, models, ...


def import_plugins() -> list[str]:
    """Import the modules named in ``$HITRANK_PLUGINS`` (comma-separated): plug-ins that
    register their own segment methods, models or taggers. The CLI imports them at start and
    every worker process at its start, so registrations reach spawned workers too."""
    import importlib

    names = [n.strip() for n in os.environ.get(PLUGINS_VAR, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{PLUGINS_VAR}={os.environ[PLUGINS_VAR]!r}: cannot import {name!r} ({exc})") from None
    return names


def die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``;
    a no-op elsewhere)."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


# ----------------------------------------------------------------------------- precision
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def use_bf16(precision: str, device) -> bool:
    """Whether to train/score in bfloat16 autocast: ``bf16`` yes, ``fp32`` no, ``auto`` on
    CUDA and on CPUs that compute bfloat16 natively (:func:`cpu_has_bf16`)."""
    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    if precision == "auto":
        return kind == "cuda" or (kind == "cpu" and cpu_has_bf16())
    return precision == "bf16"


def autocast(device, enabled: bool):
    """bfloat16 autocast on ``device`` (CUDA or CPU) when ``enabled``, else a no-op context.

    Model outputs are cast back to float32 by the callers before losses and metrics.
    """
    import torch

    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    if enabled and kind in ("cuda", "cpu"):
        return torch.autocast(kind, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- caches
def cache_root() -> Path:
    """``$HITRANK_CACHE`` or ``~/.cache/hitrank``: cache stores, the demo, imported models."""
    return Path(os.environ.get("HITRANK_CACHE", Path.home() / ".cache" / "hitrank"))


def models_dir() -> Path:
    """Where imported pretrained models live: ``$HITRANK_CACHE/models`` (``hitrank pretrained
    import`` writes them; run folders by name, the JYnet tagger under ``jynet/``)."""
    return cache_root() / "models"


def cache_dir(kind: str, key: dict) -> Path:
    """A cache folder ``cache_root()/kind/<16 hex digits of the key's hash>``.

    ``key`` is any JSON-serialisable mapping that identifies the cached thing (a source
    folder and the parameters it was processed with).
    """
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / kind / digest


def cached_store_path(source: str | os.PathLike, params) -> Path:
    """The cache feature store of a source folder / labels CSV and feature parameters."""
    return cache_dir("stores", {"source": str(Path(source).absolute()), **params.cache_key()})
