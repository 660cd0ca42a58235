"""A fitted descriptor model and its checkpoint: scaler + network (or trees, or a blend) +
calibration, saved as kind ``descriptor`` (:mod:`hitrank.checkpoint`), tensors only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..checkpoint import build_model, find_checkpoints, load_payload, model_state, save_payload
from .config import DescriptorConfig, config_from_dict
from .extractor_names import LEGACY_EXTRACTOR
from .fitting import network_scores
from .prepare import Prepared, Scaler, network_inputs


class DescriptorModel:
    """A trained descriptor model: preprocessing + network + calibration (one checkpoint)."""

    def __init__(self, cfg: DescriptorConfig, columns: list, scaler: Scaler, y_std: tuple, parts: dict):
        self.cfg, self.columns, self.scaler, self.y_std, self.parts = cfg, columns, scaler, y_std, parts

    def predict(self, prep: Prepared) -> np.ndarray:
        """Hit probability (classify) or predicted target on its scale (regress), (n,)."""
        s = network_scores(self.parts["model"], network_inputs(self.cfg, prep, self.scaler, self.y_std))
        a, b = self.parts["calib"]
        z = a * s + b
        if self.cfg.data.task == "classify":
            return 1.0 / (1.0 + np.exp(-z))
        return self.y_std[0] + self.y_std[1] * z

    def save(self, path: Path, info: dict) -> None:
        """Write the checkpoint (kind ``descriptor``): config, columns, scaler, network, calibration."""
        save_payload(path, "descriptor", {
            "config": self.cfg.to_dict(), "columns": list(self.columns),
            "scaler": self.scaler.to_dict(), "y_std": [float(v) for v in self.y_std],
            "model": self.parts["name"], "kwargs": self.parts["kwargs"],
            "calib": [float(v) for v in self.parts["calib"]],
            "state_dict": model_state(self.parts["model"]), "info": info,
        })

    @classmethod
    def from_payload(cls, payload: dict) -> DescriptorModel:
        """A model from a checkpoint's payload (older checkpoints too: a missing
        ``data.extractor`` is the legacy extractor, retired config keys are dropped)."""
        data = payload["config"].setdefault("data", {})
        data.setdefault("extractor", LEGACY_EXTRACTOR)  # models older than the extractor key
        model = build_model(payload["model"], payload["kwargs"], payload["state_dict"])
        sc = payload["scaler"]
        return cls(config_from_dict(payload["config"]), payload["columns"],
                   Scaler(sc["median"], sc["mean"], sc["std"]), tuple(payload["y_std"]),
                   {"name": payload["model"], "kwargs": payload["kwargs"], "model": model,
                    "calib": tuple(payload["calib"])})


def load_models(model: str | os.PathLike) -> list[DescriptorModel]:
    """Every descriptor checkpoint of a run folder (fold ensemble) or one ``.pt`` file."""
    return [DescriptorModel.from_payload(load_payload(path, "descriptor"))
            for path in find_checkpoints(model)]
