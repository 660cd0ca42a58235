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

import hashlib
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import ConfigError, HitrankError
from .metrics import MIN_TOP
from .store import FeatureStore
from .targets import Target  # noqa: F401  (re-exported: datasets and their targets go together)
from .whole_song import SongMels

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
    columns : labels columns read for the folds (``cv.group_by``): name -> (n,) str ('' when
        empty)
    contrast : (n, n_mels, n_frames) features of each song's contrast window, the store's
        dtype like ``features`` (``features.contrast``), or None: not asked for
        (:func:`load_dataset`) or not in the store
    whole : each song's whole log-mel with where its segment lies
        (:class:`~hitrank.whole_song.SongMels`; ``features.whole_song``, for
        ``train.window_loss``), or None
    """

    song_ids: np.ndarray
    features: np.ndarray
    scores: np.ndarray
    artists: np.ndarray
    params: dict
    tags: np.ndarray | None = None
    source: str = ""  # the store it was loaded from ('' when built in memory)
    columns: dict = field(default_factory=dict)
    contrast: np.ndarray | None = None
    whole: SongMels | None = None

    def __len__(self) -> int:
        return len(self.song_ids)


def usable_songs(manifest: pd.DataFrame) -> tuple[list[dict], list[tuple[str, str]]]:
    """The manifest rows a model may learn from, and ``(song_id, reason)`` for the others:
    songs without features, with a silent analysed segment, or without a finite score."""
    keep, problems = [], []
    for rec in manifest.to_dict("records"):
        score = rec.get("hit_score")
        if rec["status"] != "ok":
            problems.append((rec["song_id"], f"no features ({rec['status']}: {rec['error']})"))
        elif rec.get("silent", False):
            problems.append((rec["song_id"], "its analysed segment holds no sound (silent)"))
        elif score is None or not math.isfinite(float(score)):
            problems.append((rec["song_id"], "no usable hit_score (missing, not a number or not finite)"))
        else:
            keep.append(rec)
    return keep, problems


NO_FEATURES = "no features (the files could not be used; each is listed with its reason among the failures)"


def warn_left_out(problems: list[tuple[str, str]], shown: int = 5) -> None:
    """Warn of the songs :func:`usable_songs` left out: one line per reason, with how many
    songs and the first ``shown`` of them (a catalogue of 400 songs without a usable score gets
    one line, not 400)."""
    by_reason: dict[str, list[str]] = {}
    for sid, reason in problems:  # failed extractions: each file's own error is listed with the failures
        by_reason.setdefault(NO_FEATURES if reason.startswith("no features") else reason, []).append(sid)
    for reason, ids in by_reason.items():
        more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
        log.warning("%d song(s) left out (%s%s): %s", len(ids), ", ".join(repr(s) for s in ids[:shown]), more,
                    reason)


def load_dataset(store: FeatureStore, labels: pd.DataFrame | None = None, contrast: bool = False,
                 whole: bool = False) -> tuple[Dataset, list]:
    """Join a store's finished songs with labels (from the manifest or a labels table).

    ``contrast``: also load the songs' contrast windows (``train.contrast``), when the store
    holds them (``Dataset.contrast``; otherwise None). ``whole``: also load the songs' whole
    log-mels with their segment starts, durations and highlighter curves
    (``train.window_loss``; ``Dataset.whole``), when the store holds them.

    Songs without usable scores or features are left out and returned as
    ``(song_id, reason)`` problems, so nothing is dropped silently.
    """
    man = store.manifest
    if labels is not None:
        man = man.drop(columns=["artist", "hit_score"]).merge(
            labels[["song_id", "artist", "hit_score"]], on="song_id", how="left")
    keep, problems = usable_songs(man)
    if len(keep) < 3:
        raise HitrankError(f"{str(store.root)!r}: only {len(keep)} songs have features and a valid "
                           "hit_score; training needs at least 3 (to train on, validate and test; a store "
                           "extracted from a folder has no scores: extract from a labels CSV)")
    ids = np.array([r["song_id"] for r in keep])
    feats = store.load(list(ids))
    contrast = store.load_contrast(list(ids)) if contrast and store.has_contrast else None
    songs = store.load_whole(list(ids)) if whole and store.has_whole else None
    bad = np.zeros(len(feats), dtype=bool)
    if songs is not None:
        bad |= np.array([not np.isfinite(m).all() for m in songs], dtype=bool)
    for arr in (feats, contrast):
        if arr is None:
            continue
        flat = arr.reshape(len(arr), -1)
        for i in range(0, len(arr), 256):  # in chunks: a float32 copy of 15k songs would be 2.5 GB
            bad[i:i + 256] |= ~np.isfinite(flat[i:i + 256]).all(axis=1)
    if bad.any():  # never let NaN reach a model
        for sid in ids[bad]:
            problems.append((sid, "features contain NaN/inf"))
        ids, feats, keep = ids[~bad], feats[~bad], [r for r, b in zip(keep, bad, strict=True) if not b]
        contrast = contrast[~bad] if contrast is not None else None
        songs = [m for m, b in zip(songs, bad, strict=True) if not b] if songs is not None else None
    tags = store.load_tags(list(ids)) if store.has_tags else None
    if tags is not None and not np.isfinite(tags).all():
        raise HitrankError(f"{str(store.root)!r}: tags.npy holds NaN/inf; re-extract the store")
    ds = Dataset(ids, feats, np.array([float(r["hit_score"]) for r in keep]),
                 np.array(["" if pd.isna(r["artist"]) else str(r["artist"]) for r in keep]),
                 store.params.to_dict(), tags, str(store.root) if labels is None else "",
                 contrast=contrast)
    if songs is not None:
        ds.whole = SongMels(songs, np.array([float(r["seg_start"]) for r in keep]),
                            np.array([float(r["duration"]) for r in keep]),
                            ["" if pd.isna(r.get("curve")) else str(r.get("curve")) for r in keep])
    return ds, problems


# ----------------------------------------------------------------------------- folds
FOLD_HASH_BYTES = 8  # 64-bit hashes: collisions are negligible (and then broken by name)
_SONG_UNIT, _ARTIST_UNIT = "song", "artist"  # hash namespaces: an artist named like a song id


def stable_hash(seed: int, keys) -> np.ndarray:
    """A hash of ``(seed, key)`` for each key, the same in every process, platform and run.

    Parameters
    ----------
    seed : the fold seed
    keys : (n,) strings (song ids, artist names)

    Returns
    -------
    (n,) uint64 array
    """
    out = np.empty(len(keys), dtype=np.uint64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{int(seed)}\x1f{key}".encode(), digest_size=FOLD_HASH_BYTES)
        out[i] = int.from_bytes(digest.digest(), "little")
    return out


def _chunks_by_hash(ids: np.ndarray, k: int, seed: int, groups) -> list[np.ndarray]:
    """Chunks from hashes: units (songs, or artists with ``groups``) sorted by hash are cut into
    ``k`` runs of consecutive units with nearly equal song counts (a unit goes to the chunk its
    midpoint in the cumulative song count falls into). Removing one song moves each cut by at
    most one song, so only O(k) songs change chunk; without groups sizes differ by at most one."""
    n = len(ids)
    units = np.array([f"{_SONG_UNIT}\x1f{s}" for s in ids], dtype=object)
    if groups is not None:
        for i, g in enumerate(groups):
            if not (g is None or (isinstance(g, float) and math.isnan(g)) or str(g) == ""):
                units[i] = f"{_ARTIST_UNIT}\x1f{g}"  # unknown artist: the song is its own unit
    names, unit_of_song = np.unique(units, return_inverse=True)
    unit_of_song = unit_of_song.reshape(-1)
    order = np.lexsort((names.astype(str), stable_hash(seed, names)))  # by hash, then name
    size = np.bincount(unit_of_song, minlength=len(names))[order]
    midpoint = np.cumsum(size) - size / 2.0  # songs before the unit + half of its own
    chunk_of_unit = np.empty(len(names), dtype=np.int64)
    chunk_of_unit[order] = np.minimum((midpoint * k / n).astype(np.int64), k - 1)
    chunk_of_song = chunk_of_unit[unit_of_song]
    return [np.flatnonzero(chunk_of_song == c) for c in range(k)]


def check_fold_sizes(folds: list) -> list:
    """``folds`` (``(train, val, test)`` index arrays, :func:`make_folds`), refused when a test
    chunk (the next fold's validation chunk) holds fewer than
    :data:`~hitrank.metrics.MIN_TOP` songs, which cannot be ranked.

    Raises
    ------
    ConfigError
        Naming the number of folds and songs, the smallest chunk and a number of folds to try.
    """
    k, n = len(folds), sum(len(te) for _, _, te in folds)
    smallest = min(len(te) for _, _, te in folds)
    if smallest < MIN_TOP:
        raise ConfigError(f"cv.folds={k} cuts the {n} songs into chunks as small as {smallest} song(s), but "
                          f"each test chunk needs at least {MIN_TOP} to rank: "
                          + fewer_folds_hint(n, k, "; groups of songs may need fewer still"))
    return folds


def count_groups(groups: np.ndarray) -> int:
    """The number of fold groups among ``groups`` (n,) str: a song with no group ('') is its own
    (:func:`make_folds` places such songs one by one)."""
    return int(len(set(groups[groups != ""])) + (groups == "").sum())


def fewer_folds_hint(n: int, k: int, note: str = "") -> str:
    """What to do when ``n`` songs in ``k`` folds leave a chunk under :data:`~hitrank.metrics.MIN_TOP`
    songs: the most folds whose chunks (without groups) hold that many, or, under 3 x MIN_TOP
    songs, label more (``note`` follows the number of folds)."""
    fewer = min(k - 1, n // MIN_TOP)
    if fewer < 3:
        return f"label at least {3 * MIN_TOP} songs"
    return f"use fewer folds (e.g. --folds {fewer}{note}) or label more songs"


def make_folds(n: int, k: int, seed: int, groups=None, ids=None
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """k-fold splits ``(train, val, test)`` index arrays; each song is tested exactly once.

    The songs are cut into ``k`` chunks; fold ``f`` tests chunk ``f``, validates on chunk
    ``(f + 1) % k`` and trains on the rest (8:1:1 for k = 10).

    Parameters
    ----------
    n : number of songs
    k : number of folds (>= 3)
    seed : the fold seed. Pass a seed of its own (``cv.fold_seed``), not the model's: a seed
        study should change the models, not the test songs.
    groups : (n,) group names (artists, or any labels column: ``cv.group_by``), or None.
        Whole groups go to one chunk. With ``ids``, songs whose group is ``''`` (unknown)
        are placed one by one.
    ids : (n,) unique song ids, or None.
        Given: a song's chunk depends only on ``(seed, song_id)`` (or its artist's name with
        ``groups``) through a stable hash (:func:`stable_hash`), never on the row order or
        on the other songs: units sorted by hash are cut into ``k`` runs of nearly equal
        size, so the same ids give the same folds in any order, dropping one song moves
        O(k) others between chunks, and chunk sizes differ by at most one (without groups).
        None: the positional split of earlier versions: row positions are shuffled with
        ``seed`` (the same row order and seed give the same folds), groups placed largest
        first into the smallest chunk.

    Returns
    -------
    list of ``k`` tuples ``(train, val, test)`` of sorted int64 row indices.
    """
    if k < 3:
        raise ConfigError(f"cv.folds={k}: need at least 3")
    if n < k:
        raise ConfigError(f"cv.folds={k} but only {n} songs: every fold needs songs; lower cv.folds")
    if groups is not None and len(groups) != n:
        raise ConfigError(f"{len(groups)} groups (cv.group_by) for {n} songs")
    if ids is not None:
        ids = np.asarray(ids).astype(str)
        if len(ids) != n:
            raise ConfigError(f"{len(ids)} song ids for {n} songs; pass one id per song")
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ConfigError(f"duplicate song ids, e.g. {uniq[counts > 1][0]!r}: folds by id "
                              "need unique ids")
        chunks = _chunks_by_hash(ids, k, seed, groups)
        if any(len(c) == 0 for c in chunks):
            units = count_groups(np.asarray(groups).astype(str)) if groups is not None else len(ids)
            raise ConfigError(f"cv.group_by: {units} group(s) of songs cannot fill {k} folds (a fold would test "
                              "no song): " + ("lower cv.folds (--folds)" if units >= 3 else
                                             "group by another column, or drop --group-by"))
    elif groups is None:
        rng = np.random.default_rng([seed, 4242])
        chunks = np.array_split(rng.permutation(n), k)
    else:
        rng = np.random.default_rng([seed, 4242])
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
            raise ConfigError(f"cv.group_by: {len(uniq)} groups cannot fill {k} folds; lower cv.folds")
    folds = []
    for f in range(k):
        test, val = chunks[f], chunks[(f + 1) % k]
        train = np.concatenate([chunks[c] for c in range(k) if c not in (f, (f + 1) % k)])
        folds.append((np.sort(train).astype(np.int64), np.sort(val).astype(np.int64),
                      np.sort(test).astype(np.int64)))
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


def _triangle_pair(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pair number ``t`` (pairs ``i < j`` listed by ``j``, then ``i``) -> ``(i, j)``."""
    t = np.asarray(t, dtype=np.int64)
    j = ((1 + np.sqrt(1 + 8 * t.astype(np.float64))) // 2).astype(np.int64)
    j -= (j * (j - 1) // 2) > t  # float rounding: at most one step either way
    j += ((j + 1) * j // 2) <= t
    return t - j * (j - 1) // 2, j


def _ab_pairs(a_group: np.ndarray, b_group: np.ndarray, n_pairs: int,
              rng: np.random.Generator) -> np.ndarray:
    """Uniform sample without replacement from the unordered pairs with at least one song of A.

    The pairs are numbered: ``0 .. n_aa - 1`` the A-A pairs, then the ``n_a * n_b`` A-B pairs;
    numbers are drawn without replacement (numpy's Floyd / tail-shuffle sampler, memory of the
    order of ``n_pairs``) and decoded, so every such pair is equally likely.
    """
    n_a, n_b = len(a_group), len(b_group)
    n_aa = n_a * (n_a - 1) // 2
    total = n_aa + n_a * n_b
    u = rng.choice(total, size=min(n_pairs, total), replace=False).astype(np.int64)
    aa = u < n_aa
    i, j = _triangle_pair(u[aa])
    v = u[~aa] - n_aa
    pairs = np.empty((len(u), 2), dtype=np.int64)
    pairs[aa] = np.stack([a_group[i], a_group[j]], axis=1)
    pairs[~aa] = np.stack([a_group[v // n_b], b_group[v % n_b]], axis=1)
    return pairs


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
        above = scores[idx] > scores[idx].mean()
        if not above.any():  # otherwise some song is at or below the mean: group B is not empty
            raise HitrankError("A/B sampling: no training song is above the mean score")
        pairs = _ab_pairs(idx[above], idx[~above], n_pairs, rng)
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
