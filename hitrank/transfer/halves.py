"""Repeated held-out halves: how a transfer config ranks songs it has never heard.

One train/test split of a few hundred songs is a noisy estimate (on emotify_dev the
within-genre Spearman of one held-out half moves by about 0.08 from split to split). Here the
labelled songs are cut in two halves at random many times: the resampling units (the groups of
``split_by``, e.g. duplicate groups or artists; a song without one is its own unit) are
assigned whole, each stratum's units halved (a unit whose songs span strata goes with its most
common stratum), so a unit never sits on both sides. The config is trained on one half (for
``real/auto``: its inner cross-validated choice of learner, on that half only) and ranks the
other, then the other way round. Each test half gets the Spearman over its songs and the mean
Spearman inside its strata (:func:`hitrank.strata.within_metrics`, one test set), next to the
stratum-mean baseline (each test song predicted by its stratum's mean label in the training
half).

The halves all come from the same songs, so their spread is not an interval for new songs:
:func:`summarize_halves` reports the mean, the spread of single halves, and the standard error
corrected for the overlap of repeated splits (Nadeau & Bengio 2003:
``sqrt((1 / J + n_test / n_train) * variance)`` over ``J`` test halves), which does not shrink
to 0 as more halves are drawn.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .. import strata
from ..errors import ParameterError
from .config import TransferConfig
from .protocol import Data, choose, fit_one, predict_one

HALF_COLUMNS = ("split", "test_half", "train_songs", "test_songs", "learner", "spearman", "spearman_within",
                "baseline_spearman", "baseline_within")


def halves(stratum: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half A of one random split, ``(n,)`` bool.

    Parameters
    ----------
    stratum : (n,) str, each song's stratum (e.g. genre)
    group : (n,) str, each song's resampling unit ('' = a unit of its own)
    rng : the random generator

    Each stratum's units are shuffled and the first half of them (rounded down) go to A; a unit
    whose songs span strata belongs to its most common stratum (ties: the first in sorted order),
    so it is never split.
    """
    stratum, group = np.asarray(stratum, dtype=str), np.asarray(group, dtype=str)
    unit = np.where(group == "", np.char.add("\0song:", np.arange(len(group)).astype(str)), group)
    home = pd.Series(stratum).groupby(unit).agg(lambda s: s.value_counts().sort_index().idxmax())
    chosen = []
    for s in sorted(set(home)):
        units = np.sort(home.index[home == s].to_numpy())
        rng.shuffle(units)
        chosen.extend(units[: len(units) // 2])
    return np.isin(unit, chosen)


def _scores(y: np.ndarray, pred: np.ndarray, stratum: np.ndarray) -> tuple[float, float]:
    """Spearman over all songs and the mean Spearman inside the strata of one test set."""
    one = np.zeros(len(y), dtype=int)
    within = strata.within_metrics(y, pred, one, stratum, n_boot=1)["mean"].get("spearman", np.nan)
    rho = spearmanr(y, pred)[0] if np.ptp(pred) > 0 else np.nan
    return float(rho), float(within)


def repeated_halves(cfg: TransferConfig, data: Data, stratum: np.ndarray, group: np.ndarray, splits: int = 20,
                    seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Train on one random half, test on the other, both ways, ``splits`` times.

    Parameters
    ----------
    cfg : the transfer config (its candidates, target, inner folds, seeds)
    data : the labelled songs with their embeddings (:func:`hitrank.transfer.protocol.load_data`);
        its sample weights (``train.weight``) are used when fitting, as in ``hitrank cv``
    stratum, group : (n,) str, see :func:`halves`; ``group`` also groups the inner folds
    splits : random splits (``2 * splits`` test halves)
    seed : seed of the splits

    Returns
    -------
    DataFrame with :data:`HALF_COLUMNS`, one row per test half (``test_half`` A or B: the half
    tested).
    """
    from tqdm import tqdm

    if splits < 1:
        raise ParameterError(f"splits={splits}: expected at least 1")
    rng = np.random.default_rng(seed)
    rows = []
    bar = tqdm(total=2 * splits, desc="held-out halves", unit="half", disable=not progress)
    for split in range(splits):
        a = halves(stratum, group, rng)
        for side, train in enumerate((a, ~a)):
            tr, te = np.flatnonzero(train), np.flatnonzero(~train)
            weight = None if data.weight is None else data.weight[tr]
            fit_seed = cfg.train.seed + 2 * split + side
            name, *_ = choose(cfg, data.X[tr], data.y[tr], data.ids[tr], group[tr], stratum[tr], fit_seed, weight)
            model = fit_one(cfg, name, data.X[tr], data.y[tr], data.ids[tr], fit_seed, weight)
            pred = predict_one(model, data.X[te])
            base = strata.stratum_mean_predictions(data.y, np.where(train, 0, 1), stratum)[te]
            (m_all, m_in), (b_all, b_in) = _scores(data.y[te], pred, stratum[te]), _scores(data.y[te], base, stratum[te])
            rows.append({"split": split, "test_half": "BA"[side], "train_songs": len(tr), "test_songs": len(te),
                         "learner": name, "spearman": m_all, "spearman_within": m_in,
                         "baseline_spearman": b_all, "baseline_within": b_in})
            bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=list(HALF_COLUMNS))


def summarize_halves(table: pd.DataFrame, column: str) -> dict:
    """Mean of ``column`` over the test halves where it is defined, the spread (standard
    deviation) of single halves, and the corrected standard error of the mean (module
    docstring); ``n`` halves used, ``undefined`` left out (NaN: e.g. constant predictions)."""
    v = table[column].to_numpy(dtype=float)
    ok = np.isfinite(v)
    n = int(ok.sum())
    sd = float(np.std(v[ok], ddof=1)) if n > 1 else math.nan
    ratio = float(table.test_songs.mean() / table.train_songs.mean()) if n else math.nan
    return {"mean": float(v[ok].mean()) if n else math.nan, "sd": sd,
            "se": math.sqrt((1 / n + ratio) * sd ** 2) if n > 1 else math.nan,
            "n": n, "undefined": int((~ok).sum())}


__all__ = ["HALF_COLUMNS", "halves", "repeated_halves", "summarize_halves"]
