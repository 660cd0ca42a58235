"""Training one model on one split: rating CNN or multi-objective Siamese CNN.

The one trainer: :class:`Training` holds the model's setup, each epoch's batches, the training
step, the validation record and the result; :func:`fit` runs one alone, the model bank
(:mod:`hitrank.bank`) runs several in lockstep with a batched forward pass.

The whole feature set lives in one float16 tensor on the training device (15k songs are about
1.2 GB), batches are gathered by index: no DataLoader, no per-song transfers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .checkpoint import init_weights
from .data import Target, sample_pairs
from .distributed import SINGLE, Context, gather_rows, my_slice, reduce_mean
from .errors import ConfigError
from .inference import model_inputs, predict
from .loop import EpochLoop
from .losses import all_pairs_ranking_loss, multi_loss, rating_loss, within_song_loss
from .metrics import ranking_metrics
from .models import build, with_tag_branch
from .runtime import autocast, seed_everything, use_bf16
from .schema import FREEZE_CONV, FREEZE_NONE, Config
from .whole_song import WholeSongs, outputs_per_window

log = logging.getLogger(__name__)

STATS_CHUNK = 256  # songs per chunk when computing input statistics


def ranked_last(pred: np.ndarray) -> np.ndarray:
    """Predictions with NaN/inf (a diverged model) replaced by a value below every finite one,
    so those songs rank last (a warning is logged) instead of stopping the run; (n,) float64."""
    pred = np.asarray(pred, dtype=np.float64)
    bad = ~np.isfinite(pred)
    if bad.any():
        log.warning("%d of %d predictions are NaN/inf (the model diverged?); ranked last",
                    int(bad.sum()), len(pred))
        floor = pred[~bad].min() - 1.0 if (~bad).any() else 0.0
        pred = np.where(bad, floor, pred)
    return pred


def scored(y_true: np.ndarray, pred: np.ndarray, top: float) -> dict:
    """:func:`ranking_metrics` of predictions that may hold NaN/inf (:func:`ranked_last`)."""
    return ranking_metrics(y_true, ranked_last(pred), top)


def reduced_precision(cfg: Config, device) -> bool:
    """Whether training and scoring on ``device`` use bfloat16 autocast (``train.precision``;
    ``train.amp: false``, the older key, forces float32). Outputs, losses and metrics stay
    float32."""
    return cfg.train.amp and use_bf16(cfg.train.precision, device)


def input_stats(X: torch.Tensor, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mel-bin mean and std over songs ``idx`` and all frames; (n_mels,), (n_mels,)."""
    n_mels = X.shape[1]
    s = torch.zeros(n_mels, dtype=torch.float64, device=X.device)
    s2 = torch.zeros_like(s)
    count = 0
    for i in range(0, len(idx), STATS_CHUNK):
        xb = X[torch.as_tensor(idx[i: i + STATS_CHUNK], device=X.device)].double()
        s += xb.sum(dim=(0, 2))
        s2 += (xb * xb).sum(dim=(0, 2))
        count += xb.shape[0] * xb.shape[2]
    mean = s / count
    std = torch.sqrt(torch.clamp(s2 / count - mean**2, min=0))
    return mean.float(), std.float()


def _layers(model: torch.nn.Module) -> list[str]:
    """Names of the model's modules that own parameters directly, in model order."""
    return [name for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]


def _conv_blocks(model: torch.nn.Module) -> list[str]:
    """The ``conv`` shorthand of ``train.freeze``: every convolution wider than one frame and
    the normalisation layers that follow one before the next convolution, in model order."""
    names, in_block = [], False
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            in_block = any(k > 1 for k in m.kernel_size)
            if in_block:
                names.append(name)
        elif in_block and isinstance(m, (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm,
                                         torch.nn.LayerNorm)):
            names.append(name)
    return names


def _matches(name: str, prefix: str) -> bool:
    """Whether the dotted ``name`` lies under ``prefix`` (``net.1`` holds ``net.1.weight``, not ``net.10``)."""
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


def frozen_parameters(model: torch.nn.Module, freeze: tuple | list, where: str = "train.freeze"
                      ) -> list[str]:
    """Freeze the parameters ``freeze`` names: ``requires_grad`` is turned off (so the
    optimiser never sees them) and their normalisation layers are listed by
    :func:`frozen_norms` (kept in eval mode, running statistics untouched).

    Parameters
    ----------
    model : the model, changed in place
    freeze : ``("none",)`` (nothing), ``("conv",)`` (every convolutional block, see
        :func:`_conv_blocks`) and/or prefixes of the model's state-dict names (``net.0``,
        ``base.net.3``: a prefix ends at a dot, so ``net.1`` does not hold ``net.10``)
    where : the config key named in errors

    Returns
    -------
    The names of the frozen parameters, in model order (empty for ``none``).

    Raises
    ------
    ConfigError
        A prefix that names no layer of the model (the message lists the model's layers), or
        a list that freezes every parameter (nothing would train).
    """
    if tuple(freeze) in ((), (FREEZE_NONE,)):
        return []
    layers = _layers(model)
    params = list(model.named_parameters())
    prefixes = []
    for item in freeze:
        if item == FREEZE_CONV:
            blocks = _conv_blocks(model)
            if not blocks:
                raise ConfigError(f"{where}: {FREEZE_CONV!r} found no convolution wider than one "
                                  f"frame in {type(model).__name__}; its layers: {', '.join(layers)}")
            prefixes += blocks
        elif not any(_matches(n, item) for n, _ in params):
            raise ConfigError(f"{where}: {item!r} names no layer of {type(model).__name__}; its layers "
                              f"(state-dict prefixes): {', '.join(layers)}, or {FREEZE_CONV!r} "
                              f"({', '.join(_conv_blocks(model)) or 'none here'})")
        else:
            prefixes.append(item)
    frozen = [n for n, _ in params if any(_matches(n, p) for p in prefixes)]
    if len(frozen) == len(params):
        raise ConfigError(f"{where}={list(freeze)} freezes every parameter of "
                          f"{type(model).__name__}: nothing would train; leave a layer out "
                          f"(its layers: {', '.join(layers)})")
    for n, p in params:
        if n in frozen:
            p.requires_grad_(False)
    return frozen


def frozen_norms(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The batch-normalisation layers whose parameters are all frozen: kept in eval mode while
    training, so that their running statistics stay the released ones."""
    out = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._NormBase):
            own = list(m.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
                out.append(m)
    return out


def predict_all(ctx: Context, model: torch.nn.Module, X: torch.Tensor, idx: np.ndarray,
                amp: bool = False, T: torch.Tensor | None = None) -> np.ndarray:
    """:func:`~hitrank.inference.predict` with the songs split over data-parallel ranks and
    gathered on all of them (one process: the same as ``predict``); (len(idx),) float64."""
    return gather_rows(ctx, predict(model, X, my_slice(ctx, np.asarray(idx)), amp, T), len(idx))


@dataclass(frozen=True)
class ContrastRows:
    """Where the songs' contrast windows are in the training tensor (``train.contrast``):
    song ``i``'s at row ``n + i`` of ``X`` (:func:`hitrank.cv.prepare` stacks them there).

    Attributes
    ----------
    n : number of songs (rows ``0 .. n - 1`` of ``X``)
    usable : (n,) bool tensor on ``X``'s device: the song has a contrast window of its own
        (False for songs too short for one, whose contrast row repeats the segment)
    """

    n: int
    usable: torch.Tensor

    def inputs(self, X: torch.Tensor, T: torch.Tensor | None, b: torch.Tensor) -> tuple:
        """Model inputs of songs ``b`` (B,) followed by those of their contrast windows: the
        (2B, n_mels, n_frames) mel, and with ``T`` the (2B, 50) tags (a song's own twice)."""
        return model_inputs(X, T, torch.cat([b, b + self.n]), tag_rows=torch.cat([b, b]))


def contrast_rows(cfg: Config, X: torch.Tensor, n: int) -> ContrastRows | None:
    """The :class:`ContrastRows` of a ``train.contrast`` run (None when it is off).

    Raises
    ------
    ConfigError
        ``X`` does not hold ``2 n`` rows (the features were not stacked with their contrast
        windows).
    """
    if cfg.train.contrast <= 0:
        return None
    if X.shape[0] != 2 * n:
        raise ConfigError(f"train.contrast={cfg.train.contrast}: expected the {n} songs' features "
                          f"followed by their contrast windows ({2 * n} rows), got {X.shape[0]}")
    usable = torch.zeros(n, dtype=torch.bool, device=X.device)
    for i in range(0, n, STATS_CHUNK):
        j = min(i + STATS_CHUNK, n)
        usable[i:j] = (X[i:j] != X[n + i: n + j]).flatten(1).any(1)
    return ContrastRows(n, usable)


class _Step(torch.nn.Module):
    """The forward pass of one training step (what DistributedDataParallel wraps, so that the
    Siamese ``pair`` call is synchronised too): scores of songs, or the two scores of pairs."""

    def __init__(self, model: torch.nn.Module, siamese: bool):
        super().__init__()
        self.model, self.siamese = model, siamese

    def forward(self, *inputs):
        return self.model.pair(*inputs) if self.siamese else self.model(*inputs)


def _step_module(model: torch.nn.Module, siamese: bool, ctx: Context) -> torch.nn.Module:
    step = _Step(model, siamese)
    if not ctx.ddp:
        return step
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.local_rank] if str(ctx.device).startswith("cuda") else None
    return DistributedDataParallel(step, device_ids=ids)


@dataclass
class FitResult:
    """A trained model (best validation epoch) and its history."""

    model: torch.nn.Module
    name: str  # registry name and kwargs of ``model`` (for its checkpoint)
    kwargs: dict
    best_epoch: int
    val_pred: np.ndarray  # (n_val,) standardised target units
    val_metrics: dict
    w: float
    margin: float | None
    sampling: str
    curves: list = field(default_factory=list)  # one dict per epoch
    seconds: float = 0.0
    mu: float | None = None  # tag-branch weight (None: no tag branch)


@dataclass
class FitJob:
    """One model to train on one split: what differs between the models of a fold (and the
    members of a bank, :mod:`hitrank.bank`).

    Attributes
    ----------
    train_idx, val_idx : (n_train,), (n_val,) int song indices
    target : the fitted target transform of this job's fold (training statistics)
    sampling : none (rating only) | naive | ab | artist
    w, margin : multi-objective weight and hinge margin (Siamese)
    mu : weight of the tag DNN (paper Eq. 4); None: no tag branch
    seed : seeds initialisation, dropout, shuffling and pair sampling
    resume : end-of-epoch training state file, or None
    """

    train_idx: np.ndarray
    val_idx: np.ndarray
    target: Target
    sampling: str = "none"
    w: float = 0.0
    margin: float | None = None
    mu: float | None = None
    seed: int = 0
    resume: str | os.PathLike | None = None


class Training:
    """One model's training, the single definition of how hitrank trains a model: its setup,
    each epoch's batches, its training step, its validation record and its result.

    :func:`fit` runs one alone (``next_epoch``, ``step`` for every batch, ``end_epoch`` with
    :meth:`validation_scores`, ``result``); the model bank (:mod:`hitrank.bank`) runs several
    in lockstep, replacing only the forward passes by its batched ones and calling
    :meth:`loss`, :meth:`stepped` and :meth:`end_epoch` of each member.

    Parameters
    ----------
    cfg : experiment config (model, train, pairs, cv sections)
    X : (n, n_mels, n_frames) float16 tensor of all songs, on the training device
    scores : (n,) raw hit scores; artists : (n,) artist names
    job : the split, sampling, weights, seed and resume file (:class:`FitJob`)
    tags : (n, 50) tag vectors of all songs on the device, or None (no tag branch; with
        tags the model gets the tag branch of weight ``job.mu``)
    ctx : torchrun context (see :func:`fit`)
    progress : optional callable(str) for one status line per epoch
    songs : the songs' whole log-mels (:class:`~hitrank.whole_song.WholeSongs`) for
        whole-song training (``train.window_loss``), else None

    Whole-song training (:mod:`hitrank.whole_song`) draws batches of whole songs: the loss is
    the segment's rating error plus ``train.window_loss`` times the best window's, plus the
    within-song hinge with ``train.contrast``; validation scores are the best window's, the
    result's validation scores and metrics the segment's (as ``rank`` scores songs). The input
    standardisation then comes from every frame of the training songs.

    With ``train.freeze`` (after ``train.init``) the named parameters are frozen
    (:func:`frozen_parameters`: no gradient, not in the optimiser, their batch-norm layers in
    eval mode) and the model keeps the init's input standardisation instead of the training
    songs' statistics.
    """

    def __init__(self, cfg: Config, X: torch.Tensor, scores: np.ndarray, artists: np.ndarray,
                 job: FitJob, tags: torch.Tensor | None = None, ctx: Context = SINGLE,
                 progress: Callable[[str], None] | None = None, songs: WholeSongs | None = None):
        tc = cfg.train
        if songs is not None:
            refused = [why for bad, why in (
                (ctx.ddp, "data-parallel torchrun (fold-parallel works)"),
                (tags is not None, "a tag branch (set features.tags false)"),
                (job.sampling != "none", f"pairs.sampling={job.sampling!r} (set none)")) if bad]
            if refused:
                raise ConfigError(f"train.window_loss={tc.window_loss} trains a rating model on whole songs "
                                  f"in one process, not with {' or '.join(refused)}")
        device = X.device
        self.cfg, self.X, self.scores, self.artists, self.job = cfg, X, scores, artists, job
        self.tags, self.ctx, self.progress, self.songs = tags, ctx, progress, songs
        seed_everything(job.seed)
        self.rng = np.random.default_rng(job.seed)
        name, kwargs = cfg.model.name, dict(cfg.model.kwargs)
        if tags is not None:
            name, kwargs = with_tag_branch(name, kwargs, job.mu)
        self.name, self.kwargs = name, kwargs
        model = build(name, **kwargs)
        frozen = tc.freeze not in ((), (FREEZE_NONE,))
        if tc.init:  # the released weights instead of random ones (the random draws still happen)
            # frozen layers keep the released input standardisation: they must see the inputs
            # they were trained on (ret30's: the raw-power mel, unstandardised)
            init_weights(model, tc.init, input_stats=frozen)
        self.frozen = frozen_parameters(model, tc.freeze)
        self.frozen_norms = frozen_norms(model)
        self.model = model.to(device)
        if not frozen:
            self.model.set_input_stats(*(songs.input_stats(job.train_idx) if songs is not None
                                         else input_stats(X, job.train_idx)))
        self.n_out = outputs_per_window(self.model, X.shape[1], X.shape[2]) if songs is not None else 0
        self.siamese = job.sampling != "none"
        self.amp = reduced_precision(cfg, device)
        self.step_forward = _step_module(self.model, self.siamese, ctx)
        self.z = torch.as_tensor(job.target.transform(scores), dtype=torch.float32, device=device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = (torch.optim.Adagrad(params, lr=tc.lr) if tc.optimizer == "adagrad"
                    else torch.optim.Adam(params, lr=tc.lr))
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=tc.lr_decay,
                                                                patience=0)
        self.val_t = torch.as_tensor(job.val_idx, device=device)
        self.contrast = contrast_rows(cfg, X, len(scores)) if songs is None else None
        self.n_pairs = int(round(cfg.pairs.per_epoch * len(job.train_idx)))
        key = {"config": cfg.state_key(), "sampling": job.sampling, "w": job.w,
               "margin": job.margin, "mu": job.mu, "seed": job.seed,
               "n_train": len(job.train_idx), "n_val": len(job.val_idx)}
        self.loop = EpochLoop(self.model, self.opt, self.sched, epochs=tc.epochs,
                              patience=tc.patience, mode="min", state_path=job.resume, key=key,
                              rng=self.rng, writes=ctx.writes)
        self._epochs = self.loop.epochs()
        self.epoch, self.batches, self.total, self.steps = 0, [], 0.0, 0

    def next_epoch(self) -> bool:
        """Start the next epoch: training mode and this epoch's batches (song indices (b,) or
        pairs (b, 2), drawn from the job's numpy Generator); False when training is over."""
        epoch = next(self._epochs, None)
        if epoch is None:
            return False
        self.epoch = epoch
        self.model.train()
        for m in self.frozen_norms:  # frozen blocks keep their running statistics
            m.eval()
        self.total, self.steps = 0.0, 0
        job, bs = self.job, self.cfg.train.batch_size
        if self.songs is not None:  # whole songs of similar length together
            self.batches = [torch.as_tensor(b, device=self.z.device)
                            for b in self.songs.batches(job.train_idx, bs, self.rng)]
            return True
        if self.siamese:
            items = sample_pairs(job.sampling, job.train_idx, self.scores, self.artists,
                                 self.n_pairs, self.rng)
        else:
            items = self.rng.permutation(job.train_idx)
        items = torch.as_tensor(items, device=self.z.device)
        self.batches = [items[i: i + bs] for i in range(0, len(items), bs)]
        return True

    def loss(self, b: torch.Tensor, out) -> torch.Tensor:
        """Training loss of batch ``b`` (songs (n,) or pairs (n, 2)) from the model's scores
        ``out``: (n,), or the pair's two (fi, fj) for a Siamese job; a float32 scalar.

        With ``train.contrast`` (:func:`contrast_rows`) ``out`` also holds the scores of the
        batch's contrast windows after its songs' (``(2n,)``, or ``(2n,)`` each of fi, fj),
        and the loss adds ``train.contrast`` times the within-song hinge
        :func:`~hitrank.losses.within_song_loss`. In whole-song training ``out`` is
        :meth:`~hitrank.whole_song.WholeSongs.forward`'s (best, segment, contrast, has)."""
        if self.songs is not None:
            best, seg, con, has = out
            z, tc = self.z[b], self.cfg.train
            loss = rating_loss(seg.float(), z) + tc.window_loss * rating_loss(best.float(), z)
            if tc.contrast > 0:
                loss = loss + tc.contrast * within_song_loss(seg.float(), con.float(), has, tc.contrast_margin)
            return loss
        within = None
        if self.contrast is not None:
            n = len(b)
            if self.siamese:
                fi, fj = out
                seg, con = torch.cat([fi[:n], fj[:n]]), torch.cat([fi[n:], fj[n:]])
                songs, out = torch.cat([b[:, 0], b[:, 1]]), (fi[:n], fj[:n])
            else:
                seg, con, songs, out = out[:n], out[n:], b, out[:n]
            within = within_song_loss(seg.float(), con.float(), self.contrast.usable[songs],
                                      self.cfg.train.contrast_margin)
        if self.siamese:
            fi, fj = out
            base = multi_loss(fi.float(), fj.float(), self.z[b[:, 0]], self.z[b[:, 1]],
                              self.job.w, self.job.margin)
        else:
            base = rating_loss(out.float(), self.z[b])
        return base if within is None else base + self.cfg.train.contrast * within

    def step(self, s: int) -> None:
        """Training step ``s`` of this epoch, the model alone: forward, loss, backward and the
        optimiser step. In data-parallel mode this rank trains on its slice of the batch (a
        trailing batch too small to give every rank an item is skipped)."""
        batch, ctx, X, T = self.batches[s], self.ctx, self.X, self.tags
        if len(batch) < ctx.shards:
            return
        b = my_slice(ctx, batch)
        share = len(b) * ctx.shards / len(batch)  # averaged over ranks: the whole batch's loss
        inputs = self.contrast.inputs if self.contrast is not None else model_inputs
        with autocast(X.device, self.amp):
            if self.songs is not None:
                out = self.songs.forward(self.model, b.cpu().numpy(), self.n_out)
            elif self.siamese:
                (xi, *ti), (xj, *tj) = inputs(X, T, b[:, 0]), inputs(X, T, b[:, 1])
                out = self.step_forward(xi, xj, *ti, *tj)
            else:
                out = self.step_forward(*inputs(X, T, b))
            loss = self.loss(b, out) * share
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.stepped(loss)

    def stepped(self, loss: torch.Tensor) -> None:
        """After ``loss.backward()``: the optimiser step and the epoch's running loss."""
        self.opt.step()
        self.total += loss.detach()
        self.steps += 1

    def validation_scores(self) -> np.ndarray:
        """The model's scores of the validation songs, (n_val,) float64 (standardised units):
        their segments', or in whole-song training their best windows'."""
        if self.songs is not None:
            return self.songs.best_scores(self.model, self.job.val_idx, self.n_out)
        return predict_all(self.ctx, self.model, self.X, self.job.val_idx, self.amp, self.tags)

    def end_epoch(self, pred: np.ndarray) -> bool:
        """The validation pass of this epoch from the scores ``pred`` (n_val,): validation
        loss and metrics, the :class:`~hitrank.loop.EpochLoop` record (schedule, best epoch,
        resume state) and the status line; False when training stops."""
        job = self.job
        pv = torch.as_tensor(pred, dtype=torch.float32, device=self.z.device)
        mse = rating_loss(pv, self.z[self.val_t])
        val_loss = mse
        if self.siamese and job.w > 0:
            val_loss = (1 - job.w) * mse + job.w * all_pairs_ranking_loss(
                pv, self.z[self.val_t], job.margin)
        val_loss = float(val_loss)
        metrics = {**scored(self.scores[job.val_idx], pred, self.cfg.cv.top_fraction),
                   "val_mse": float(mse)}
        train_loss = reduce_mean(self.ctx, float(self.total) / max(1, self.steps))
        going = self.loop.record(self.epoch, {"train_loss": train_loss}, val_loss,
                                 {"val_loss": val_loss, "val_mse": metrics["val_mse"],
                                  "val_ndcg": metrics["ndcg"], "val_spearman": metrics["spearman"]},
                                 (pred, metrics))
        if self.progress:
            self.progress(f"epoch {self.epoch} train {train_loss:.4f} val {val_loss:.4f}")
        return going

    def result(self, seconds: float) -> FitResult:
        """The best epoch's model (loaded by the loop), its validation scores and metrics."""
        res = self.loop.finish()
        self.model.eval()
        job = self.job
        if res.payload is None:  # no finite validation loss in any epoch (e.g. NaN from the start)
            pred = predict_all(self.ctx, self.model, self.X, job.val_idx, False, self.tags)
            res.payload = (pred, {**scored(self.scores[job.val_idx], pred, self.cfg.cv.top_fraction),
                                  "val_mse": float("nan")})
        pred, metrics = res.payload
        if self.songs is not None:  # the segment's scores, as rank scores songs
            pred = predict_all(self.ctx, self.model, self.X, job.val_idx, self.amp, self.tags)
            z_val = torch.as_tensor(pred, dtype=torch.float32, device=self.z.device)
            metrics = {**scored(self.scores[job.val_idx], pred, self.cfg.cv.top_fraction),
                       "val_mse": float(rating_loss(z_val, self.z[self.val_t]))}
        metrics = {**metrics, "val_loss": res.best_value}
        return FitResult(self.model, self.name, self.kwargs, res.best_epoch, pred, metrics, job.w,
                         job.margin, job.sampling, res.curves, seconds, job.mu)


def fit(
    cfg: Config,
    X: torch.Tensor,
    scores: np.ndarray,
    artists: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    target: Target,
    sampling: str = "none",
    w: float = 0.0,
    margin: float | None = None,
    seed: int = 0,
    progress=None,
    T: torch.Tensor | None = None,
    mu: float | None = None,
    resume: str | os.PathLike | None = None,
    ctx: Context = SINGLE,
    songs: WholeSongs | None = None,
) -> FitResult:
    """Train one model; keep the epoch with the lowest validation loss.

    Parameters
    ----------
    cfg : experiment config (model, train sections)
    X : (n, n_mels, T) float16 tensor of all songs, on the training device
    scores : (n,) raw hit scores; artists : (n,) artist names
    train_idx, val_idx : song indices
    target : fitted target transform (training statistics)
    sampling : none (rating only) | naive | ab | artist
    w, margin : multi-objective weight and hinge margin (Siamese)
    seed : seeds initialisation, dropout, shuffling and pair sampling
    progress : optional callable(str) for a status line
    T : (n, 50) tag vectors of all songs on the device, or None (no tag branch)
    mu : weight of the tag DNN (paper Eq. 4) when ``T`` is given
    resume : file for an end-of-epoch training state; when it exists (an interrupted run),
        training continues from it and ends exactly as an uninterrupted run would
    ctx : torchrun context (:mod:`hitrank.distributed`); in data-parallel mode every rank
        draws the same batches and trains on its slice of each, the model wrapped in
        DistributedDataParallel; only rank 0 writes the training state (each rank its own
        in fold-parallel mode)
    songs : whole-song training (:class:`Training`), or None
    """
    t0 = time.time()
    job = FitJob(train_idx, val_idx, target, sampling, w, margin, mu, seed, resume)
    run = Training(cfg, X, scores, artists, job, T, ctx, progress, songs)
    while run.next_epoch():
        for s in range(len(run.batches)):
            run.step(s)
        run.end_epoch(run.validation_scores())
    return run.result(time.time() - t0)
