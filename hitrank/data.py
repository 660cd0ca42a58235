"""Datasets, target transforms, cross-validation folds and pair samplers.

Pair sampling (Yu et al. 2018, Sec. 2.3), drawn afresh every epoch from a seeded generator:

``naive``
    uniform over all unordered pairs of training songs, without replacement.
``ab``
    group A = songs whose score is above the training-set mean; every pair has at least one
    song of A (uniform over such pairs, without replacement).
``artist``
    both songs by the same artist (uniform over within-artist pairs, without replacement);
    artists with one song contribute none.
``ab_artist``
    not a sampler: an A/B model and an artist model are trained and their predictions
    averaged with a weight chosen on validation (see :mod:`hitrank.cv`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import ConfigError, HitrankError
from .store import FeatureStore

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- dataset
@dataclass
class Dataset:
    """Songs with features and labels, ready for training.

    Attributes
    ----------
    song_ids : (n,) str
    features : (n, n_mels, n_frames) float16 array (in memory)
    scores : (n,) float64 raw hit scores (finite, >= 0)
    artists : (n,) str ('' when unknown)
    tags : (n, 50) float32 MTT tag probabilities, or None when the store has no tags
    """

    song_ids: np.ndarray
    features: np.ndarray
    scores: np.ndarray
    artists: np.ndarray
    params: dict
    tags: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.song_ids)


def load_dataset(store: FeatureStore, labels: pd.DataFrame | None = None) -> tuple[Dataset, list]:
    """Join a store's finished songs with labels (from the manifest or a labels table).

    Songs without usable scores or features are left out and returned as
    ``(song_id, reason)`` problems, so nothing is dropped silently.
    """
    man = store.manifest
    if labels is not None:
        man = man.drop(columns=["artist", "hit_score"]).merge(
            labels[["song_id", "artist", "hit_score"]], on="song_id", how="left")
    problems = []
    keep = []
    for rec in man.to_dict("records"):
        score = rec.get("hit_score")
        if rec["status"] != "ok":
            problems.append((rec["song_id"], f"no features ({rec['status']}: {rec['error']})"))
        elif score is None or not math.isfinite(float(score)) or float(score) < 0:
            problems.append((rec["song_id"], f"no usable hit_score ({score!r})"))
        else:
            keep.append(rec)
    if len(keep) < 3:
        raise HitrankError(f"{str(store.root)!r}: only {len(keep)} songs have features and a valid "
                           "hit_score; training needs labelled songs (extract from a labels CSV)")
    ids = np.array([r["song_id"] for r in keep])
    feats = store.load(list(ids))
    flat = feats.reshape(len(feats), -1)
    bad = np.zeros(len(feats), dtype=bool)
    for i in range(0, len(feats), 256):  # in chunks: a float32 copy of 15k songs would be 2.5 GB
        bad[i:i + 256] = ~np.isfinite(flat[i:i + 256]).all(axis=1)
    if bad.any():  # never let NaN reach a model
        for sid in ids[bad]:
            problems.append((sid, "features contain NaN/inf"))
        ids, feats, keep = ids[~bad], feats[~bad], [r for r, b in zip(keep, bad, strict=True) if not b]
    tags = store.load_tags(list(ids)) if store.has_tags else None
    if tags is not None and not np.isfinite(tags).all():
        raise HitrankError(f"{str(store.root)!r}: tags.npy holds NaN/inf; re-extract the store")
    ds = Dataset(ids, feats, np.array([float(r["hit_score"]) for r in keep]),
                 np.array(["" if pd.isna(r["artist"]) else str(r["artist"]) for r in keep]),
                 store.params.to_dict(), tags)
    return ds, problems


# ----------------------------------------------------------------------------- targets
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

    def inverse(self, z: np.ndarray) -> np.ndarray:
        t = np.asarray(z, dtype=np.float64) * self.std + self.mean
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


# ----------------------------------------------------------------------------- folds
def make_folds(n: int, k: int, seed: int, groups=None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """k-fold splits ``(train, val, test)`` index arrays; each song is tested exactly once.

    The songs are shuffled and cut into ``k`` chunks; fold ``f`` tests chunk ``f``, validates
    on chunk ``(f + 1) % k`` and trains on the rest (8:1:1 for k = 10). With ``groups``
    (artists), whole groups go to one chunk (largest first, into the smallest chunk).
    """
    if k < 3:
        raise ConfigError(f"cv.folds={k}: need at least 3")
    if n < k:
        raise ConfigError(f"cv.folds={k} but only {n} songs: every fold needs songs; lower cv.folds")
    rng = np.random.default_rng([seed, 4242])
    if groups is None:
        chunks = np.array_split(rng.permutation(n), k)
    else:
        groups = np.asarray(groups)
        uniq = rng.permutation(np.unique(groups))
        members = {g: np.flatnonzero(groups == g) for g in uniq}
        order = sorted(uniq, key=lambda g: -len(members[g]))  # stable: ties keep shuffled order
        chunks_l: list[list[int]] = [[] for _ in range(k)]
        for g in order:
            smallest = min(range(k), key=lambda c: len(chunks_l[c]))
            chunks_l[smallest].extend(members[g].tolist())
        chunks = [np.array(sorted(c), dtype=np.int64) for c in chunks_l]
        if any(len(c) == 0 for c in chunks):
            raise ConfigError(f"cv.artist_aware: {len(uniq)} artists cannot fill {k} folds")
    folds = []
    for f in range(k):
        test, val = chunks[f], chunks[(f + 1) % k]
        train = np.concatenate([chunks[c] for c in range(k) if c not in (f, (f + 1) % k)])
        folds.append((np.sort(train), np.sort(val), np.sort(test)))
    return folds


# ----------------------------------------------------------------------------- pairs
def _unique_pairs(a: np.ndarray, b: np.ndarray, n_max: int) -> np.ndarray:
    """Drop self-pairs and repeated unordered pairs, keep draw order; (m, 2) with m <= n_max."""
    keep = a != b
    a, b = a[keep], b[keep]
    key = np.minimum(a, b).astype(np.int64) * (1 << 32) + np.maximum(a, b)
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)[:n_max]
    return np.stack([a[first], b[first]], axis=1)


def _draw(candidates_i, candidates_j, n_pairs, total, rng) -> np.ndarray:
    """Sample ``n_pairs`` distinct unordered pairs i in candidates_i, j in candidates_j."""
    n_pairs = min(n_pairs, total)
    out = np.zeros((0, 2), np.int64)
    for _ in range(50):
        need = n_pairs - len(out)
        if need <= 0:
            break
        m = 2 * need + 16
        a = rng.choice(candidates_i, m)
        b = rng.choice(candidates_j, m)
        out = _unique_pairs(np.concatenate([out[:, 0], a]), np.concatenate([out[:, 1], b]), n_pairs)
    return out


def sample_pairs(method: str, idx: np.ndarray, scores: np.ndarray, artists: np.ndarray,
                 n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Draw training pairs.

    Parameters
    ----------
    method : naive | ab | artist
    idx : (n,) indices of the training songs (into ``scores`` / ``artists``)
    scores : raw hit scores of all songs
    artists : artist names of all songs
    n_pairs : pairs wanted (fewer when fewer distinct pairs exist)
    rng : numpy Generator

    Returns
    -------
    (m, 2) int64 array of song indices; the order within a pair is random.
    """
    idx = np.asarray(idx)
    n = len(idx)
    if method == "naive":
        pairs = _draw(idx, idx, n_pairs, n * (n - 1) // 2, rng)
    elif method == "ab":
        a_group = idx[scores[idx] > scores[idx].mean()]
        if len(a_group) == 0:
            raise HitrankError("A/B sampling: no training song is above the mean score")
        n_a, n_b = len(a_group), n - len(a_group)
        pairs = _draw(a_group, idx, n_pairs, n_a * (n_a - 1) // 2 + n_a * n_b, rng)
    elif method == "artist":
        arts = artists[idx]
        within = []
        for art in np.unique(arts):
            members = idx[arts == art]
            if art == "" or len(members) < 2:
                continue
            ii, jj = np.triu_indices(len(members), 1)
            within.append(np.stack([members[ii], members[jj]], 1))
        if not within:
            raise HitrankError("artist sampling: no artist has two or more training songs; "
                               "the labels need an 'artist' column with repeated artists")
        allp = np.concatenate(within)
        pairs = allp[rng.permutation(len(allp))[: min(n_pairs, len(allp))]]
    else:
        raise ConfigError(f"pairs.sampling={method!r}; samplers: naive, ab, artist")
    flip = rng.random(len(pairs)) < 0.5
    pairs = pairs.copy()
    pairs[flip] = pairs[flip][:, ::-1]
    return pairs.astype(np.int64)
