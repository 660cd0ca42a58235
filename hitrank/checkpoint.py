"""Checkpoints: plain dicts (class name + kwargs + state + config + feature parameters).

A checkpoint holds one or more *members* whose standardised predictions are averaged with
their weights (one member for most models; two for A/B + artist fusion). Everything but the
state dicts is plain Python types, so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .data import Target
from .errors import CheckpointError
from .fileio import atomic_torch_save
from .models import build

FORMAT = "hitrank-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, members: list, target: Target, config: dict,
                    feature_params: dict, info: dict | None = None) -> None:
    """Write a checkpoint atomically.

    ``members`` is a list of ``(weight, model_name, model_kwargs, model)``.
    """
    payload = {
        "format": FORMAT,
        "members": [{"weight": float(wt), "model": name, "kwargs": kwargs,
                     "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
                    for wt, name, kwargs, model in members],
        "target": target.to_dict(),
        "config": config,
        "feature_params": feature_params,
        "info": info or {},
    }
    atomic_torch_save(payload, path)


class Scorer:
    """A loaded checkpoint: ``score(X)`` gives standardised scores, ``to_raw`` hit scores."""

    def __init__(self, payload: dict, source: str, device: torch.device):
        self.source = source
        self.target = Target(**payload["target"])
        self.feature_params = payload["feature_params"]
        self.config = payload["config"]
        self.info = payload.get("info", {})
        self.members = []
        for m in payload["members"]:
            model = build(m["model"], **m["kwargs"])
            model.load_state_dict(m["state_dict"])
            self.members.append((m["weight"], model.to(device).eval()))

    @property
    def uses_tags(self) -> bool:
        return any(getattr(m, "uses_tags", False) for _, m in self.members)

    def score(self, X: torch.Tensor, idx: np.ndarray | None = None, T: torch.Tensor | None = None) -> np.ndarray:
        """Weighted member scores, (n,) float64 in standardised target units.

        ``T`` (n, 50): tag vectors, needed by models with a tag branch.
        """
        from .train import predict

        if self.uses_tags and T is None:
            raise CheckpointError(f"{self.source!r} has a tag branch: it needs the songs' tag vectors")
        idx = np.arange(len(X)) if idx is None else idx
        return sum(wt * predict(model, X, idx, T=T if getattr(model, "uses_tags", False) else None)
                   for wt, model in self.members)

    def to_raw(self, z: np.ndarray) -> np.ndarray:
        """Standardised scores -> predicted hit scores (raw units)."""
        return self.target.inverse(z)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> Scorer:
    """Load a checkpoint safely (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r}: checkpoint file does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign files
        raise CheckpointError(f"{str(path)!r}: cannot load checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r}: not a hitrank checkpoint (format {FORMAT!r} expected)")
    return Scorer(payload, str(path), torch.device(device))


def find_checkpoints(model: str | os.PathLike) -> list[Path]:
    """A checkpoint file, or every ``fold_*.pt`` / ``model.pt`` in a run folder."""
    model = Path(model)
    if model.is_file():
        return [model]
    if model.is_dir():
        found = sorted(model.glob("fold_*.pt")) or sorted(model.glob("model.pt"))
        if found:
            return found
        raise CheckpointError(f"{str(model)!r}: no fold_*.pt or model.pt in this run folder; "
                              "train one with `hitrank cv` or `hitrank train`")
    raise CheckpointError(f"{str(model)!r}: no such run folder or checkpoint")
