"""Checkpoints: plain dicts (class name + kwargs + state + config + feature parameters).

One format for every kind of model hitrank saves (``kind``: spectrogram scorers, descriptor
models, the attention highlighter), written by :func:`save_payload` and read by
:func:`load_payload`, the one loader (``torch.load(weights_only=True)``; a file holding
executable objects is refused in one line). Checkpoints of earlier versions are read too.

A spectrogram checkpoint holds one or more *members* whose standardised predictions are averaged with
their weights (one member for most models; two for A/B + artist fusion). Everything but the
state dicts is plain Python types, so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError
from .models import build
from .payload import FORMAT, KINDS, checkpoint_kind, load_payload, model_state, save_payload
from .targets import Target

__all__ = ["FORMAT", "KINDS", "Scorer", "build_model", "checkpoint_kind", "find_checkpoints",
           "load_checkpoint", "load_payload", "model_state", "save_checkpoint", "save_payload"]

def build_model(name: str, kwargs: dict, state: dict, device="cpu") -> torch.nn.Module:
    """A registered model rebuilt from a checkpoint entry, in eval mode on ``device``."""
    model = build(name, **kwargs)
    model.load_state_dict(state)
    return model.to(device).eval()


def save_checkpoint(path: str | os.PathLike, members: list, target: Target, config: dict,
                    feature_params: dict, info: dict | None = None) -> None:
    """Write a spectrogram-model checkpoint atomically.

    ``members`` is a list of ``(weight, model_name, model_kwargs, model)``.
    """
    save_payload(path, "spectrogram", {
        "members": [{"weight": float(wt), "model": name, "kwargs": kwargs, "state_dict": model_state(model)}
                    for wt, name, kwargs, model in members],
        "target": target.to_dict(),
        "config": config,
        "feature_params": feature_params,
        "info": info or {},
    })


class Scorer:
    """A loaded checkpoint: ``score(X)`` gives standardised scores, ``to_raw`` hit scores."""

    def __init__(self, payload: dict, source: str, device: torch.device):
        self.source = source
        self.target = Target(**payload["target"])
        self.feature_params = payload["feature_params"]
        self.config = payload["config"]
        self.info = payload.get("info", {})
        self.members = [(m["weight"], build_model(m["model"], m["kwargs"], m["state_dict"], device))
                        for m in payload["members"]]

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
    """Load a spectrogram-model checkpoint safely (``weights_only=True``)."""
    return Scorer(load_payload(path, "spectrogram"), str(path), torch.device(device))


def find_checkpoints(model: str | os.PathLike) -> list[Path]:
    """A checkpoint file, or every ``fold_*.pt`` / ``model.pt`` in a run folder (or in an
    imported pretrained model, named like ``yu2018-kkbox``)."""
    from .runinfo import resolve_model

    model = resolve_model(model)
    if model.is_file():
        return [model]
    if model.is_dir():
        found = sorted(model.glob("fold_*.pt")) or sorted(model.glob("model.pt"))
        if found:
            return found
        raise CheckpointError(f"{str(model)!r}: no fold_*.pt or model.pt in this run folder; "
                              "train one with `hitrank cv` or `hitrank train`")
    raise CheckpointError(f"{str(model)!r}: no such run folder or checkpoint")
