"""Model bank: K independent models trained in lockstep as one batched computation.

A cross-validation fold trains several small models (every grid point ``(w, margin, mu)``,
the two members of A/B + artist); each one alone leaves a GPU mostly idle and pays the
Python and kernel-launch overhead of every step. A bank trains them together: at every step
the members' batches go through ONE forward and ONE backward pass (with the batched engines,
their weights stacked into one kernel per layer, see :mod:`hitrank.bank.engines`), and each
member behaves as if :func:`hitrank.train.fit` trained it alone, because it is the trainer's
own :class:`~hitrank.train.Training` (:mod:`hitrank.bank.members`):

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

Engines (``loop``, ``grouped``, ``bmm``): :mod:`hitrank.bank.engines`; the members' networks
as bank operations: :mod:`hitrank.bank.network`; how many members a bank holds:
:mod:`hitrank.bank.sizing`.

``bank='auto'``
---------------
On CUDA the bank is on. On CPU a micro-benchmark decides (a few seconds, once): a few steps
of up to :data:`AUTO_BENCH_MEMBERS` scratch members trained one after another (the trainer's
own step: forward / backward / optimiser step) against the same members in one bank step;
the bank is chosen when it is at least :data:`AUTO_MIN_SPEEDUP` times faster (the median
ratio over :data:`AUTO_BENCH_STEPS` back-to-back repeats of this process's CPU time, which
other processes on a shared machine inflate less than wall time). Measured on the
development CPU (2 cores, tests/test_bank.py and the issue report): no engine is faster than
sequential training there (the loop engine ties, the batched ones lose up to 2x at large
K x batch), so ``auto`` normally says off; with the default ``loop`` engine a wrong call
costs nothing but time, its results being bitwise those of ``fit``. The decision is cached
in ``cache_root()/bank_auto.json``, keyed by CPU model, torch version, thread count, model
kind, step size, optimiser, precision and engine; delete the file to measure again. One
job, data-parallel training or a model the bank does not support: off.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import torch
import torch.nn as nn

from ..distributed import SINGLE, Context
from ..errors import ParameterError
from ..runtime import cache_root
from ..schema import Config
from ..train import FitJob, FitResult, Training, fit, reduced_precision
from ..whole_song import WholeSongs
from .engines import Bank
from .network import (
    CPU_ENGINE,
    CUDA_ENGINE,
    ENGINE_ENV,
    ENGINES,
    BankUnsupported,
    Stream,
    check_model,
    parts,
    pick_engine,
)
from .sizing import (
    MAX_BANK_MEMBERS,
    clock,
    cpu_model,
    member_bytes,
    members_per_bank,
    read_cache,
    saved_random_state,
    write_cache,
)

__all__ = ["AUTO_BENCH_MEMBERS", "AUTO_BENCH_STEPS", "AUTO_CACHE_FILE", "AUTO_MIN_SPEEDUP",
           "BANK_MODES", "CPU_ENGINE", "CUDA_ENGINE", "ENGINES", "ENGINE_ENV",
           "MAX_BANK_MEMBERS", "BankUnsupported", "FitJob", "Member", "auto_key", "fit_bank",
           "fit_many", "measure", "member_bytes", "members_per_bank"]

log = logging.getLogger(__name__)

BANK_MODES = ("auto", "on", "off")
AUTO_CACHE_FILE = "bank_auto.json"  # under hitrank.runtime.cache_root()
AUTO_BENCH_MEMBERS = 4  # scratch members in the auto micro-benchmark
AUTO_BENCH_STEPS = 3  # timed repeats of each variant (after one warm-up step)
AUTO_MIN_SPEEDUP = 1.25  # the bank must be this many times faster than one-after-another
#                          (on a shared 2-core machine single repeats scatter by ~20 %)
SCRATCH_SEED_STRIDE = 7919  # scratch member i of the micro-benchmark: the job's seed + i * this


# ----------------------------------------------------------------------------- members
def job_progress(progress, i: int):
    """``progress`` with each line prefixed by ``job i: `` (None stays None)."""
    if progress is None:
        return None
    return lambda line: progress(f"job {i}: {line}")


class Member(Training):
    """One job of a bank: the trainer's :class:`~hitrank.train.Training` of it (set up,
    batched, validated and finished as ``fit`` does), plus its parts as bank operations and
    its private dropout stream.

    Parameters
    ----------
    cfg, X, scores, artists : as for :func:`hitrank.train.fit`
    job : the job (:class:`~hitrank.train.FitJob`)
    T : (n, 50) tag vectors, used when ``job.mu`` is set
    index : the job's place in the caller's list (status lines read ``job {index}: ...``)
    progress : optional callable(str) for status lines
    """

    def __init__(self, cfg: Config, X: torch.Tensor, scores: np.ndarray, artists: np.ndarray,
                 job: FitJob, T: torch.Tensor | None, index: int, progress=None):
        super().__init__(cfg, X, scores, artists, job, T if job.mu is not None else None,
                         progress=job_progress(progress, index))
        self.index = index
        # after the trainer's EpochLoop: a resumed loop has put the saved torch RNG state into
        # the default generator, a fresh one left it where build() did
        self.stream = Stream(X.device)
        self.cnn, self.dnn, self.fusion = parts(self.model)
        self.convs = [m for m in self.cnn.net if isinstance(m, nn.Conv1d)]
        self.linears = [m for m in self.dnn.net if isinstance(m, nn.Linear)] if self.dnn else []

    def rows(self, s: int) -> torch.Tensor:
        """Songs fed to the network at step ``s``: the batch, or both songs of each pair
        (``pair`` scores ``cat([xi, xj])`` in one forward pass)."""
        b = self.batches[s]
        return torch.cat([b[:, 0], b[:, 1]]) if self.siamese else b

    def rows_loss(self, s: int, out: torch.Tensor) -> torch.Tensor:
        """The trainer's loss of step ``s`` from the scores ``out`` of :meth:`rows`."""
        b = self.batches[s]
        return self.loss(b, (out[: len(b)], out[len(b):]) if self.siamese else out)

    def end_epoch(self, pred: np.ndarray) -> bool:
        """The trainer's validation record, with this member's dropout stream as the torch
        random state it saves."""
        self.stream.publish()
        return super().end_epoch(pred)


def fit_bank(cfg: Config, X: torch.Tensor, scores: np.ndarray, artists: np.ndarray,
             jobs: list[FitJob], T: torch.Tensor | None, engine: str, progress=None,
             first_index: int = 0) -> list[FitResult]:
    """Train ``jobs`` as one bank; their results in order (``seconds``: the bank's wall time
    divided by its members). Status lines name the jobs from ``first_index`` on."""
    t0 = time.time()
    members = [Member(cfg, X, scores, artists, job, T, first_index + i, progress)
               for i, job in enumerate(jobs)]
    bank = Bank(X, members, engine)
    log.info("model bank: %d members on %s (engine %s)", len(members), X.device, engine)
    live = members
    rounds = 0
    while live:
        bank.members = live
        live = bank.epoch()
        rounds += 1
        log.debug("bank round %d: %d members still training", rounds, len(live))
    seconds = (time.time() - t0) / len(members)
    return [mb.result(seconds) for mb in members]


def fit_many(cfg: Config, X: torch.Tensor, scores: np.ndarray, artists: np.ndarray,
             jobs: list[FitJob], T: torch.Tensor | None = None, bank: str = "auto",
             progress=None, engine: str | None = None, ctx: Context = SINGLE,
             songs: WholeSongs | None = None) -> list[FitResult]:
    """Train every job; the same results as ``[fit(...) for job in jobs]``, in job order.

    Parameters
    ----------
    cfg : experiment config (model, train, pairs, cv sections); shared by all jobs
    X : (n, n_mels, n_frames) float16 tensor of all songs, on the training device
    scores : (n,) raw hit scores; artists : (n,) artist names
    jobs : what differs per model (:class:`~hitrank.train.FitJob`)
    T : (n, 50) tag vectors on the device, or None; used by the jobs whose ``mu`` is set
    bank : ``off`` (one ``fit`` after another), ``on`` (lockstep banks), ``auto`` (see the
        module docstring)
    progress : optional callable(str) for status lines (``job i: epoch ...``)
    engine : ``loop`` | ``grouped`` | ``bmm`` | None (``$HITRANK_BANK_ENGINE``, else the
        device default: loop on CPU, bmm on CUDA)
    ctx : torchrun context; the bank is single-process (data-parallel training runs ``off``)
    songs : whole-song training (:class:`~hitrank.train.Training`; one model at a time), or None

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
    if songs is not None and bank == "on":
        raise ParameterError("bank='on' cannot train on whole songs (train.window_loss runs each "
                             "model alone); use bank 'auto' or 'off'")
    if songs is not None or not _decide(bank, cfg, X, scores, artists, jobs, T, ctx, engine):
        return [fit(cfg, X, scores, artists, j.train_idx, j.val_idx, j.target, j.sampling, j.w,
                    j.margin, seed=j.seed, progress=job_progress(progress, i),
                    T=T if j.mu is not None else None, mu=j.mu, resume=j.resume, ctx=ctx, songs=songs)
                for i, j in enumerate(jobs)]
    engine = pick_engine(engine, X.device)
    per_bank = members_per_bank(cfg, X, jobs, engine)
    results: list[FitResult] = []
    for start in range(0, len(jobs), per_bank):
        results += fit_bank(cfg, X, scores, artists, jobs[start: start + per_bank], T, engine,
                            progress, first_index=start)
    return results


# ----------------------------------------------------------------------------- the auto choice
def auto_key(cfg: Config, X: torch.Tensor, jobs: list[FitJob], T) -> str:
    """Identity of a measured decision: CPU model, torch version, threads, model kind, step
    size, optimiser and precision."""
    tags = T is not None and any(j.mu is not None for j in jobs)
    rows = cfg.train.batch_size * (2 if any(j.sampling != "none" for j in jobs) else 1)
    kind = json.dumps({"model": cfg.model.name, "kwargs": cfg.model.kwargs, "tags": tags},
                      sort_keys=True, default=str)
    return (f"{cpu_model()} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
            f"{kind} | rows {rows} x {X.shape[1]} x {X.shape[2]} | optimizer {cfg.train.optimizer}"
            f" | {'bf16' if reduced_precision(cfg, X.device) else 'fp32'}")


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
    engine = pick_engine(engine, X.device)
    pick = [jobs[i % len(jobs)] for i in range(members)]
    with saved_random_state():
        scratch = [Member(cfg, X, scores, artists,
                          FitJob(j.train_idx, j.val_idx, j.target, j.sampling, j.w, j.margin,
                                 j.mu, j.seed + SCRATCH_SEED_STRIDE * i, None), T, i)
                   for i, j in enumerate(pick)]
        for mb in scratch:
            mb.next_epoch()
        bank = Bank(X, scratch, engine)
        n_steps = min(len(mb.batches) for mb in scratch)
        seq, bat, seq_wall, bat_wall = [], [], [], []
        for r in range(steps + 1):
            s = r % n_steps
            c0, w0 = clock(X.device), time.perf_counter()
            for mb in scratch:
                mb.step(s)  # the trainer's step, as fit runs it
            c1, w1 = clock(X.device), time.perf_counter()
            bank.step(scratch, s)
            c2, w2 = clock(X.device), time.perf_counter()
            if r:  # the first repeat warms up (allocations, oneDNN kernel choice)
                seq.append(c1 - c0)
                bat.append(c2 - c1)
                seq_wall.append(w1 - w0)
                bat_wall.append(w2 - w1)
    ratios = [a / max(b, 1e-9) for a, b in zip(seq, bat, strict=True)]  # back-to-back pairs
    return {"members": members, "engine": engine, "sequential_ms": 1e3 * float(np.median(seq)),
            "bank_ms": 1e3 * float(np.median(bat)), "speedup": float(np.median(ratios)),
            "wall_speedup": min(seq_wall) / max(min(bat_wall), 1e-9)}


def _decide(bank: str, cfg: Config, X: torch.Tensor, scores, artists, jobs: list[FitJob], T,
            ctx: Context, engine: str | None) -> bool:
    """Whether to bank ``jobs`` under ``bank`` = auto | on | off (see the module docstring);
    ``on`` with a model the engine cannot batch raises :class:`BankUnsupported`."""
    if bank == "off":
        return False
    if cfg.train.contrast > 0:  # its step scores each song's contrast window too: one model at a time
        if bank == "on":
            raise ParameterError("bank='on' cannot train with train.contrast (within-song "
                                 "training runs each model alone); use bank 'auto' or 'off'")
        return False
    if ctx.ddp:
        if bank == "on":
            raise ParameterError("bank='on' needs one process per model; data-parallel "
                                 "training (torchrun --distribute data) runs bank='off'")
        return False
    with_tags = T is not None and any(j.mu is not None for j in jobs)
    eng = pick_engine(engine, X.device)
    if bank == "on":
        check_model(cfg, with_tags, eng)  # raises BankUnsupported, naming the layer
        return True
    if len(jobs) < 2:
        return False
    try:
        check_model(cfg, with_tags, eng)
    except BankUnsupported as exc:
        log.info("model bank off: %s", exc)
        return False
    if X.device.type == "cuda":
        return True
    path = cache_root() / AUTO_CACHE_FILE
    key = f"{auto_key(cfg, X, jobs, T)} | engine {eng}"
    cache = read_cache(path)
    if key in cache and "bank" in cache[key]:
        return bool(cache[key]["bank"])
    found = measure(cfg, X, scores, artists, jobs, T, eng,
                    members=min(AUTO_BENCH_MEMBERS, len(jobs)))
    found["bank"] = found["speedup"] >= AUTO_MIN_SPEEDUP
    found["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    log.info("model bank auto: %s (bank %.0f ms vs one after another %.0f ms per step of %d "
             "members); cached in %s", "on" if found["bank"] else "off", found["bank_ms"],
             found["sequential_ms"], found["members"], path)
    write_cache(path, key, found)
    return found["bank"]
