"""Training targets: the transform of raw hit scores a model learns, fitted on training songs.

``log`` (default; scores > 0, like play counts), ``raw`` (any finite score, e.g. net liking
in [-1, 1]), ``rank`` (the score's percentile among the training songs, 0..1: any finite
score, robust to outliers and to the label's scale) or ``neg_inv_log10`` (the authors'
released code's ``-1/log10(x)`` for shares in (0, 1)), then standardised with the training
songs' mean and std so that the Siamese margin is in target standard deviations. Metrics
always use the raw scores. A target that cannot take a song's score is an error naming the
songs (never a silent drop or floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, LabelsError

KINDS = ("log", "raw", "rank", "neg_inv_log10")
#: what each transform accepts: a test on the raw scores and the words for the error
DOMAINS = {
    "log": (lambda y: y > 0, "hit scores > 0 (play counts, shares)"),
    "neg_inv_log10": (lambda y: (y > 0) & (y < 1), "hit scores in (0, 1), like play-count shares"),
}
SHOWN = 5  # songs named in an error before "and N more"


def check_differ(y, source: str) -> None:
    """Raise a :class:`LabelsError` when the hit scores ``y`` (n,) are all equal: nothing to
    rank (every metric would be perfect or undefined). ``source`` names the labels."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) and np.all(y == y[0]):
        raise LabelsError(f"{source}: hit_score is {y[0]:g} for every one of the {len(y)} songs; "
                          "nothing to rank: give scores that differ")


def check_scores(kind: str, y, ids=None) -> None:
    """Raise a :class:`ConfigError` naming the songs whose scores ``kind`` cannot take.

    Parameters
    ----------
    kind : target kind (:data:`KINDS`)
    y : (n,) raw hit scores
    ids : (n,) song ids for the message, or None (row numbers are named)
    """
    if kind not in KINDS:
        raise ConfigError(f"train.target={kind!r}; expected one of {list(KINDS)}")
    if kind not in DOMAINS:
        return
    ok, words = DOMAINS[kind]
    y = np.asarray(y, dtype=np.float64)
    bad = np.flatnonzero(~ok(y))
    if len(bad):
        names = [str(ids[i]) if ids is not None else f"row {i}" for i in bad[:SHOWN]]
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        others = [k for k in KINDS if k not in DOMAINS]
        raise ConfigError(
            f"train.target={kind!r} needs {words}; {len(bad)} song(s) have other scores: "
            + ", ".join(f"{n} ({y[i]:g})" for n, i in zip(names, bad, strict=False)) + more
            + f". Use train.target={others[0]} or {others[1]} (any finite score), e.g. "
            f"--set train.target={others[1]}")


@dataclass(frozen=True)
class Target:
    """Training target: ``z = (transform(y) - mean) / std``; metrics stay on raw ``y``."""

    kind: str  # raw | log | rank | neg_inv_log10
    mean: float = 0.0
    std: float = 1.0
    ref: tuple = ()  # rank: the training songs' scores, sorted (the percentile's reference)

    def _percentile(self, y: np.ndarray) -> np.ndarray:
        """Mid-rank percentile of ``y`` among :attr:`ref`, in [0, 1] (ties share the middle)."""
        ref = np.asarray(self.ref, dtype=np.float64)
        if len(ref) == 0:
            raise ConfigError("train.target='rank' needs the training scores; build it with Target.fit")
        lo = np.searchsorted(ref, y, side="left")
        hi = np.searchsorted(ref, y, side="right")
        return (lo + hi) / (2.0 * len(ref))

    def transform(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        check_scores(self.kind, y)
        if self.kind == "raw":
            t = y
        elif self.kind == "log":
            t = np.log(y)
        elif self.kind == "rank":
            t = self._percentile(y)
        else:
            t = -1.0 / np.log10(y)
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
        if self.kind == "rank":  # percentile -> the training scores' quantile
            ref = np.asarray(self.ref, dtype=np.float64)
            return np.interp(t, (np.arange(len(ref)) + 0.5) / len(ref), ref)
        return 10 ** (-1.0 / np.maximum(t, 1e-12))  # t = -1/log10(y) > 0

    @classmethod
    def fit(cls, kind: str, y: np.ndarray, ids=None) -> Target:
        """The target of training scores ``y`` (n,); ``ids`` name songs in errors."""
        y = np.asarray(y, dtype=np.float64)
        check_scores(kind, y, ids)
        ref = tuple(float(v) for v in np.sort(y)) if kind == "rank" else ()
        t = cls(kind, ref=ref).transform(y)
        return cls(kind, float(t.mean()), float(max(t.std(), 1e-12)), ref)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "mean": self.mean, "std": self.std}
        return {**d, "ref": list(self.ref)} if self.ref else d
