"""Training one model on one split: rating CNN or multi-objective Siamese CNN.

The whole feature set lives in one float16 tensor on the training device (15k songs are about
1.2 GB), batches are gathered by index: no DataLoader, no per-song transfers.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import Config
from .data import Target, sample_pairs
from .distributed import SINGLE, Context, gather_rows, my_slice, reduce_mean
from .loop import EpochLoop
from .losses import all_pairs_ranking_loss, multi_loss, rating_loss
from .metrics import ranking_metrics
from .models import build, with_tag_branch
from .runtime import autocast, seed_everything, use_bf16

log = logging.getLogger(__name__)

PREDICT_BATCH = 64  # songs per inference batch
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


def _inputs(X: torch.Tensor, T: torch.Tensor | None, b: torch.Tensor) -> tuple:
    """Model inputs of songs ``b``: (mel,) or (mel, tags) for tag-fusion models."""
    return (X[b].float(),) if T is None else (X[b].float(), T[b].float())


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor, idx: np.ndarray, amp: bool = False,
            T: torch.Tensor | None = None) -> np.ndarray:
    """Model scores (standardised target units) of songs ``idx``: (len(idx),) float64.

    ``T`` (n, 50) are the tag vectors of all songs, for models with a tag branch.
    """
    model.eval()
    out = []
    for i in range(0, len(idx), PREDICT_BATCH):
        b = torch.as_tensor(idx[i: i + PREDICT_BATCH], device=X.device)
        with autocast(X.device, amp):
            out.append(model(*_inputs(X, T, b)).float().cpu())
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def predict_all(ctx: Context, model: torch.nn.Module, X: torch.Tensor, idx: np.ndarray,
                amp: bool = False, T: torch.Tensor | None = None) -> np.ndarray:
    """:func:`predict` with the songs split over data-parallel ranks and gathered on all of
    them (one process: the same as :func:`predict`)."""
    return gather_rows(ctx, predict(model, X, my_slice(ctx, np.asarray(idx)), amp, T), len(idx))


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
    """
    t0 = time.time()
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    tc = cfg.train
    device = X.device
    name, kwargs = cfg.model.name, dict(cfg.model.kwargs)
    if T is not None:
        name, kwargs = with_tag_branch(name, kwargs, mu)
    model = build(name, **kwargs)
    if tc.init:  # the released weights instead of random ones (the random draws still happen)
        from .pretrained import init_weights

        init_weights(model, tc.init)
    model = model.to(device)
    model.set_input_stats(*input_stats(X, train_idx))
    siamese = sampling != "none"
    bf16 = reduced_precision(cfg, device)
    step = _step_module(model, siamese, ctx)
    z = torch.as_tensor(target.transform(scores), dtype=torch.float32, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adagrad(params, lr=tc.lr) if tc.optimizer == "adagrad"
           else torch.optim.Adam(params, lr=tc.lr))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=tc.lr_decay, patience=0)
    val_t = torch.as_tensor(val_idx, device=device)
    n_pairs = int(round(cfg.pairs.per_epoch * len(train_idx)))
    key = {"config": cfg.to_dict(), "sampling": sampling, "w": w, "margin": margin, "mu": mu,
           "seed": seed, "n_train": len(train_idx), "n_val": len(val_idx)}
    loop = EpochLoop(model, opt, sched, epochs=tc.epochs, patience=tc.patience, mode="min",
                     state_path=resume, key=key, rng=rng, writes=ctx.writes)
    for epoch in loop.epochs():
        model.train()
        total, steps = 0.0, 0
        if siamese:
            pairs = torch.as_tensor(sample_pairs(sampling, train_idx, scores, artists, n_pairs, rng),
                                    device=device)
            batches = [pairs[i: i + tc.batch_size] for i in range(0, len(pairs), tc.batch_size)]
        else:
            order = torch.as_tensor(rng.permutation(train_idx), device=device)
            batches = [order[i: i + tc.batch_size] for i in range(0, len(order), tc.batch_size)]
        for batch in batches:
            if len(batch) < ctx.shards:
                continue  # data-parallel: a trailing batch too small to give every rank an item
            b = my_slice(ctx, batch)
            share = len(b) * ctx.shards / len(batch)  # averaged over ranks: the whole batch's loss
            with autocast(device, bf16):
                if siamese:
                    (xi, *ti), (xj, *tj) = _inputs(X, T, b[:, 0]), _inputs(X, T, b[:, 1])
                    fi, fj = step(xi, xj, *ti, *tj)
                    loss = multi_loss(fi.float(), fj.float(), z[b[:, 0]], z[b[:, 1]], w, margin)
                else:
                    loss = rating_loss(step(*_inputs(X, T, b)).float(), z[b])
                loss = loss * share
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
            steps += 1
        pred = predict_all(ctx, model, X, val_idx, bf16, T)
        pv = torch.as_tensor(pred, dtype=torch.float32, device=device)
        mse = rating_loss(pv, z[val_t])
        val_loss = mse
        if siamese and w > 0:
            val_loss = (1 - w) * mse + w * all_pairs_ranking_loss(pv, z[val_t], margin)
        val_loss = float(val_loss)
        metrics = {**scored(scores[val_idx], pred, cfg.cv.top_fraction), "val_mse": float(mse)}
        train_loss = reduce_mean(ctx, float(total) / max(1, steps))
        going = loop.record(epoch, {"train_loss": train_loss},
                            val_loss, {"val_loss": val_loss, "val_mse": metrics["val_mse"],
                                       "val_ndcg": metrics["ndcg"], "val_spearman": metrics["spearman"]},
                            (pred, metrics))
        if progress:
            progress(f"epoch {epoch} train {train_loss:.4f} val {val_loss:.4f}")
        if not going:
            break
    res = loop.finish()
    model.eval()
    if res.payload is None:  # no finite validation loss in any epoch (e.g. NaN from the start)
        pred = predict_all(ctx, model, X, val_idx, False, T)
        res.payload = (pred, {**scored(scores[val_idx], pred, cfg.cv.top_fraction),
                              "val_mse": float("nan")})
    pred, metrics = res.payload
    metrics = {**metrics, "val_loss": res.best_value}
    return FitResult(model, name, kwargs, res.best_epoch, pred, metrics, w, margin, sampling,
                     res.curves, time.time() - t0, mu)
