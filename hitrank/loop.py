"""The one training-loop driver: epochs, validation, early stopping, the best epoch, resume.

Every model hitrank trains (the spectrogram CNNs, the descriptor networks, the attention
highlighter, the members of a model bank) goes through :class:`EpochLoop`. The caller keeps
what is specific to its model (how to train one epoch, how to validate); the loop keeps
the bookkeeping that must be the same everywhere:

* the monitored validation value (``mode='min'`` for a loss, ``'max'`` for a score), the best
  epoch (its state dict and a payload such as its validation predictions), the number of
  epochs without improvement, early stopping after ``patience`` of them;
* the learning-rate schedule (``ReduceLROnPlateau`` is stepped with the monitored value);
* one curve row per epoch;
* an end-of-epoch training state (model, optimiser, schedule, random generators, curves, the
  best epoch) written atomically to ``state_path``: a run killed at any moment continues from
  its last finished epoch and ends exactly as an uninterrupted one. The state is plain
  tensors and Python types, so it loads with ``torch.load(weights_only=True)``; it is used
  only when its ``key`` equals the run's (same config, data and seed).

Single model::

    loop = EpochLoop(model, opt, sched, epochs=30, patience=8, state_path=..., key=...,
                     rng=numpy_generator)
    for epoch in loop.epochs():
        logs = train_one_epoch(epoch)                    # {"train_loss": ...}
        value, val_logs, payload = validate(epoch)       # monitored value, logs, kept payload
        if not loop.record(epoch, logs, value, val_logs, payload):
            break
    result = loop.finish()                              # best state loaded into the model

A model bank drives several loops in lockstep (one :meth:`record` per member and epoch).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .fileio import atomic_torch_save

log = logging.getLogger(__name__)

MIN_DELTA = 1e-6  # an epoch improves on the best one by more than this
STATE_FORMAT = "hitrank-train-state/2"


@dataclass
class LoopResult:
    """What a finished loop gives back."""

    best_epoch: int  # 1-based; 0 when no epoch had a finite validation value
    best_value: float  # monitored value of the best epoch (inf / -inf when none)
    payload: object  # the payload recorded with the best epoch (None when none)
    curves: list = field(default_factory=list)  # one dict per epoch


def _plain(obj):
    """numpy arrays -> tensors (recursively), so states load with weights_only=True."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _unplain(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].cpu().numpy()
        return {k: _unplain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unplain(v) for v in obj)
    return obj


class EpochLoop:
    """Bookkeeping of one model's training (see the module docstring).

    Parameters
    ----------
    model : what is trained (anything with ``state_dict`` / ``load_state_dict``)
    optimizer, scheduler : their states are saved and restored; ``scheduler`` may be None
    epochs : the largest number of epochs
    patience : stop after this many epochs without improvement (None: never stop early)
    mode : ``min`` (a loss) or ``max`` (a score) for the monitored value
    state_path : file for the end-of-epoch training state (None: no resume)
    key : plain-typed identity of the run; a saved state with another key is ignored
    rng : numpy Generator whose state is saved (batch order, pair sampling)
    generators : torch Generators whose states are saved
    writes : whether this process writes the state (False on non-zero ranks under torchrun)
    """

    def __init__(self, model, optimizer=None, scheduler=None, *, epochs: int,
                 patience: int | None = None, mode: str = "min",
                 state_path: str | os.PathLike | None = None, key: dict | None = None,
                 rng: np.random.Generator | None = None, generators: tuple = (), writes: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}; expected 'min' or 'max'")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.max_epochs, self.patience, self.mode = epochs, patience, mode
        self.state_path = Path(state_path) if state_path is not None else None
        self.key = key
        self.rng, self.generators, self.writes = rng, tuple(generators), writes
        self.best_value = np.inf if mode == "min" else -np.inf
        self.best_epoch, self.best_state, self.payload = 0, None, None
        self.curves: list[dict] = []
        self.stale = 0
        self.first = 1
        self.active = True
        self._resume()

    # ------------------------------------------------------------------ driving
    def epochs(self) -> Iterator[int]:
        """The epochs still to run (after a resume, from the one after the saved epoch)."""
        for epoch in range(self.first, self.max_epochs + 1):
            if not self.active:
                return
            yield epoch

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best epoch so far by more than :data:`MIN_DELTA`."""
        if not np.isfinite(value):
            return False
        if self.mode == "min":
            return value < self.best_value - MIN_DELTA
        return value > self.best_value + MIN_DELTA

    def record(self, epoch: int, train_logs: dict, value: float, val_logs: dict | None = None,
               payload=None) -> bool:
        """End of an epoch: schedule, curve row, best epoch, state; False when training stops."""
        value = float(value)
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(value)
            else:
                self.scheduler.step()
        row = {"epoch": epoch, **train_logs, **(val_logs or {})}
        if self.optimizer is not None:
            row["lr"] = self.optimizer.param_groups[0]["lr"]
        self.curves.append(row)
        if self.improved(value):
            self.best_value, self.best_epoch, self.payload = value, epoch, payload
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.stale = 0
        else:
            self.stale += 1
        if (self.patience is not None and self.stale >= self.patience) or epoch >= self.max_epochs:
            self.active = False
        self._save(epoch)
        return self.active

    def finish(self) -> LoopResult:
        """Load the best epoch's weights into the model (the last ones when no epoch had a
        finite validation value) and return the result."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        else:
            log.warning("no epoch had a finite validation value; keeping the last weights")
        return LoopResult(self.best_epoch, float(self.best_value), self.payload, self.curves)

    # ------------------------------------------------------------------ resume
    def _save(self, epoch: int) -> None:
        if self.state_path is None or not self.writes:
            return
        payload = {
            "format": STATE_FORMAT, "key": self.key, "epoch": epoch, "model": self.model.state_dict(),
            "opt": self.optimizer.state_dict() if self.optimizer is not None else None,
            "sched": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": self.rng.bit_generator.state if self.rng is not None else None,
            "generators": [g.get_state() for g in self.generators],
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "curves": self.curves, "stale": self.stale, "active": self.active,
            "best": {"value": float(self.best_value), "epoch": self.best_epoch,
                     "state": self.best_state, "payload": _plain(self.payload)},
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(payload, self.state_path)

    def _resume(self) -> None:
        state = load_state(self.state_path, self.key)
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None and state["opt"] is not None:
            self.optimizer.load_state_dict(state["opt"])
        if self.scheduler is not None and state["sched"] is not None:
            self.scheduler.load_state_dict(state["sched"])
        if self.rng is not None and state["rng"] is not None:
            self.rng.bit_generator.state = state["rng"]
        for g, s in zip(self.generators, state.get("generators", []), strict=False):
            g.set_state(s.cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.curves, self.stale = state["curves"], state["stale"]
        self.active = state.get("active", True)
        b = state["best"]
        self.best_value, self.best_epoch = b["value"], b["epoch"]
        self.best_state, self.payload = b["state"], _unplain(b["payload"])
        self.first = state["epoch"] + 1
        log.info("resuming training from epoch %d (%s)", state["epoch"], self.state_path)


def load_state(path: str | os.PathLike | None, key, device: str = "cpu") -> dict | None:
    """The training state at ``path`` if it belongs to the run ``key``, else None."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a state cut by a crash: start the run again
        log.warning("ignoring unreadable training state %s (%s)", path, exc)
        return None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        log.warning("ignoring training state %s: written by another hitrank version", path)
        return None
    if state.get("key") != key:
        log.warning("ignoring training state %s: it belongs to another run", path)
        return None
    return state


def run_loop(loop: EpochLoop, train_epoch: Callable[[int], dict],
             validate: Callable[[int], tuple], progress: Callable[[str], None] | None = None
             ) -> LoopResult:
    """Drive one :class:`EpochLoop`: ``train_epoch(epoch) -> logs``, ``validate(epoch) ->
    (value, logs, payload)``; returns :meth:`EpochLoop.finish`."""
    for epoch in loop.epochs():
        logs = train_epoch(epoch)
        value, val_logs, payload = validate(epoch)
        going = loop.record(epoch, logs, value, val_logs, payload)
        if progress:
            progress(f"epoch {epoch} " + " ".join(f"{k} {v:.4f}" for k, v in
                                                  {**logs, **(val_logs or {})}.items()
                                                  if isinstance(v, float)))
        if not going:
            break
    return loop.finish()
