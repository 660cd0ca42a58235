"""Training targets: the transform of raw hit scores a model learns, fitted on training songs.

``log`` (default), ``raw`` or ``neg_inv_log10`` (the authors' released code's ``-1/log10(x)``
for shares in (0, 1)), then standardised with the training songs' mean and std so that the
Siamese margin is in target standard deviations. Metrics always use the raw scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class Target:
    """Training target: ``z = (transform(y) - mean) / std``; metrics stay on raw ``y``."""

    kind: str  # raw | log | neg_inv_log10
    mean: float = 0.0
    std: float = 1.0
    eps: float = 1e-12  # floor before the log

    def transform(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "raw":
            t = y
        elif self.kind == "log":
            t = np.log(np.maximum(y, self.eps))
        elif self.kind == "neg_inv_log10":
            if np.any((y <= 0) | (y >= 1)):
                raise ConfigError("train.target='neg_inv_log10' (-1/log10(x)) needs hit scores in "
                                  "(0, 1), like play-count shares; use train.target=log")
            t = -1.0 / np.log10(y)
        else:
            raise ConfigError(f"train.target={self.kind!r}")
        return (t - self.mean) / self.std

    def unstandardise(self, z: np.ndarray) -> np.ndarray:
        """Standardised model outputs -> the transformed scale (e.g. log hit score), where
        models of different training folds are commensurate."""
        return np.asarray(z, dtype=np.float64) * self.std + self.mean

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Standardised model outputs -> raw hit scores."""
        return self.invert(self.unstandardise(z))

    def invert(self, t: np.ndarray) -> np.ndarray:
        """The transformed scale -> raw hit scores (the inverse of the transform alone)."""
        t = np.asarray(t, dtype=np.float64)
        if self.kind == "raw":
            return t
        if self.kind == "log":
            return np.exp(np.minimum(t, 700))
        return 10 ** (-1.0 / np.maximum(t, 1e-12))  # t = -1/log10(y) > 0

    @classmethod
    def fit(cls, kind: str, y: np.ndarray) -> Target:
        t = cls(kind).transform(y)
        return cls(kind, float(t.mean()), float(max(t.std(), 1e-12)))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}
