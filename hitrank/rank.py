"""Ranking a folder of songs with a trained model or a fold ensemble.

Features are extracted into a cache store (reused on the next call: only new songs are
decoded), every checkpoint of the run scores every song, and the ensemble score is the mean
over checkpoints in the model's standardised target units; ``score_std`` is the spread over
the fold models (0 for a single model); ``predicted_hit_score`` maps the mean back to the
hit-score scale of the training labels.
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
from .runtime import cached_store_path, pick_device
from .store import FeatureStore

log = logging.getLogger(__name__)

SCORE_CHUNK = 4096  # songs read from the store and scored at once (about 340 MB of float16)


def load_scorers(model: str | os.PathLike, device: torch.device):
    """Load every checkpoint of a run; they must share feature parameters."""
    scorers = [load_checkpoint(p, device) for p in find_checkpoints(model)]
    first = scorers[0].feature_params
    for s in scorers[1:]:
        if s.feature_params != first:
            raise CheckpointError(f"{s.source!r} was trained on other features than {scorers[0].source!r}")
    return scorers


def _score_chunk(store: FeatureStore, scorers, ids: list, dev: torch.device) -> np.ndarray:
    """Scores of songs ``ids`` by every scorer: (n_models, len(ids)); memory stays bounded
    however large the catalogue."""
    X = torch.from_numpy(store.load(ids)).to(dev)
    T = torch.from_numpy(store.load_tags(ids)).to(dev) if store.has_tags else None
    return np.stack([s.score(X, T=T) for s in scorers])


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
    ranking : DataFrame sorted best first, columns ``rank, song_id, path, score, score_std,
        predicted_hit_score, n_models, seg_start, seg_end, duration, padded``
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
    z = np.concatenate([_score_chunk(store, scorers, list(ids), dev)
                        for ids in np.array_split(ok.song_id.to_numpy(), -(-len(ok) // SCORE_CHUNK))],
                       axis=1)  # (n_models, n_songs)
    mean = z.mean(axis=0)
    ranking = pd.DataFrame({
        "song_id": ok.song_id, "path": ok.path, "score": mean,
        "score_std": z.std(axis=0) if len(scorers) > 1 else np.zeros(len(ok)),
        "predicted_hit_score": scorers[0].to_raw(mean), "n_models": len(scorers),
        "seg_start": ok.seg_start, "seg_end": ok.seg_end, "duration": ok.duration,
        "padded": ok.padded,
    })
    ranking = ranking.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    ranking.attrs["store"] = str(store_dir)  # for the HTML report (log-mel images, curves, tags)
    return ranking, failures
