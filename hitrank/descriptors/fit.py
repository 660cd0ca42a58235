"""Playlist fit: how well does a candidate song fit a reference set (a playlist, a catalogue)?

Inputs are the Spotify-style descriptors both sets have and, when both were described with
``--tags``, the 50 MTT tag probabilities. The fit of a song is the mean log-likelihood of its standardised descriptors under a diagonal
Gaussian fitted to the reference songs (variances shrunk towards 1 so small references stay
stable): ``fit = -0.5 * mean_j ((x_j - mu_j) / sigma_j)^2``. Higher fits better; 0 is the
reference's centre.

Evaluated as in the playlist-membership seed: given two playlists A and B, which one did a
held-out song come from? The song goes to the playlist it fits better; compared, on the same
folds, with a logistic-regression classifier trained on A vs B and with chance (0.5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import HitrankError
from .table import DESCRIPTORS, DescriptorTable, numeric_column


def common_columns(a: DescriptorTable, b: DescriptorTable) -> list[str]:
    """Descriptor columns with values in both tables, plus shared ``tag_*`` columns."""
    cols = [c for c in a.present() if c in b.present()]
    cols += [c for c in a.frame.columns if c.startswith("tag_") and c in b.frame.columns]
    if not cols:
        raise HitrankError(f"no descriptor column is shared by {a.sources[0]!r} and {b.sources[0]!r}; "
                           f"expected some of {list(DESCRIPTORS)}")
    return cols


def matrix(table: DescriptorTable, cols: list[str]) -> np.ndarray:
    return np.column_stack([numeric_column(table.frame[c]).to_numpy(float) for c in cols])


class PlaylistModel:
    """Diagonal Gaussian over a reference set; ``fit(X)`` scores candidates (n,)."""

    def __init__(self, ref: np.ndarray, shrink: float = 10.0):
        if len(ref) < 2:
            raise HitrankError(f"the reference set has {len(ref)} usable song(s); need at least 2")
        with np.errstate(all="ignore"):
            self.median = np.nan_to_num(np.nanmedian(ref, axis=0))
        ref = np.where(np.isnan(ref), self.median, ref)
        self.scale = np.where(ref.std(axis=0) > 1e-12, ref.std(axis=0), 1.0)
        z = (ref - ref.mean(axis=0)) / self.scale
        n = len(ref)
        self.mu = ref.mean(axis=0)
        self.var = (n * z.var(axis=0) + shrink) / (n + shrink)

    def fit(self, X: np.ndarray) -> np.ndarray:
        X = np.where(np.isnan(X), self.median, X)
        z = (X - self.mu) / self.scale
        return -0.5 * np.mean(z ** 2 / self.var, axis=1)


def rank_candidates(reference: DescriptorTable, candidates: DescriptorTable) -> pd.DataFrame:
    """Candidates sorted by fit, best first: ``rank, id, artist, fit`` and the columns used."""
    cols = common_columns(reference, candidates)
    fit = PlaylistModel(matrix(reference, cols)).fit(matrix(candidates, cols))
    frame = pd.DataFrame({"id": candidates.ids, "artist": candidates.artists, "fit": fit})
    if "path" in candidates.frame:
        frame["path"] = candidates.frame["path"].to_numpy()
    frame = frame.sort_values("fit", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    frame.attrs["columns"] = cols
    return frame


def fit_sources(reference, candidates, workers: int = 1, progress: bool = True, tags: bool = False):
    """``hitrank fit``: rank the candidates (folder of audio or descriptor CSV) by their fit to
    the reference set. Returns ``(ranking, n_reference_songs, failures)``."""
    from .apply import table_from_source

    if tags:
        from ..tags.musicnn import checkpoint_dir

        checkpoint_dir()  # fail before any work when the musicnn wheel is missing
    ref, f1 = table_from_source(reference, workers, progress, tags=tags)
    cand, f2 = table_from_source(candidates, workers, progress, tags=tags)
    return rank_candidates(ref, cand), len(ref), f1 + f2


def evaluate_two_playlists(a: np.ndarray, b: np.ndarray, folds: int = 10, seed: int = 0) -> dict:
    """Which-playlist accuracy of the fit rule vs logistic regression, k-fold, equal sizes.

    The longer playlist is cut to the length of the shorter (as the seed did), so chance is
    0.5. Returns mean and std over folds of ``accuracy`` and ``roc_auc`` per method.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    if n < folds:
        raise HitrankError(f"playlists of {len(a)} and {len(b)} songs: need at least {folds} each")
    a, b = a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]
    X, y = np.vstack([a, b]), np.r_[np.ones(n), np.zeros(n)]
    res: dict = {"fit": [], "logistic": [], "chance": []}
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        fa = PlaylistModel(X[tr][y[tr] == 1]).fit(X[te])
        fb = PlaylistModel(X[tr][y[tr] == 0]).fit(X[te])
        margin = fa - fb
        med = np.nanmedian(X[tr], axis=0)
        Xtr, Xte = np.where(np.isnan(X[tr]), med, X[tr]), np.where(np.isnan(X[te]), med, X[te])
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-12
        lr = LogisticRegression(max_iter=2000).fit((Xtr - mu) / sd, y[tr])
        p = lr.predict_proba((Xte - mu) / sd)[:, 1]
        res["fit"].append((np.mean((margin > 0) == y[te]), roc_auc_score(y[te], margin)))
        res["logistic"].append((np.mean((p >= 0.5) == y[te]), roc_auc_score(y[te], p)))
        res["chance"].append((0.5, 0.5))
    out = {"n_per_playlist": n, "folds": folds}
    for k, v in res.items():
        v = np.array(v)
        out[k] = {"accuracy": float(v[:, 0].mean()), "accuracy_std": float(v[:, 0].std(ddof=1)),
                  "roc_auc": float(v[:, 1].mean()), "roc_auc_std": float(v[:, 1].std(ddof=1))}
    return out
