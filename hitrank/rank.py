"""Ranking a folder of songs with a trained model or a fold ensemble.

Features are extracted into a cache store (reused on the next call: only new songs are
decoded) and every checkpoint of the run scores every song. Each fold model's output is
mapped from its own fold's standardised units back to the target's transformed scale (the
log hit score for the default target), where the models are commensurate; the ensemble
``score`` is the mean there (for the log target, the geometric mean of predicted hit scores),
``score_std`` the spread over the fold models (0 for a single model), and
``predicted_hit_score`` the mean mapped back to the hit-score scale. Songs are flagged
``padded`` (shorter than the segment), ``silent`` (the segment is digital silence: ranked
last) and ``ood`` (features far from the training songs', :mod:`hitrank.ood`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import segments
from .checkpoint import find_checkpoints, load_checkpoint
from .errors import CheckpointError
from .extract import extract
from .features import FeatureParams
from .ood import ood_scores
from .runtime import cached_store_path, pick_device
from .store import FeatureStore

log = logging.getLogger(__name__)

SCORE_CHUNK = 4096  # songs read from the store and scored at once (about 340 MB of float16)


def load_scorers(model: str | os.PathLike, device: torch.device):
    """Load every checkpoint of a run; they must share feature parameters."""
    scorers = [load_checkpoint(p, device) for p in find_checkpoints(model)]
    first = scorers[0]
    for s in scorers[1:]:
        if s.feature_params != first.feature_params:
            raise CheckpointError(f"{s.source!r} was trained on other features than {first.source!r}")
        if s.target.kind != first.target.kind:
            raise CheckpointError(f"{s.source!r} predicts a {s.target.kind!r} target, {first.source!r} "
                                  f"a {first.target.kind!r} one: they cannot be averaged")
    return scorers


def _score_chunk(store: FeatureStore, scorers, ids: list, dev: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Songs ``ids`` scored by every scorer on its target's transformed scale (commensurate
    across fold models), (n_models, len(ids)), and their OOD scores, (n_models, len(ids)) (NaN
    for models without a training reference); memory stays bounded however large the catalogue."""
    X = torch.from_numpy(store.load(ids)).to(dev)
    T = torch.from_numpy(store.load_tags(ids)).to(dev) if store.has_tags else None
    t = np.stack([s.target.unstandardise(s.score(X, T=T)) for s in scorers])
    o = np.stack([ood_scores(X, s.info["ood"]) if "ood" in s.info else np.full(len(ids), np.nan)
                  for s in scorers])
    return t, o


def _flags(padded, silent, ood) -> list[str]:
    return ["; ".join(f for f, on in (("silent", s), ("padded", p), ("out_of_distribution", o)) if on)
            for p, s, o in zip(padded, silent, ood, strict=True)]


def rank_folder(
    folder: str | os.PathLike,
    model: str | os.PathLike,
    cache: str | os.PathLike | None = None,
    workers: int = 1,
    device: str = "auto",
    progress: bool = True,
    highlighter: str | os.PathLike | None = None,
    engine: str = "local",
    address: str | None = None,
) -> tuple[pd.DataFrame, list]:
    """Rank every audio file under ``folder``.

    Extraction runs on ``engine`` (``local`` with ``workers`` processes, or ``ray`` on a local
    instance or the cluster at ``address``, see :mod:`hitrank.engines`); scoring runs here on
    ``device``.

    For HL-30 models made with an attention highlighter, the highlighter checkpoint named in
    the model's config is used (or ``highlighter``); its digest must match the model's.

    Returns
    -------
    ranking : DataFrame sorted best first (songs with a silent segment last), columns ``rank,
        song_id, path, score, score_std, predicted_hit_score, n_models, seg_start, seg_end,
        duration, padded, silent, ood_score, ood, flags``. ``score`` is the mean over the fold
        models of each one's prediction on its own target's transformed scale (the log hit
        score for the default ``log`` target: the geometric mean of the models' predicted hit
        scores), ``score_std`` their spread, ``predicted_hit_score`` the mean mapped back;
        ``ood_score`` (> 1: out of distribution, see :mod:`hitrank.ood`) is averaged over
        the models, NaN for models without a training reference (imported ones)
    failures : list of (song_id, path, reason) for files that could not be scored
    """
    dev = pick_device(device)
    scorers = load_scorers(model, dev)
    params = FeatureParams.from_dict(scorers[0].feature_params)
    recorded = scorers[0].config.get("features", {}).get("highlighter", "")
    highlighter = segments.get(params.segment).resolve_highlighter(params, highlighter, recorded)
    store_dir = Path(cache) if cache else cached_store_path(folder, params)
    rep = extract(folder, store_dir, params, workers=workers, progress=progress,
                  highlighter=highlighter, engine=engine, address=address)
    store = FeatureStore.open(store_dir)
    man = store.manifest
    # only songs in the folder now (the cache may remember songs since removed)
    ok = man[(man.status == "ok") & man.song_id.isin(set(rep.song_ids))].reset_index(drop=True)
    failures = list(rep.failures)
    if len(ok) == 0:
        return pd.DataFrame(columns=["rank", "song_id", "path", "score"]), failures
    parts = [_score_chunk(store, scorers, list(ids), dev)
             for ids in np.array_split(ok.song_id.to_numpy(), -(-len(ok) // SCORE_CHUNK))]
    t = np.concatenate([p[0] for p in parts], axis=1)  # (n_models, n_songs), transformed scale
    o = np.concatenate([p[1] for p in parts], axis=1)
    mean = t.mean(axis=0)
    ood_score = np.nanmean(o, axis=0) if np.isfinite(o).any() else np.full(len(ok), np.nan)
    ood = np.nan_to_num(ood_score, nan=0.0) > 1.0
    ranking = pd.DataFrame({
        "song_id": ok.song_id, "path": ok.path, "score": mean,
        "score_std": t.std(axis=0) if len(scorers) > 1 else np.zeros(len(ok)),
        "predicted_hit_score": scorers[0].target.invert(mean), "n_models": len(scorers),
        "seg_start": ok.seg_start, "seg_end": ok.seg_end, "duration": ok.duration,
        "padded": ok.padded, "silent": ok.silent, "ood_score": ood_score, "ood": ood,
        "flags": _flags(ok.padded.astype(bool), ok.silent, ood),
    })
    # a silent segment says nothing about the song: it goes last, flagged, whatever its score
    ranking = ranking.sort_values(["silent", "score"], ascending=[True, False], kind="stable"
                                  ).reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    ranking.attrs["store"] = str(store_dir)  # for the HTML report (log-mel images, curves, tags)
    return ranking, failures
