"""Multi-process training under ``torchrun``: DistributedDataParallel and fold-parallel CV.

``torchrun --nproc-per-node N -m hitrank train|cv ...`` starts N copies of the command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment. :func:`setup` reads them,
joins the process group (NCCL when the processes have GPUs, gloo on CPU) and gives each rank
its device (``cuda:LOCAL_RANK``, or the CPU). Without torchrun nothing changes: one process,
world size 1, and every helper here is a no-op.

Two ways to spread work, :data:`MODES`:

* ``data``: one model at a time, DistributedDataParallel. Every rank draws the same global
  batches (same seed) and trains on its own slice of each one (``batch[rank::world]``: no pair
  or song on two ranks); the loss of a slice is weighted so that the averaged gradient is the
  one of the whole batch. Validation and test songs are scored in slices and gathered, so all
  ranks take the same early-stopping decisions; only rank 0 writes files.
* ``folds`` (CV only): the folds are independent jobs, fold f on rank f mod N; each rank
  writes its own fold files and rank 0 writes the summary once all are done. No gradient
  traffic at all: the faster choice whenever there are at least as many folds as processes
  and one model fits one device, which is the case for the paper's small CNN.
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("auto", "data", "folds")


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, world size, its device and the parallel mode."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str | None = None  # None: the config's train.device
    mode: str = "data"  # data | folds (meaningful when world > 1)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def ddp(self) -> bool:
        """Data-parallel training: gradients are averaged across ranks."""
        return self.world > 1 and self.mode == "data"

    @property
    def shards(self) -> int:
        """Processes that share each batch: the world size in data mode, else 1."""
        return self.world if self.ddp else 1

    @property
    def writes(self) -> bool:
        """Whether this process writes the files of the folds it trains (rank 0 in data mode,
        every rank in folds mode)."""
        return self.main or not self.ddp


SINGLE = Context()


def launched() -> bool:
    """True inside a ``torchrun`` launch of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(mode: str = "auto", n_folds: int | None = None, device: str = "auto") -> Context:
    """Join the process group started by torchrun; :data:`SINGLE` outside torchrun.

    Parameters
    ----------
    mode : auto | data | folds. ``auto``: ``folds`` for a CV with at least as many folds as
        processes, else ``data``.
    n_folds : number of CV folds (None for ``train``: always ``data``)
    device : the requested training device (``auto``, ``cpu``, ``cuda``); under torchrun
        ``cuda`` means this rank's GPU, ``cuda:LOCAL_RANK``
    """
    if mode not in MODES:
        raise ConfigError(f"distribute={mode!r}; expected one of {', '.join(MODES)}")
    if not launched():
        return SINGLE
    world = int(os.environ["WORLD_SIZE"])
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if mode == "auto":
        mode = "folds" if n_folds is not None and n_folds >= world else "data"
    if mode == "folds" and n_folds is None:
        raise ConfigError("distribute='folds' is for `hitrank cv`; `train` fits one model (use data)")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if torch.cuda.device_count() <= local:
            raise ConfigError(f"rank {rank} wants cuda:{local} but this node has "
                              f"{torch.cuda.device_count()} GPU(s); use --nproc-per-node "
                              f"{torch.cuda.device_count()} or --device cpu")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(minutes=60))
    ctx = Context(rank, world, local, f"cuda:{local}" if use_cuda else "cpu", mode)
    if ctx.main:
        log.info("torchrun: %d processes (%s), mode %s", world, dist.get_backend(), mode)
    return ctx


def teardown() -> None:
    """Leave the process group: every rank waits for the others, then destroys it. Models
    (and their DistributedDataParallel reducers) left in reference cycles are collected first,
    so no gloo work outlives the group into interpreter shutdown, where it aborts the process
    ("terminate called without an active exception")."""
    if dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        dist.barrier()


def my_slice(ctx: Context, items):
    """This rank's share of ``items`` in data-parallel mode (every ``world``-th item from
    ``rank``); all of them otherwise (one process, or fold-parallel mode)."""
    return items if not ctx.ddp else items[ctx.rank:: ctx.world]


def gather_rows(ctx: Context, part: np.ndarray, n: int) -> np.ndarray:
    """Undo :func:`my_slice`: ranks' slices of an ``(n, ...)`` array back into one array, on
    every rank (so all ranks take the same decisions from it)."""
    if not ctx.ddp:
        return part
    parts = [None] * ctx.world
    dist.all_gather_object(parts, part)
    out = np.empty((n, *part.shape[1:]), dtype=part.dtype)
    for r, p in enumerate(parts):
        out[r:: ctx.world] = p
    return out


def reduce_mean(ctx: Context, value: float) -> float:
    """Mean of a float over ranks (for logged losses)."""
    if not ctx.ddp:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / ctx.world


def my_folds(ctx: Context, n_folds: int) -> list[int]:
    """Folds this process runs: all of them, or f mod world == rank in folds mode."""
    if ctx.world > 1 and ctx.mode == "folds":
        return [f for f in range(n_folds) if f % ctx.world == ctx.rank]
    return list(range(n_folds))
