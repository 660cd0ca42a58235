"""Hit-potential curve: a model's score for every 30 s window of a whole song.

The paper's CNNs score one 30 s log-mel segment. A song's whole log-mel is computed once
(the same STFT as the store's: a window that starts on a frame boundary is the same
columns of the whole-song log-mel, up to the zero padding of its two edge frames), cut into
30 s windows every :data:`CURVE_HOP_SECONDS` (rounded to whole STFT frames: 11 frames,
1.02 s, at the paper's 22050 Hz and hop 2048), and the windows are scored in batches by
every fold model of a run. The curve is the mean over the fold models on the target's
transformed scale (the log hit score for the default target), like ``rank``'s ``score``.

* **Best window**: the window with the highest curve value (``best_start``, ``best_end``,
  ``best_score``). The analysed segment, scored as ``rank`` scores it, is one more window off
  the grid (:meth:`PotentialCurve.with_window`): ``best_score`` is never below ``score``.
* **Shift spread**: the standard deviation of the ensemble score over the analysed window
  moved by :data:`SHIFTS_SECONDS` (from -1 s to +1 s, sub-frame shifts included: a move of
  a few tens of milliseconds changes the STFT frames, and the authors' KKBOX CNN is known to
  react to it). The windows are cut from the decoded audio at the exact sample, not from
  the frame grid.
* **Unstable**: a song whose shift spread exceeds :data:`UNSTABLE_SHARE` of the
  between-song spread (the standard deviation of the reference songs' scores, see
  :mod:`hitrank.reference`) is flagged ``unstable``: moving its window by less than a second
  moves it in the ranking by more than a quarter of the typical difference between songs.

Models with a tag branch read the 50 tag probabilities of the song's analysed segment for
every window (tagging every window would cost a tagger pass per second of audio): their curve
varies through the audio branch only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import audio, segments
from .checkpoint import find_checkpoints, load_checkpoint
from .errors import CheckpointError, ParameterError
from .features import FeatureParams, log_mel
from .inference import window_means
from .runtime import pick_device
from .tags import segment_tags

log = logging.getLogger(__name__)

CURVE_HOP_SECONDS = 1.0  # s, target hop between curve windows (rounded to whole STFT frames)
#: s, moves of the analysed window whose scores give the shift spread (0 = the window itself)
SHIFTS_SECONDS = (-1.0, -0.5, -0.25, -0.1, -0.05, 0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
UNSTABLE_SHARE = 0.25  # shift spread above this share of the between-song spread: ``unstable``
CURVE_BATCH = 64  # windows scored at once (64 x 128 x 323 float32: 10 MB)


def load_scorers(model: str | os.PathLike, device: torch.device):
    """Load every checkpoint of a run (a fold ensemble, one model, or an imported pretrained
    model's name); they must share feature parameters and target kind."""
    scorers = [load_checkpoint(p, device) for p in find_checkpoints(model)]
    first = scorers[0]
    for s in scorers[1:]:
        if s.feature_params != first.feature_params:
            raise CheckpointError(f"{s.source!r} was trained on other features than {first.source!r}")
        if s.target.kind != first.target.kind:
            raise CheckpointError(f"{s.source!r} predicts a {s.target.kind!r} target, {first.source!r} "
                                  f"a {first.target.kind!r} one: they cannot be averaged")
    return scorers


@dataclass
class PotentialCurve:
    """A song's hit-potential curve and what is read off it.

    Attributes
    ----------
    starts : (n_windows,) s, start of each 30 s window in the song
    scores : (n_windows,) fold-ensemble mean score of each window, on the target's
        transformed scale (the log hit score for the default ``log`` target)
    fold_scores : (n_models, n_windows) each fold model's scores, same scale
    seconds : s, window length
    duration : s, the song's duration
    best_start, best_end, best_score : the best window (s, s, score)
    analysed_start : s, start of the window the shift spread is measured around
    shift_scores : (len(SHIFTS_SECONDS),) ensemble scores of the analysed window moved by
        :data:`SHIFTS_SECONDS` (clipped to the song)
    shift_spread : standard deviation of ``shift_scores``, same scale as ``scores``
    """

    starts: np.ndarray
    scores: np.ndarray
    fold_scores: np.ndarray
    seconds: float
    duration: float
    analysed_start: float
    shift_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def best(self) -> int:
        """Index of the best window (the first of equals)."""
        return int(np.argmax(self.scores))

    @property
    def best_start(self) -> float:
        return float(self.starts[self.best])

    @property
    def best_end(self) -> float:
        """The best window's end (s), at most the song's end (the last window's frames may reach
        a fraction of a frame past it)."""
        return min(self.best_start + self.seconds, max(self.duration, self.best_start))

    @property
    def best_score(self) -> float:
        return float(self.scores[self.best])

    @property
    def shift_spread(self) -> float:
        return float(np.std(self.shift_scores)) if len(self.shift_scores) else float("nan")

    def with_window(self, start: float, fold_scores) -> PotentialCurve:
        """This curve with one more window: the analysed segment at ``start`` (s) scored the way
        ranking scores it (its own samples, or the released centre-frame rule of the KKBOX
        model), ``fold_scores`` (n_models,) on the curve's scale. The curve's own windows sit
        on the whole song's frame grid and may miss the segment by a fraction of a frame, which
        moves the scores of shift-sensitive models; with it, the best window never scores below
        the segment that ``rank`` reports."""
        f = np.asarray(fold_scores, dtype=np.float64).reshape(-1, 1)
        if f.shape[0] != self.fold_scores.shape[0]:
            raise ParameterError(f"fold_scores has {f.shape[0]} models' scores; the curve has "
                                 f"{self.fold_scores.shape[0]}")
        i = int(np.searchsorted(self.starts, start, side="right"))
        fold = np.insert(self.fold_scores, i, f[:, 0], axis=1)
        return replace(self, starts=np.insert(self.starts, i, float(start)), scores=fold.mean(axis=0),
                       fold_scores=fold)

    def to_dict(self, decimals: int = 4) -> dict:
        """JSON-ready summary (the curve rounded to ``decimals``)."""
        return {"starts": np.round(self.starts, 3).tolist(), "scores": np.round(self.scores, decimals).tolist(),
                "best_start": round(self.best_start, 3), "best_end": round(self.best_end, 3),
                "best_score": round(self.best_score, decimals), "shift_spread": round(self.shift_spread, decimals),
                "analysed_start": round(self.analysed_start, 3), "duration": round(self.duration, 3)}


def hop_frames(params: FeatureParams, hop_seconds: float = CURVE_HOP_SECONDS, multiple: int = 1) -> int:
    """Curve hop in STFT frames: ``hop_seconds`` rounded to a whole number of ``multiple``
    frames (at least one multiple)."""
    if not hop_seconds > 0:
        raise ParameterError(f"hop_seconds={hop_seconds!r}; expected a positive number of seconds")
    multiple = max(1, int(multiple))
    return multiple * max(1, int(round(hop_seconds * params.sr / params.hop_length / multiple)))


def frame_stride(scorers) -> int:
    """The per-frame stride every member model of ``scorers`` shares, or 0 when one has no
    per-frame scores (then every window goes through the model on its own)."""
    if not all(getattr(s, "members", None) for s in scorers):  # e.g. a plain scoring function
        return 0
    strides = {int(getattr(m, "frame_stride", 0)) for s in scorers for _, m in s.members}
    return strides.pop() if len(strides) == 1 else 0


def _frame_window_means(model, mel: torch.Tensor, windows: torch.Tensor, hop: int,
                        T: torch.Tensor | None) -> np.ndarray | None:
    """Every window's score from one pass of a fully convolutional model over the whole song:
    the mean of the window's run of per-frame scores, (n_windows,) float64; None when the
    shortcut does not reproduce the first and the last window's own scores (then the caller
    scores every window)."""
    stride = model.frame_stride
    tag = (T[:1],) if T is not None else ()
    whole = model.frame_scores(mel[None], *tag)[0].double()  # (T',)
    first = model.frame_scores(windows[:1].contiguous(), *tag)[0].double()  # (n_out,)
    n_out = len(first)
    offsets = np.arange(windows.shape[0]) * (hop // stride)
    if hop % stride or offsets[-1] + n_out > len(whole):
        return None
    last = model.frame_scores(windows[-1:].contiguous(), *tag)[0].double()
    end = whole[offsets[-1]: offsets[-1] + n_out]
    # the first window matches for any network; the last one checks the stride and the offsets
    if not (torch.allclose(whole[:n_out], first, rtol=1e-4, atol=1e-4)
            and torch.allclose(end, last, rtol=1e-4, atol=1e-4)):
        log.warning("%s: per-frame scores of the whole song differ from a window's; scoring each "
                    "window on its own", type(model).__name__)
        return None
    return window_means(whole, torch.as_tensor(offsets), n_out).cpu().numpy()


def window_mels(mel: torch.Tensor, params: FeatureParams, hop: int) -> tuple[torch.Tensor, np.ndarray]:
    """30 s windows of a whole-song log-mel every ``hop`` frames, without copying.

    Parameters
    ----------
    mel : (n_mels, n_song_frames) the song's log-mel, at least ``params.n_frames`` frames
    params : the model's feature parameters
    hop : frames between window starts

    Returns
    -------
    windows : (n_windows, n_mels, params.n_frames) a view of ``mel``
    starts : (n_windows,) s, window starts
    """
    n = params.n_frames
    if mel.shape[-1] < n:
        raise ParameterError(f"a song log-mel of {mel.shape[-1]} frames is shorter than one "
                             f"{params.segment_seconds:g} s window ({n} frames); pad the audio first")
    windows = mel.unfold(-1, n, hop).permute(1, 0, 2)  # (n_windows, n_mels, n)
    starts = np.arange(windows.shape[0]) * hop * params.hop_length / params.sr
    return windows, starts


def score_song_windows(scorers, mel: torch.Tensor, windows: torch.Tensor, hop: int,
                       tags: np.ndarray | None = None) -> np.ndarray:
    """Every model's score of every window of a song, (n_models, n_windows) float64 on each
    target's transformed scale: from one pass over the whole song for fully convolutional
    models (``frame_stride`` dividing ``hop``; equal to scoring each window, tested), else
    window by window (:func:`score_windows`).

    Parameters
    ----------
    mel : (n_mels, n_song_frames) the song's log-mel; windows : its (n_windows, n_mels,
    n_frames) windows every ``hop`` frames (:func:`window_mels`); tags : (50,) as in
    :func:`score_windows`
    """
    if not frame_stride(scorers) or hop % frame_stride(scorers):
        return score_windows(scorers, windows, tags)
    if any(s.uses_tags for s in scorers) and tags is None:
        raise CheckpointError(f"{scorers[0].source!r} has a tag branch: pass the song's tag vector")
    T = torch.as_tensor(np.asarray(tags, np.float32), device=mel.device)[None] if tags is not None else None
    out = np.zeros((len(scorers), windows.shape[0]))
    for k, s in enumerate(scorers):
        z = 0.0
        for wt, model in s.members:
            model.eval()
            means = _frame_window_means(model, mel, windows, hop, T if getattr(model, "uses_tags", False) else None)
            if means is None:
                return score_windows(scorers, windows, tags)
            z = z + wt * means
        out[k] = s.target.unstandardise(z)
    return out


def score_windows(scorers, windows: torch.Tensor, tags: np.ndarray | None = None,
                  batch: int = CURVE_BATCH) -> np.ndarray:
    """Every model's score of every window, on each target's transformed scale.

    Parameters
    ----------
    scorers : loaded checkpoints (:func:`load_scorers`)
    windows : (n_windows, n_mels, n_frames) log-mels on the scorers' device
    tags : (50,) tag probabilities used for every window, for models with a tag branch

    Returns
    -------
    (n_models, n_windows) float64
    """
    if any(s.uses_tags for s in scorers) and tags is None:
        raise CheckpointError(f"{scorers[0].source!r} has a tag branch: pass the song's tag vector")
    out = np.zeros((len(scorers), windows.shape[0]))
    for i in range(0, windows.shape[0], batch):
        X = windows[i: i + batch].contiguous()
        T = None
        if tags is not None:
            T = torch.as_tensor(np.asarray(tags, np.float32), device=X.device).expand(len(X), -1)
        for m, s in enumerate(scorers):
            out[m, i: i + len(X)] = s.target.unstandardise(s.score(X, T=T))
    return out


def _store_dtype(params: FeatureParams):
    # windows are rounded like the store's features, so the model sees the inputs it trained on
    return getattr(torch, params.dtype)


def song_curve(y: np.ndarray, params: FeatureParams, scorers, analysed_start: float = 0.0,
               duration: float | None = None, tags: np.ndarray | None = None,
               hop_seconds: float = CURVE_HOP_SECONDS, device: torch.device | str = "cpu",
               shifts: tuple = SHIFTS_SECONDS) -> PotentialCurve:
    """The hit-potential curve of a decoded song.

    Parameters
    ----------
    y : (n_samples,) mono audio at ``params.sr``
    params : the models' feature parameters
    scorers : loaded checkpoints sharing ``params``
    analysed_start : s, start of the window whose shift spread is measured (the configured
        segment, or the best window)
    duration : s, the song's duration (default ``len(y) / sr``)
    tags : (50,) the analysed segment's tag probabilities, for models with a tag branch
    hop_seconds : s, target hop between windows
    device : where the log-mel and the models run
    shifts : s, moves of the analysed window for the shift spread

    Returns
    -------
    PotentialCurve
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"song_curve expects mono audio (n,), got shape {y.shape}")
    seg = int(round(params.segment_seconds * params.sr))
    duration = len(y) / params.sr if duration is None else float(duration)
    if len(y) < seg:  # short song: one window, zero-padded like the store's segment
        y = np.pad(y, (0, seg - len(y)))
    dtype = _store_dtype(params)
    with torch.inference_mode():
        mel = log_mel(y, params, device=device).to(dtype)
        hop = hop_frames(params, hop_seconds, frame_stride(scorers))
        windows, starts = window_mels(mel, params, hop)
        fold = score_song_windows(scorers, mel, windows, hop, tags)
    return PotentialCurve(starts, fold.mean(axis=0), fold, params.segment_seconds, duration,
                          float(analysed_start), shift_scores(y, params, scorers, analysed_start, tags, device, shifts))


def shift_scores(y: np.ndarray, params: FeatureParams, scorers, analysed_start: float,
                 tags: np.ndarray | None = None, device: torch.device | str = "cpu",
                 shifts: tuple = SHIFTS_SECONDS) -> np.ndarray:
    """Fold-ensemble scores of the window at ``analysed_start`` (s) moved by each of ``shifts``
    (s, clipped to the song): ``(len(set of clipped starts),)``, the curve's scale; ``y``
    (n_samples,) mono at ``params.sr``, zero-padded here when shorter than a window."""
    seg = int(round(params.segment_seconds * params.sr))
    y = np.pad(y, (0, max(0, seg - len(y))))
    firsts = sorted({min(max(0, int(round((analysed_start + s) * params.sr))), len(y) - seg) for s in shifts})
    crops = np.stack([y[f: f + seg] for f in firsts])
    with torch.inference_mode():
        mel = log_mel(crops, params, device=device).to(_store_dtype(params))
        return score_windows(scorers, mel, tags).mean(axis=0)


def unstable(shift_spread: np.ndarray, between_song_sd: float, share: float = UNSTABLE_SHARE) -> np.ndarray:
    """``shift_spread > share * between_song_sd`` per song, (n,) bool (False where the shift
    spread or the between-song spread is unknown)."""
    s = np.asarray(shift_spread, dtype=np.float64)
    if not np.isfinite(between_song_sd) or between_song_sd <= 0:
        return np.zeros(s.shape, dtype=bool)
    return np.nan_to_num(s, nan=0.0) > share * between_song_sd


def potential_curve(path: str | os.PathLike, model: str | os.PathLike, device: str = "auto",
                    hop_seconds: float = CURVE_HOP_SECONDS, highlighter: str | os.PathLike | None = None,
                    analysed: str = "segment") -> PotentialCurve:
    """The hit-potential curve of one audio file under a run's fold ensemble.

    Parameters
    ----------
    path : an audio file
    model : a run folder, a checkpoint, or an imported pretrained model's name
    device : auto | cpu | cuda
    hop_seconds : s, target hop between windows (rounded to whole STFT frames)
    highlighter : the attention highlighter of an HL-30 model (default: its config's)
    analysed : ``segment`` (the shift spread is measured around the model's configured
        segment: Mid-30, HL-30) or ``best`` (around the best window)

    Returns
    -------
    PotentialCurve : ``scores`` (n_windows,) on the target's transformed scale, one per
        window start in ``starts`` (s); ``best_start``/``best_end`` (s), ``best_score``,
        ``shift_spread``
    """
    if analysed not in ("segment", "best"):
        raise ParameterError(f"analysed={analysed!r}; expected 'segment' or 'best'")
    dev = pick_device(device)
    scorers = load_scorers(model, dev)
    params = FeatureParams.from_dict(scorers[0].feature_params)
    method = segments.get(params.segment)
    recorded = scorers[0].config.get("features", {}).get("highlighter", "")
    cut = method.cut(path, params, method.resolve_highlighter(params, highlighter, recorded))
    y = cut.song if cut.song is not None else audio.load(path, params.sr)[0]
    tags = None
    if any(s.uses_tags for s in scorers):
        song = params.tags == "song"
        tags = segment_tags(y if song else cut.segment.audio, params.sr, device=str(dev),
                            tagger=params.tagger, scope=params.tags)
    with torch.inference_mode():
        seg = score_windows(scorers, cut.mel(params).to(_store_dtype(params)).to(dev)[None], tags)[:, 0]
    curve = song_curve(y, params, scorers, cut.segment.start, cut.segment.duration, tags, hop_seconds, dev)
    curve = curve.with_window(cut.segment.start, seg)
    if analysed == "best":  # the shift spread around the best window instead
        curve = replace(curve, analysed_start=curve.best_start,
                        shift_scores=shift_scores(y, params, scorers, curve.best_start, tags, dev))
    return curve
