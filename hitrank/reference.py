"""Percentiles against a reference catalogue: "higher than 87% [78, 93] of <reference>".

A raw score (a log hit score in model units) says little to an analyst; its place among
songs they know does. A reference is a set of scores on the same scale as ``rank``'s
``score`` (the target's transformed scale, the log hit score for the default target):

* **the model's own training songs** (the default): for a ``cv`` run, every song's
  out-of-fold score (``predictions.csv``: each song scored by the fold model that never saw
  it); for a ``train`` run, its validation songs' scores (``validation.csv``, written at
  training time). Runs without them (older ``train`` runs, imported pretrained models) have
  no default reference: pass one with ``--reference``, or re-run ``hitrank train`` to write
  ``validation.csv``.
* **a catalogue**: a labels CSV or folder of songs (a label's last releases, a chart),
  scored by the same model (:func:`hitrank.rank.rank_folder` with ``reference=``; their
  features are cached like any ranked folder's).

``percentile`` is the share of reference songs scoring lower, ties counted half
(``scipy.stats.percentileofscore(kind="mean")``), 0-100; a reference song's own out-of-fold
score gets ``100 * (rank - 0.5) / n`` with ``rank`` its place from the bottom. The interval
``[percentile_lo, percentile_hi]`` is the percentile of ``score -+ INTERVAL_SDS * spread``
with ``spread = sqrt(score_std**2 + shift_spread**2)``: the disagreement of the fold models
and the score's sensitivity to moving the 30 s window (see :mod:`hitrank.curve`; 0 without
``--curve``). A ranked song's score is a fold-ensemble mean, a cv reference's are single
fold models' scores: the ensemble's smaller spread pulls extreme songs a little toward the
middle.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import ConfigError, ParameterError
from .runinfo import run_folder, run_name
from .runtime import models_dir
from .targets import Target

INTERVAL_SDS = 1.0  # half-width of the percentile interval, in score spreads (about 68%)
OOF_FILE = "predictions.csv"  # cv runs: every song's out-of-fold prediction (``pred``, raw scale)
VALIDATION_FILE = "validation.csv"  # train runs: the validation songs' predictions (``pred``)
MIN_REFERENCE = 2  # songs a reference needs for a percentile to mean anything
#: a reference of fewer songs gives coarse percentiles (one song is a step of 100/n points): warned
FEW_REFERENCE = 20

log = logging.getLogger(__name__)


def warn_if_coarse(ref: Reference | None) -> None:
    """Warn when a ranking's percentiles rest on fewer than :data:`FEW_REFERENCE` songs (a
    small run's validation songs: ``100%`` may mean "above 4 songs")."""
    if ref is not None and 0 < len(ref.scores) < FEW_REFERENCE:
        log.warning("percentiles against %s: %d songs, steps of %.0f points; read them as coarse, or pass "
                    "--reference LABELS.csv|FOLDER with a larger catalogue", ref.name, len(ref.scores),
                    100 / len(ref.scores))


@dataclass
class Reference:
    """Scores of a reference catalogue, on the ranked scores' scale.

    Attributes
    ----------
    name : in words, e.g. "the 200 training songs of runs/ab (out-of-fold)"
    scores : (n,) sorted ascending, the target's transformed scale
    song_ids : (n,) the songs, in the order of ``scores``
    """

    name: str
    scores: np.ndarray
    song_ids: np.ndarray

    def __post_init__(self):
        s = np.asarray(self.scores, dtype=np.float64)
        keep = np.isfinite(s)
        order = np.argsort(s[keep], kind="stable")
        self.scores = s[keep][order]
        self.song_ids = np.asarray(self.song_ids)[keep][order]
        if len(self.scores) < MIN_REFERENCE:
            raise ParameterError(f"reference {self.name!r} has {len(self.scores)} scored song(s); a "
                                 f"percentile needs at least {MIN_REFERENCE}")

    @property
    def sd(self) -> float:
        """Between-song spread: the standard deviation of the reference scores."""
        return float(np.std(self.scores))

    def percentile(self, values: np.ndarray) -> np.ndarray:
        """Share of reference songs scoring lower than each value, ties counted half: (n,) in
        0-100 (NaN for NaN values)."""
        v = np.asarray(values, dtype=np.float64)
        below = np.searchsorted(self.scores, v, side="left")
        upto = np.searchsorted(self.scores, v, side="right")
        p = 100.0 * (below + 0.5 * (upto - below)) / len(self.scores)
        return np.where(np.isfinite(v), p, np.nan)

    def percentiles(self, score: np.ndarray, score_std: np.ndarray, shift_spread: np.ndarray | None = None,
                    sds: float = INTERVAL_SDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(percentile, percentile_lo, percentile_hi)`` of ranked songs, each (n,) in 0-100.

        Parameters
        ----------
        score : (n,) ranked scores, the reference's scale
        score_std : (n,) the fold models' spread of each score (0 for one model)
        shift_spread : (n,) each score's spread over window shifts (NaN or None: unknown, 0)
        sds : half-width of the interval in spreads
        """
        score = np.asarray(score, dtype=np.float64)
        spread = np.nan_to_num(np.asarray(score_std, dtype=np.float64), nan=0.0) ** 2
        if shift_spread is not None:
            spread = spread + np.nan_to_num(np.asarray(shift_spread, dtype=np.float64), nan=0.0) ** 2
        half = sds * np.sqrt(spread)
        return self.percentile(score), self.percentile(score - half), self.percentile(score + half)


def describe(percentile: float, lo: float, hi: float, name: str) -> str:
    """The percentile in words: ``higher than 87% [78, 93] of <name>`` ('' when unknown; no
    interval when it has no width: one model, whose score has no spread)."""
    if not np.isfinite(percentile):
        return ""
    return f"higher than {percentile_text(percentile, lo, hi)} of {name}"


def percentile_text(percentile: float, lo: float, hi: float) -> str:
    """``87% [78, 93]``, or ``87%`` when the interval rounds to one value (a single model's
    score has no spread over models: a ``[87, 87]`` would look like certainty)."""
    if f"{lo:.0f}" == f"{hi:.0f}":
        return f"{percentile:.0f}%"
    return f"{percentile:.0f}% [{lo:.0f}, {hi:.0f}]"


def training_reference(model: str | os.PathLike, target: Target | None) -> tuple[Reference | None, str]:
    """The default reference of a run: its training songs' out-of-fold (cv) or validation
    (train) scores, mapped to the target's transformed scale.

    Parameters
    ----------
    model : the resolved run folder or checkpoint file
    target : the run's target (a fold model's: predictions are mapped from raw hit scores to
        its transformed scale, where the fold models are commensurate); None when the
        predictions are on the ranked scores' scale already (a transfer ``cv`` run's)

    Returns
    -------
    (Reference, '') or (None, why there is none, in words with the fix)
    """
    run = run_folder(model)
    for file, how in ((OOF_FILE, "out-of-fold"), (VALIDATION_FILE, "validation")):
        path = run / file
        if path.is_file():
            # song ids as written ("NA" is an id), predictions as numbers
            pred = pd.read_csv(path, dtype={"song_id": str}, keep_default_na=False,
                               na_values={"pred": ["", "nan", "NaN"]})
            if not {"song_id", "pred"} <= set(pred.columns):
                return None, f"{str(path)!r} has no song_id/pred columns"
            try:
                raw = pred["pred"].to_numpy(dtype=np.float64)
                scores = raw if target is None else target.unstandardise(target.transform(raw))
            except ConfigError as exc:
                return None, f"{str(path)!r}: its predictions do not fit the model's target ({exc})"
            what = "training songs" if how == "out-of-fold" else "validation songs"
            n = int(np.isfinite(scores).sum())
            try:
                return Reference(f"the {n} {what} of {run_name(run)} ({how})", scores, pred["song_id"].to_numpy()), ""
            except ParameterError as exc:  # fewer than MIN_REFERENCE finite scores
                return None, f"{str(path)!r}: {exc}; pass --reference LABELS.csv|FOLDER"
    if run.resolve().parent == models_dir().resolve():  # `hitrank pretrained import` put it there
        return None, (f"{run_name(run)} is an imported pretrained model: no training songs of it are at hand to "
                      "compare with; pass --reference LABELS.csv|FOLDER (a catalogue you know, scored by "
                      "the same model)")
    return None, (f"{str(run)!r} holds no {OOF_FILE} (cv) or {VALIDATION_FILE} (train): no training "
                  "songs to compare with; pass --reference LABELS.csv|FOLDER (scored by the same model), "
                  "or re-run `hitrank train` / `hitrank cv` to write them")


def ranking_reference(ranking: pd.DataFrame, name: str) -> Reference:
    """A reference from a ranking of reference songs (:func:`hitrank.rank.rank_folder`'s
    DataFrame; songs with a silent segment are left out)."""
    keep = ~ranking["silent"].astype(bool) if "silent" in ranking else np.ones(len(ranking), bool)
    return Reference(name, ranking.loc[keep, "score"].to_numpy(dtype=np.float64),
                     ranking.loc[keep, "song_id"].astype(str).to_numpy())
