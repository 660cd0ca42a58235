"""Where per-song jobs run: this process, a local process pool, or a Ray cluster.

An engine is a context manager giving ``run(fn, jobs, crashed=None)``, which maps a picklable
function over a list of jobs and yields the results as they come (the caller writes each
finished song at once, so nothing is lost when the run stops); ``crashed(job, reason)`` makes
the result of a job whose worker died (Ray: after Ray's retries, the shard's jobs are run one
by one, so only the job that kills its worker fails), instead of stopping the batch. Every engine runs
the same single-song code path; only the transport differs.

* ``local``: ``workers == 1`` (or a batch of one task) runs in this process; more workers use
  spawned processes with one BLAS/OpenMP thread each, no more than the batch has tasks
  (results in job order).
* ``ray``: Ray tasks over shards of the job list, on a local Ray instance (started here and
  stopped at the end) or on a running cluster (``address="auto"`` or ``"HOST:PORT"``). Results
  come back to this process in completion order; at most a few shards per CPU are in flight, so
  finished features never pile up in the object store. Every node must be able to import
  hitrank and read the audio paths (a shared filesystem or the same mounts).

Register a new engine in :data:`ENGINES`.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import math
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from .errors import HitrankError
from .runtime import THREAD_VARS, one_thread_per_worker, worker_init

log = logging.getLogger(__name__)

CHUNKSIZE = 4  # songs per task sent to a local worker process (long jobs such as folds: 1)
SHARD = 8  # songs per Ray task
IN_FLIGHT_PER_CPU = 2  # Ray shards submitted ahead per cluster CPU
RAY_INSTALL = "pip install -e '.[ray]' (or pip install 'ray>=2.9')"


@contextlib.contextmanager
def local_engine(workers: int = 1, address: str | None = None) -> Iterator[Callable]:
    """This process (``workers == 1``) or a pool of spawned worker processes.

    A batch runs in this process when it fills at most one task (``chunksize`` jobs), and a
    pool gets no more workers than it has tasks: a worker with nothing to do still takes
    seconds to start. A pool is shut down and its workers joined when the batch ends, before
    the queues they were handed are released (a worker still starting would otherwise find
    them gone and print a traceback); on an error or an interrupt its pending tasks are
    cancelled and its workers stopped (:func:`_stop_workers`) rather than waited for.
    """
    if address:
        raise HitrankError(f"address={address!r} is for --engine ray; the local engine runs here")
    pool = None

    listener = None

    def run(fn: Callable, jobs: list, crashed: Callable | None = None,
            chunksize: int = CHUNKSIZE) -> Iterable:
        nonlocal pool, listener
        n_workers = min(workers, math.ceil(len(jobs) / chunksize))  # no worker without a task
        if n_workers <= 1:
            return map(fn, jobs)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        listener = logging.handlers.QueueListener(queue, _Forward())
        listener.start()
        with one_thread_per_worker():  # the workers are spawned inside map()
            pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=worker_init,
                                       initargs=(queue, _hitrank_level()))
            return pool.map(fn, jobs, chunksize=chunksize)

    finished = False
    try:
        yield run
        finished = True
    finally:
        if pool is not None:
            if not finished:
                _stop_workers(pool)
            pool.shutdown(wait=finished, cancel_futures=True)
        if listener is not None:
            listener.stop()  # last: after a finished batch the workers have exited, their records are in


def _stop_workers(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    """Terminate the worker processes of ``pool`` and wait (up to ``timeout`` s each) until they
    are gone: after an error the batch's other tasks are not wanted, and a worker left running
    (or still starting) past this process's exit prints a traceback of its own when the queues
    it was handed disappear. ``ProcessPoolExecutor.terminate_workers`` where Python has it
    (3.14); before, the executor's process table (``_processes``; CPython 3.9 to 3.13 keep it
    there); nothing happens where neither is found."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout)


class _Forward(logging.Handler):
    """Hands a worker's log record to this process's logger of the same name, which filters
    and emits it as its own (the workers' warnings reach the user and the tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _hitrank_level() -> int:
    """The most verbose level any hitrank logger of this process listens at."""
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith("hitrank")]
    return min([logging.getLogger(n).getEffectiveLevel() for n in names] or [logging.WARNING])


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise HitrankError(f"--engine ray needs Ray, which is not installed ({exc}); install it with "
                           f"{RAY_INSTALL}") from None
    return ray


def _run_shard(fn: Callable, jobs: list) -> list:
    worker_init()  # Ray gives each task one CPU
    return [fn(j) for j in jobs]


def _start_ray(ray, workers: int, address: str | None) -> None:
    env = {"env_vars": {k: "1" for k in THREAD_VARS}}
    kwargs = dict(address=address, runtime_env=env, log_to_driver=False, include_dashboard=False,
                  logging_level=logging.WARNING)
    if address is None and workers > 0:
        kwargs["num_cpus"] = workers
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError, OSError) as exc:  # OSError: e.g. a socket path too long
        raise HitrankError(f"cannot start or reach Ray at address={address!r} ({exc}); use --address "
                           "auto on a cluster node, HOST:PORT, or no --address for a local instance") from None


@contextlib.contextmanager
def ray_engine(workers: int = 0, address: str | None = None) -> Iterator[Callable]:
    """Ray tasks, on a local instance (``address`` None; ``workers`` CPUs, 0 = all) or on the
    cluster at ``address`` (``auto``: the one this machine belongs to, or ``HOST:PORT``).

    Ray is started (or joined) on the first non-empty batch, and a local instance started here
    is stopped at the end.
    """
    ray = _import_ray()
    started = False
    pending: dict = {}  # object ref -> its shard of jobs

    def run(fn: Callable, jobs: list, crashed: Callable | None = None) -> Iterator:
        nonlocal started
        if not jobs:
            return
        if not ray.is_initialized():
            _start_ray(ray, workers, address)
            started = True
        remote = ray.remote(num_cpus=1, max_retries=2)(_run_shard)
        fn_ref = ray.put(fn)
        queue = iter([jobs[i: i + SHARD] for i in range(0, len(jobs), SHARD)])
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        for shard in queue:
            pending[remote.remote(fn_ref, shard)] = shard
            if len(pending) >= IN_FLIGHT_PER_CPU * cpus:
                break
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            shard = pending.pop(ref)
            try:
                results = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a worker died (after Ray's retries)
                if crashed is None:
                    raise
                if len(shard) > 1:  # find the culprit: its shard-mates are tried one by one
                    for job in shard:
                        pending[remote.remote(fn_ref, [job])] = [job]
                    continue
                reason = f"Ray task failed after retries ({type(exc).__name__}: {str(exc).splitlines()[0]})"
                results = [crashed(shard[0], reason)]
            nxt = next(queue, None)  # keep the cluster busy: one new shard per finished one
            if nxt is not None:
                pending[remote.remote(fn_ref, nxt)] = nxt
            yield from results

    try:
        yield run
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if started:
            ray.shutdown()  # stops a local instance; from a cluster, only disconnects


ENGINES = {"local": local_engine, "ray": ray_engine}


def get_engine(name: str, workers: int = 1, address: str | None = None):
    """The engine context manager ``name`` (see :data:`ENGINES`)."""
    if name not in ENGINES:
        raise HitrankError(f"engine={name!r}; expected one of {', '.join(ENGINES)}")
    return ENGINES[name](workers, address)
