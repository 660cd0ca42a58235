"""Checkpoints: plain dicts (class name + kwargs + state + config + feature parameters).

One format for every kind of model hitrank saves (``kind``: spectrogram scorers, descriptor
models, the attention highlighter), written by :func:`save_payload` and read by
:func:`load_payload`, the one loader (``torch.load(weights_only=True)``; a file holding
executable objects is refused in one line). Checkpoints of earlier versions are read too.

A spectrogram checkpoint holds one or more *members* whose standardised predictions are averaged with
their weights (one member for most models; two for A/B + artist fusion). Everything but the
state dicts is plain Python types, so checkpoints load with ``torch.load(weights_only=True)``.

:func:`init_weights` starts a model from the members of another checkpoint (``--init``, the
authors' released ret30 weights imported by :mod:`hitrank.pretrained`).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .errors import CheckpointError
from .features import TRAINING_ONLY
from .inference import predict
from .models import build
from .payload import FORMAT, KINDS, checkpoint_kind, load_payload, model_state, save_payload
from .runinfo import find_checkpoints
from .targets import Target

__all__ = ["FORMAT", "KINDS", "CheckpointScorer", "build_model", "checkpoint_kind", "find_checkpoints",
           "init_weights", "load_checkpoint", "load_payload", "model_state", "save_checkpoint",
           "save_payload"]


def build_model(name: str, kwargs: dict, state: dict, device="cpu") -> torch.nn.Module:
    """A registered model rebuilt from a checkpoint entry, in eval mode on ``device``."""
    model = build(name, **kwargs)
    model.load_state_dict(state)
    return model.to(device).eval()


def save_checkpoint(path: str | os.PathLike, members: list, target: Target, config: dict,
                    feature_params: dict, info: dict | None = None) -> None:
    """Write a spectrogram-model checkpoint atomically.

    ``members`` is a list of ``(weight, model_name, model_kwargs, model)``; ``feature_params``
    the store's :class:`~hitrank.features.FeatureParams` as a dict (the fields only training
    reads, :data:`~hitrank.features.TRAINING_ONLY`, are left out).
    """
    feature_params = {k: v for k, v in feature_params.items() if k not in TRAINING_ONLY}
    save_payload(path, "spectrogram", {
        "members": [{"weight": float(wt), "model": name, "kwargs": kwargs, "state_dict": model_state(model)}
                    for wt, name, kwargs, model in members],
        "target": target.to_dict(),
        "config": config,
        "feature_params": feature_params,
        "info": info or {},
    })


class CheckpointScorer:
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
        if self.uses_tags and T is None:
            raise CheckpointError(f"{self.source!r} has a tag branch: it needs the songs' tag vectors")
        idx = np.arange(len(X)) if idx is None else idx
        return sum(wt * predict(model, X, idx, T=T if getattr(model, "uses_tags", False) else None)
                   for wt, model in self.members)

    def to_raw(self, z: np.ndarray) -> np.ndarray:
        """Standardised scores -> predicted hit scores (raw units)."""
        return self.target.inverse(z)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> CheckpointScorer:
    """Load a spectrogram-model checkpoint safely (``weights_only=True``)."""
    return CheckpointScorer(load_payload(path, "spectrogram"), str(path), torch.device(device))


def init_weights(model: torch.nn.Module, spec: str | os.PathLike, input_stats: bool = False) -> list[str]:
    """Start ``model`` from the released weights of an imported model (``--init``).

    The CNN layers of a ``simple_cnn`` / ``siamese`` / ``tag_fusion`` model are copied from
    ret30's CNN and, when the model has a tag branch, the tag DNN from ret30's tag DNN (its
    inputs are tags in :data:`hitrank.constants.TAGS` order). The model's own input
    standardisation (set from its training songs) is kept unless ``input_stats``.

    Parameters
    ----------
    model : the model to start, changed in place
    spec : a spectrogram run folder or checkpoint, or an imported model's name (``yu2018-kkbox``)
    input_stats : also copy the released model's input standardisation (``in_mean``,
        ``in_std``; ret30's are 0 and 1: raw-power mel, unstandardised), so that layers kept
        frozen see the inputs they were trained on (``train.freeze``)

    Returns
    -------
    The names of the parameters set, sorted.
    """
    payload = load_payload(find_checkpoints(spec)[0], "spectrogram")
    source = payload["members"][0]["state_dict"]
    cnn = {k.removeprefix("base."): v for k, v in source.items() if k.startswith("base.net.")}
    dnn = {k: v for k, v in source.items() if k.startswith("dnn.")}
    stats = {k.rsplit(".", 1)[-1]: v for k, v in source.items() if k.endswith(("in_mean", "in_std"))}
    target = model.state_dict()
    loaded = {}
    for key in target:
        tail = key.split("net.", 1)
        if key.endswith(("in_mean", "in_std")):
            src = stats.get(key.rsplit(".", 1)[-1]) if input_stats else None
            if src is not None and src.shape == target[key].shape:
                loaded[key] = src
            continue
        if key.startswith("dnn.") or ".dnn." in key:
            src = dnn.get(key[key.index("dnn."):])
        elif len(tail) == 2:
            src = cnn.get("net." + tail[1])
        else:
            src = None
        if src is not None:
            if src.shape != target[key].shape:
                raise CheckpointError(f"--init {spec}: {key} has shape {tuple(target[key].shape)} here "
                                      f"but {tuple(src.shape)} in the released model; --init needs the "
                                      "paper's simple CNN (default model.kwargs)")
            loaded[key] = src
    if not loaded:
        raise CheckpointError(f"--init {spec}: no layer of this model matches the released ret30 CNN")
    model.load_state_dict({**target, **loaded})
    return sorted(loaded)
