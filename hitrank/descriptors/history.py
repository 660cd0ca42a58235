"""Artist-history inputs built only from each artist's *strictly earlier* songs (no leakage).

"Earlier" is decided by an order column (``decade`` in the Hit Predictor tables,
``released_year`` in the 2023 table); songs of the same artist with the same order value are
*not* each other's history, because their order is unknown. A copy of the song itself (the
same recording listed again in an earlier decade, see :func:`hitrank.descriptors.table.song_keys`)
is never its history either: its label would be the song's own.
"""

from __future__ import annotations

import numpy as np


def earlier_songs(artists: np.ndarray, order: np.ndarray, k: int,
                  songs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most recent strictly earlier songs of each song's artist.

    Parameters
    ----------
    artists : (n,) str, '' = unknown artist (no history)
    order : (n,) float, release order (NaN = unknown: no history)
    k : history length
    songs : (n,) int song keys (equal = copies of one song), or None (every row its own
        song); an earlier copy of the song is not its history

    Returns
    -------
    index : (n, k) int, row numbers of earlier songs, oldest first, -1 padding at the front
    count : (n,) int, how many earlier songs the artist has in all (may exceed k)
    """
    n = len(artists)
    index = np.full((n, k), -1, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    groups: dict[str, list[int]] = {}
    for i, a in enumerate(artists):
        if a and np.isfinite(order[i]):
            groups.setdefault(a, []).append(i)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        rows = np.array(sorted(rows, key=lambda r: (order[r], r)))
        values = order[rows]
        copies = songs is not None and len(np.unique(songs[rows])) < len(rows)
        for j, r in enumerate(rows):
            n_prev = int(np.searchsorted(values, values[j], side="left"))
            prev = rows[:n_prev]
            if copies:
                prev = prev[songs[prev] != songs[r]]
            count[r] = len(prev)
            prev = prev[max(0, len(prev) - k):]
            if len(prev):
                index[r, k - len(prev):] = prev
    return index, count


def history_features(X: np.ndarray, y: np.ndarray, artists: np.ndarray, order: np.ndarray,
                     songs: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Summary features of all strictly earlier songs of the artist (copies of the song excluded).

    Parameters
    ----------
    X : (n, F) descriptors (NaN allowed; ignored in the means)
    y : (n,) target of each song (hit 0/1 or transformed streams)
    songs : (n,) int song keys or None, see :func:`earlier_songs`

    Returns
    -------
    H : (n, 3 + F) float: ``has_history``, ``log1p(n_earlier)``, ``earlier_target_mean``, then
        the mean of each descriptor over the earlier songs (0 where there is no history)
    names : column names of H
    """
    n, f = X.shape
    index, count = earlier_songs(artists, order, max(1, int(count_max(artists, order))), songs)
    H = np.zeros((n, 3 + f))
    for r in np.flatnonzero(count):
        prev = index[r][index[r] >= 0]
        H[r, 0] = 1.0
        H[r, 1] = np.log1p(len(prev))
        H[r, 2] = float(np.mean(y[prev]))
        with np.errstate(all="ignore"):
            H[r, 3:] = np.nan_to_num(np.nanmean(X[prev], axis=0))
    return H, ["has_history", "log_n_earlier", "earlier_target_mean"]


def count_max(artists: np.ndarray, order: np.ndarray) -> int:
    """The largest number of songs any artist has (bounds the history length)."""
    _, counts = np.unique(artists[artists != ""], return_counts=True)
    return int(counts.max()) if len(counts) else 1


def history_sequences(X: np.ndarray, y: np.ndarray, artists: np.ndarray, order: np.ndarray,
                      k: int, songs: np.ndarray | None = None) -> np.ndarray:
    """LSTM input: ``(n, k + 1, F + 2)``; per step the descriptors, the step's target and a flag.

    Steps ``0..k-1`` are the ``k`` most recent earlier songs (zeros where the artist has fewer),
    with their target and flag 0; step ``k`` is the song itself with target 0 and flag 1.
    ``X`` must already be standardised and free of NaN; ``songs`` as in :func:`earlier_songs`.
    """
    n, f = X.shape
    index, _ = earlier_songs(artists, order, k, songs)
    seq = np.zeros((n, k + 1, f + 2), dtype=np.float32)
    valid = index >= 0
    safe = np.where(valid, index, 0)
    seq[:, :k, :f] = np.where(valid[..., None], X[safe], 0.0)
    seq[:, :k, f] = np.where(valid, y[safe], 0.0)
    seq[:, k, :f] = X
    seq[:, k, f + 1] = 1.0
    return seq
