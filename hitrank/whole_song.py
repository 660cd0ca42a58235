"""Whole-song training of a fully convolutional scorer (``train.window_loss``).

A model trained on one 30 s segment per song scores every window of ``rank --curve``, but it
never trained on the windows it then ranks by (``--segment best``): the maximum of its curve
over-rates windows it never saw. Whole-song training shows it each training song whole. One
pass of the model over a song's whole log-mel gives its per-frame scores; every 30 s window
(hop about :data:`TRAIN_HOP_SECONDS`, a multiple of the model's frame stride) is scored as the
mean of its run of per-frame scores, as :mod:`hitrank.curve` scores them; the loss asks:

* the song's **best window** to match its hit score (squared error, weight
  ``train.window_loss``: multiple-instance learning, the song is a bag of windows);
* its **analysed segment** (the store's ``seg_start``) to match it too (the paper's rating
  loss, weight 1);
* with ``train.contrast``, the segment to score above the song's **contrast window** (the
  within-song hinge of :func:`hitrank.losses.within_song_loss`), the window chosen on the
  store's highlighter curve by :func:`hitrank.thumbnail.contrast_window`.

The segment and the contrast window are read off the whole-song pass at their start rounded to
the model's frame stride (within 2 frames, 0.19 s, of the stored segment, whose own edge
frames differ slightly). Validation (early stopping, and the per-epoch ``val_*`` columns of
``curves.csv``) is on the best window's squared error. Training batches hold songs of similar
length (sorted by length with a random jitter of up to :data:`LENGTH_JITTER`, so that batches
differ from epoch to epoch, cut into batches, the batch order shuffled), padded to the longest;
a window that reaches into the padding is never scored.

Memory: the store's whole log-mels are memory-mapped (processes share them through the page
cache); on a GPU the training and validation songs of a fold are copied to it (float16: about
0.5 MB per 3-minute song, 0.3 GB for 600 songs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError
from .inference import window_means
from .thumbnail.window import contrast_window

TRAIN_HOP_SECONDS = 1.0  # s, target hop between the scored windows of a training song
VALIDATION_BATCH = 32  # songs per validation pass
#: frames a batch may hold (songs x the longest): 16 songs of 10 minutes at 10.8 frames/s;
#: a batch of longer songs holds fewer (an hour-long mix trains alone)
BATCH_FRAMES = 16 * 6460
STATS_CHUNK = 64  # songs at a time when computing input statistics
LENGTH_JITTER = 0.1  # songs are sorted into batches by length x U(1 - j, 1 + j)


@dataclass
class SongMels:
    """The whole log-mels of a dataset's songs and where their segments lie (from a store made
    with ``features.whole_song``).

    Attributes
    ----------
    mels : n arrays (n_mels, n_song_frames), the store's dtype
    seg_start : (n,) s, start of each song's analysed segment
    duration : (n,) s
    curves : n JSON texts, each song's per-second highlighter curve ('' when the segment
        method records none: Mid-30)
    """

    mels: list
    seg_start: np.ndarray
    duration: np.ndarray
    curves: list

    def __len__(self) -> int:
        return len(self.mels)

    def contrast_starts(self, which: str, seconds: float) -> np.ndarray:
        """(n,) s, start of each song's contrast window (``which``: median | lowest), NaN for a
        song without one (no curve, or too short: the window would be the segment)."""
        out = np.full(len(self), np.nan)
        for i, text in enumerate(self.curves):
            if not text:
                continue
            start = contrast_window(np.asarray(json.loads(text), dtype=float), float(self.duration[i]),
                                    float(self.seg_start[i]), seconds, which)
            if start != self.seg_start[i]:
                out[i] = start
        return out


def outputs_per_window(model: torch.nn.Module, n_mels: int, n_frames: int) -> int:
    """How many per-frame scores the model gives for one window of ``n_frames`` frames."""
    was = model.training
    model.eval()
    with torch.no_grad():
        device = next(model.parameters()).device
        n = model.frame_scores(torch.zeros(1, n_mels, n_frames, device=device)).shape[1]
    model.train(was)
    return int(n)


@dataclass
class WholeSongs:
    """The songs of whole-song training on the training device (:func:`whole_songs`).

    Attributes
    ----------
    mels : n tensors (n_mels, n_song_frames) on the device, at least ``n_frames`` frames each
        (None for the songs no job trains or validates on)
    lengths : (n,) int, frames of each song
    seg_frame : (n,) int, first frame of each song's segment (a multiple of ``stride``)
    con_frame : (n,) int, first frame of its contrast window, -1 when it has none
    n_frames : frames of one window; hop : frames between scored windows (a multiple of
        ``stride``); stride : the model's frames between two per-frame scores
    """

    mels: list
    lengths: np.ndarray
    seg_frame: np.ndarray
    con_frame: np.ndarray
    n_frames: int
    hop: int
    stride: int

    def batches(self, idx: np.ndarray, size: int, rng: np.random.Generator,
                max_frames: int = BATCH_FRAMES) -> list[np.ndarray]:
        """Songs ``idx`` in batches of at most ``size`` songs of similar length (little
        padding) and at most ``max_frames`` padded frames (one song at least); the length
        jitter and the batch order are drawn from ``rng``."""
        idx = np.asarray(idx)
        jitter = rng.uniform(1 - LENGTH_JITTER, 1 + LENGTH_JITTER, len(idx))
        idx = idx[np.argsort(self.lengths[idx] * jitter, kind="stable")]
        chunks, start = [], 0
        for k in range(1, len(idx) + 1):
            full = k - start == size or k == len(idx)
            if not full and (k + 1 - start) * self.lengths[idx[start: k + 1]].max() > max_frames:
                full = True
            if full:
                chunks.append(idx[start:k])
                start = k
        return [chunks[k] for k in rng.permutation(len(chunks))]

    def stack(self, ids: np.ndarray) -> torch.Tensor:
        """The songs ``ids`` padded with zeros to the longest: (B, n_mels, L) float32."""
        first = self.mels[int(ids[0])]
        X = torch.zeros(len(ids), first.shape[0], max(self.mels[int(i)].shape[1] for i in ids),
                        device=first.device)
        for k, i in enumerate(ids):
            m = self.mels[int(i)]
            X[k, :, : m.shape[1]] = m
        return X

    def input_stats(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-mel-bin mean and std over every frame of songs ``idx``; (n_mels,), (n_mels,)."""
        s = s2 = None
        count = 0
        for i in range(0, len(idx), STATS_CHUNK):
            x = torch.cat([self.mels[int(j)] for j in idx[i: i + STATS_CHUNK]], 1).double()
            s = x.sum(1) if s is None else s + x.sum(1)
            s2 = (x * x).sum(1) if s2 is None else s2 + (x * x).sum(1)
            count += x.shape[1]
        mean = s / count
        return mean.float(), torch.sqrt(torch.clamp(s2 / count - mean**2, min=0)).float()

    def window_scores(self, model: torch.nn.Module, ids: np.ndarray, n_out: int):
        """Every window's score of songs ``ids`` from one pass over each whole song.

        Returns
        -------
        scores : (B, W) float32, window ``w`` starting at frame ``w * hop``
        inside : (B, W) bool, the window lies inside the song (not in the padding)
        frame_scores : (B, L') the per-frame scores, for :meth:`score_at`
        """
        X = self.stack(ids)
        fs = model.frame_scores(X)
        starts = torch.arange((X.shape[-1] - self.n_frames) // self.hop + 1, device=X.device) * self.hop
        s = window_means(fs, starts // self.stride, n_out)
        lens = torch.as_tensor(self.lengths[ids], device=X.device)
        return s, starts[None, :] + self.n_frames <= lens[:, None], fs

    def score_at(self, fs: torch.Tensor, n_out: int, frames: np.ndarray) -> torch.Tensor:
        """The score of the window starting at frame ``frames[b]`` (a multiple of the stride)
        of song ``b``, from :meth:`window_scores`' per-frame scores ``fs``; (B,)."""
        o = torch.clamp(torch.as_tensor(frames // self.stride, device=fs.device), max=fs.shape[1] - n_out)
        return window_means(fs, o[:, None], n_out)[:, 0]

    def forward(self, model: torch.nn.Module, ids: np.ndarray, n_out: int):
        """Training scores of songs ``ids``: the best window's (B,), the segment's (B,), the
        contrast window's (B,) (the segment's again where there is none) and which songs have
        a contrast window (B,) bool."""
        s, inside, fs = self.window_scores(model, ids, n_out)
        best = s.masked_fill(~inside, float("-inf")).max(1).values
        seg = self.score_at(fs, n_out, self.seg_frame[ids])
        has = self.con_frame[ids] >= 0
        con = self.score_at(fs, n_out, np.where(has, self.con_frame[ids], self.seg_frame[ids]))
        return best, seg, con, torch.as_tensor(has, device=fs.device)

    def best_scores(self, model: torch.nn.Module, idx: np.ndarray, n_out: int) -> np.ndarray:
        """The best window's score of each song ``idx`` (evaluation mode, float32 inputs);
        (len(idx),) float64, in the order of ``idx``."""
        model.eval()
        out = np.empty(len(idx))
        order = np.argsort(self.lengths[idx], kind="stable")
        with torch.no_grad():
            for i in range(0, len(idx), VALIDATION_BATCH):
                pos = order[i: i + VALIDATION_BATCH]
                s, inside, _ = self.window_scores(model, np.asarray(idx)[pos], n_out)
                out[pos] = s.masked_fill(~inside, float("-inf")).max(1).values.double().cpu().numpy()
        return out


def whole_songs(songs: SongMels | None, features: np.ndarray, params: dict, contrast: str,
                stride: int, device: torch.device, used: np.ndarray | None = None) -> WholeSongs:
    """The songs of whole-song training on ``device``.

    Parameters
    ----------
    songs : the dataset's :class:`SongMels` (None: the store holds none, an error)
    features : (n, n_mels, n_frames) the songs' segment features; a song whose whole log-mel
        is shorter than one window trains on its (zero-padded) segment instead
    params : the store's feature parameters (``sr``, ``hop_length``, ``segment_seconds``)
    contrast : ``features.contrast`` ('' none | median | lowest)
    stride : the model's frame stride (> 0: a fully convolutional model)
    device : the training device (on the CPU the arrays are not copied)
    used : indices of the songs that are trained or validated on (None: all); only those are
        put on the device

    Raises
    ------
    ConfigError
        No whole-song log-mels, or a model without per-frame scores.
    """
    if songs is None:
        raise ConfigError("train.window_loss trains on whole songs, but the store holds no whole-song "
                          "log-mels (or load_dataset was not asked for them); set features.whole_song: "
                          "true, which extracts them into a new store")
    if stride <= 0:
        raise ConfigError("train.window_loss scores every window of a song from one pass, which needs a "
                          "fully convolutional model with per-frame scores (frame_stride > 0, e.g. "
                          "simple_cnn)")
    n_frames = features.shape[-1]
    fps = params["sr"] / params["hop_length"]
    hop = stride * max(1, int(round(TRAIN_HOP_SECONDS * fps / stride)))
    short = np.array([m.shape[1] < n_frames for m in songs.mels], dtype=bool)
    lengths = np.where(short, n_frames, [m.shape[1] for m in songs.mels]).astype(int)
    keep = np.zeros(len(songs), dtype=bool)
    keep[np.arange(len(songs)) if used is None else np.asarray(used, dtype=int)] = True
    mels = [torch.from_numpy(np.ascontiguousarray(features[i] if short[i] else m)).to(device) if keep[i]
            else None for i, m in enumerate(songs.mels)]
    last = (lengths - n_frames) // stride * stride

    def frames(seconds, which):  # seconds of songs ``which`` -> frames, multiples of the stride
        return np.minimum(np.round(np.asarray(seconds) * fps / stride).astype(int) * stride, last[which])

    seg = frames(songs.seg_start, slice(None))
    con = np.full(len(songs), -1)
    if contrast:
        starts = songs.contrast_starts(contrast, float(params["segment_seconds"]))
        has = np.isfinite(starts)
        con[has] = frames(starts[has], has)
        con[con == seg] = -1
    return WholeSongs(mels, lengths, seg, con, n_frames, hop, stride)
