"""Ranking a folder of songs with a trained model or a fold ensemble.

Features are extracted into a cache store (reused on the next call: only new songs are
decoded) and every checkpoint of the run scores every song. Each fold model's output is
mapped from its own fold's standardised units back to the target's transformed scale (the
log hit score for the default target), where the models are commensurate; the ensemble
``score`` is the mean there (for the log target, the geometric mean of predicted hit scores),
``score_std`` the spread over the fold models (0 for a single model), and
``predicted_hit_score`` the mean mapped back to the hit-score scale. Songs are flagged
``padded`` (shorter than the segment), ``silent`` (the segment holds no sound, :func:`hitrank.audio.is_silent`: ranked
last) and ``ood`` (features far from the training songs', :mod:`hitrank.ood`; ``ood_note`` says why
it is empty for models without a training reference, such as imported pretrained models).
``padded`` is set only when the zero padding is at least :data:`PADDED_MIN_SHARE` of the
segment (a 29.98 s preview is not "padded"). ``artist`` and ``title`` come from the labels
CSV when ranking one, else from the files' own tags (ID3, Vorbis comments, RIFF INFO).

With ``curve=True`` every song's hit-potential curve is computed (:mod:`hitrank.curve`):
``best_start``, ``best_end``, ``best_score``, ``shift_spread`` and ``unstable``;
``segment="best"`` ranks by ``best_score``. Every ranking gets a percentile against a
reference (:mod:`hitrank.reference`): the run's own training songs by default, or the songs
of ``reference`` scored by the same model; and the ``nearest`` songs of that catalogue with the
song's ``fit`` to it (:mod:`hitrank.neighbours`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import audio, embeddings, neighbours, segments
from .corpus import reference_source, song_names
from .curve import CURVE_HOP_SECONDS, load_scorers, song_curve, unstable
from .errors import CheckpointError, HitrankError, ParameterError
from .extract import extract
from .features import FeatureParams
from .ood import combine as combine_ood
from .ood import ood_scores
from .ranking_table import flags_column
from .reference import Reference, ranking_reference, training_reference, warn_if_coarse
from .runinfo import resolve_model, run_kind
from .runtime import cached_store_path, pick_device
from .store import FeatureStore

log = logging.getLogger(__name__)

SCORE_CHUNK = 4096  # songs read from the store and scored at once (about 340 MB of float16)
#: a song is flagged ``padded`` when zero padding fills at least this share of the segment
#: (1.5 s of 30 s): a 29.98 s preview clip is scored on what it is, not flagged
PADDED_MIN_SHARE = 0.05
#: the function that ranks a folder with each other kind of run (hitrank.runinfo.RUN_KINDS)
OTHER_RANKERS = {"transfer": "hitrank.transfer.protocol.rank_transfer_folder(folder, model)",
                 "descriptor": "hitrank.descriptors.apply.rank_descriptor_folder(folder, model)"}
MIN_SPREAD_SONGS = 10  # songs needed to use the ranked songs' own spread for ``unstable``
SEGMENT_CHOICES = ("configured", "best")  # what ``segment=`` ranks by
NO_OOD_REFERENCE = ("no training-song statistics in this model (an imported pretrained model): "
                    "out-of-distribution not measured")


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


def _name_other_ranker(model) -> None:
    """Called when ``model`` did not load as spectrogram checkpoints: a HitrankError naming
    the function that ranks with it when it is another kind of run (its kind is read only
    here, off the path of every ranking); nothing when it is not (its own error stands)."""
    try:
        kind = run_kind(resolve_model(model))
    except HitrankError:
        return
    if kind in OTHER_RANKERS:
        raise HitrankError(f"{str(model)!r} is a {kind} run; rank_folder ranks with spectrogram models: use "
                           f"{OTHER_RANKERS[kind]} (or `hitrank rank`, which takes every kind of run)") from None


def padded_flags(duration: np.ndarray, seconds: float, share: float = PADDED_MIN_SHARE) -> np.ndarray:
    """Whether zero padding fills at least ``share`` of a ``seconds`` segment: (n,) bool for
    songs of ``duration`` (n,) s."""
    d = np.asarray(duration, dtype=np.float64)
    return (seconds - d) >= share * seconds


def song_curves(store: FeatureStore, ok: pd.DataFrame, scorers, params: FeatureParams, dev: torch.device,
                hop_seconds: float = CURVE_HOP_SECONDS, progress: bool = True) -> dict:
    """The hit-potential curve of every song of ``ok`` (manifest rows), around its analysed
    segment: ``{song_id: PotentialCurve}`` (songs whose audio no longer decodes are left out,
    logged)."""
    from tqdm import tqdm

    uses_tags = any(s.uses_tags for s in scorers)
    out = {}
    for rec in tqdm(ok.itertuples(), total=len(ok), desc="curves", unit="song", disable=not progress):
        try:
            y, duration = audio.load(rec.path, params.sr)
        except HitrankError as exc:
            log.warning("no curve for %r: %s", rec.path, exc)
            continue
        tags = store.load_tags([rec.song_id])[0] if uses_tags else None
        out[rec.song_id] = song_curve(y, params, scorers, float(rec.seg_start), duration, tags,
                                      hop_seconds, dev)
    return out


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
    curve: bool = False,
    segment: str = "configured",
    reference: str | os.PathLike | Reference | None = None,
    hop_seconds: float = CURVE_HOP_SECONDS,
    nearest: int = neighbours.DEFAULT_K,
    embedding: str = neighbours.MODEL_EMBEDDING,
    skip=(),
) -> tuple[pd.DataFrame, list]:
    """Rank every audio file under ``folder`` (or every song of a labels CSV).

    Extraction runs on ``engine`` (``local`` with ``workers`` processes, or ``ray`` on a local
    instance or the cluster at ``address``, see :mod:`hitrank.engines`); scoring runs here on
    ``device``.

    For HL-30 models made with an attention highlighter, the highlighter checkpoint named in
    the model's config is used (or ``highlighter``); its digest must match the model's.

    Parameters
    ----------
    curve : also compute every song's hit-potential curve (:mod:`hitrank.curve`): every
        30 s window every ``hop_seconds`` (s) scored by the fold ensemble, and the analysed
        segment as one more window
    segment : ``configured`` (rank by the model's segment, Mid-30 / HL-30) or ``best`` (rank
        by the best window's score; needs ``curve``)
    reference : the percentile's reference: None (the run's training songs, when it has
        their scores), a labels CSV or a folder of songs (scored by this model; features
        cached), or a :class:`~hitrank.reference.Reference`; also the catalogue of the
        nearest songs
    nearest : reference songs listed per song as its closest (:mod:`hitrank.neighbours`;
        0: none). The catalogue is ``reference`` when it is a labels CSV or folder, else the
        run's training songs (when the feature store its ``run.json`` records is at hand)
    embedding : what "closest" is measured in: ``model`` (the model's own penultimate layer)
        or a registered pretrained network (:data:`hitrank.embeddings.EMBEDDINGS`, over the
        whole song; extracted into the ranked songs' and the reference's feature stores)
    skip : song ids of ``folder`` to leave out (ranked before: ``rank --since``)

    Returns
    -------
    ranking : DataFrame sorted best first (songs with a silent segment last), columns ``rank,
        song_id, path, artist, title, score, score_std, predicted_hit_score, n_models,
        seg_start, seg_end, duration, padded, silent, ood_score, ood, ood_note, percentile,
        percentile_lo, percentile_hi, flags`` and with ``curve`` also ``best_start, best_end,
        best_score, shift_spread, unstable`` and with ``nearest`` (and a catalogue) also
        ``nearest, nearest_title, nearest_score, nearest_similarity, fit, fit_similarity``
        (:func:`hitrank.neighbours.neighbour_columns`). ``score`` is the mean over the fold models of
        each one's prediction on its own target's transformed scale (the log hit score for
        the default ``log`` target: the geometric mean of the models' predicted hit scores),
        ``score_std`` their spread, ``predicted_hit_score`` the mean mapped back;
        ``ood_score`` (> 1: out of distribution, see :mod:`hitrank.ood`) is averaged over
        the models, NaN for models without a training reference (``ood_note`` says so);
        ``percentile`` (0-100, NaN without a reference, and for silent songs) places
        ``score`` among the reference's scores. ``ranking.attrs`` holds ``store`` (the feature store),
        ``reference`` (its name, or why there is none), ``neighbours`` (the nearest songs'
        catalogue, why there is none, or '' with ``nearest=0``), ``catalogue_paths`` ({reference song id: audio
        path}, with nearest songs), ``between_song_sd`` and, with
        ``curve``, ``curves`` ({song_id: :class:`~hitrank.curve.PotentialCurve`})
    failures : list of (song_id, path, reason) for files that could not be scored
    """
    if segment not in SEGMENT_CHOICES:
        raise ParameterError(f"segment={segment!r}; expected one of {SEGMENT_CHOICES}")
    if segment == "best" and not curve:
        raise ParameterError("segment='best' ranks by the best window of each song's curve: "
                             "pass curve=True (--curve)")
    if int(nearest) < 0:
        raise ParameterError(f"--nearest {nearest}: expected 0 (none) or a positive number of songs")
    if embedding != neighbours.MODEL_EMBEDDING:
        embeddings.get(embedding)  # a clear error naming the known ones, before any audio is decoded
    dev = pick_device(device)
    try:
        scorers = load_scorers(model, dev)
    except CheckpointError:
        _name_other_ranker(model)
        raise
    params = FeatureParams.from_dict(scorers[0].feature_params)
    recorded = scorers[0].config.get("features", {}).get("highlighter", "")
    given, highlighter = highlighter, segments.get(params.segment).resolve_highlighter(params, highlighter, recorded)
    if given and highlighter is None:
        log.warning("--highlighter %r is not used: the model's %s segments need none", str(given), params.segment)
    ref, ref_note, ref_ranked = _reference(
        reference, model, scorers, cache=cache, workers=workers, device=device, progress=progress,
        highlighter=highlighter, engine=engine, address=address, embedding=embedding)
    warn_if_coarse(ref)
    own = embedding == neighbours.MODEL_EMBEDDING  # else a network's song embedding is stored too
    stored = params if own else embeddings.with_embedding(params, embedding, "song")
    store_dir = Path(cache) if cache else cached_store_path(folder, stored)
    rep = extract(folder, store_dir, stored, workers=workers, progress=progress,
                  highlighter=highlighter, engine=engine, address=address, skip=skip)
    store = FeatureStore.open(store_dir)
    man = store.manifest
    # only songs in the folder now (the cache may remember songs since removed)
    ok = man[(man.status == "ok") & man.song_id.isin(set(rep.song_ids))].reset_index(drop=True)
    failures = list(rep.failures)
    # the closest songs' catalogue; for nothing to rank, only when a --since ranking reports with it
    want = bool(nearest) and (len(ok) > 0 or bool(skip))
    extracting = {"workers": workers, "progress": progress, "highlighter": highlighter, "engine": engine,
                  "address": address}
    cat, neighbours_note = (_catalogue(ref_ranked, reference, model, embedding, scorers, dev, extracting) if want
                            else (None, ""))  # "": none asked for (nearest=0), nothing to say
    if cat is not None:
        neighbours_note = cat.name
    context = {"store": str(store_dir), "reference": ref.name if ref is not None else ref_note,
               "neighbours": neighbours_note, "segment": segment,
               **({"catalogue_paths": dict(zip(cat.song_ids, cat.paths, strict=True))} if cat is not None else {})}
    if len(ok) == 0:  # nothing to rank (every file failed, or all were ranked before: --since)
        empty = pd.DataFrame(columns=RANKING_COLUMNS)  # what --since checks the previous rows against
        empty.attrs.update(context, between_song_sd=ref.sd if ref is not None else np.nan)
        return empty, failures  # with the context a merged --since ranking reports with
    parts = [_score_chunk(store, scorers, list(ids), dev)
             for ids in np.array_split(ok.song_id.to_numpy(), -(-len(ok) // SCORE_CHUNK))]
    t = np.concatenate([p[0] for p in parts], axis=1)  # (n_models, n_songs), transformed scale
    o = np.concatenate([p[1] for p in parts], axis=1)
    mean = t.mean(axis=0)
    std = t.std(axis=0) if len(scorers) > 1 else np.zeros(len(ok))
    ood_score, ood, has_ood = combine_ood(o)
    padded = padded_flags(ok.duration.to_numpy(), params.segment_seconds)
    artists, titles = song_names(folder, ok.song_id, ok.path, ok.artist if "artist" in ok else None)
    ranking = pd.DataFrame({
        "song_id": ok.song_id, "path": ok.path, "artist": artists, "title": titles, "score": mean,
        "score_std": std, "predicted_hit_score": scorers[0].target.invert(mean), "n_models": len(scorers),
        "seg_start": ok.seg_start, "seg_end": ok.seg_end, "duration": ok.duration,
        "padded": padded, "silent": ok.silent.astype(bool), "ood_score": ood_score, "ood": ood,
        "ood_note": "" if has_ood else NO_OOD_REFERENCE,
    })
    shift = None
    if curve:
        curves = song_curves(store, ok, scorers, params, dev, hop_seconds, progress)
        for i, sid in enumerate(ok.song_id):  # the analysed segment, as scored above, is a window too
            if sid in curves:
                curves[sid] = curves[sid].with_window(float(ok.seg_start[i]), t[:, i])
        got = [curves.get(sid) for sid in ok.song_id]
        ranking["best_start"] = [c.best_start if c else np.nan for c in got]
        ranking["best_end"] = [c.best_end if c else np.nan for c in got]
        ranking["best_score"] = [c.best_score if c else np.nan for c in got]
        ranking["shift_spread"] = shift = np.array([c.shift_spread if c else np.nan for c in got])
        ranking.attrs["curves"] = curves
    between = ref.sd if ref is not None else (float(np.std(mean)) if len(ok) >= MIN_SPREAD_SONGS else np.nan)
    if curve:
        ranking["unstable"] = unstable(shift, between)
    if ref is not None:
        p, lo, hi = ref.percentiles(mean, std, shift)
    else:
        p = lo = hi = np.full(len(ok), np.nan)
    silent = ok.silent.astype(bool).to_numpy()  # ranked last, placed nowhere: empty percentile
    ranking["percentile"], ranking["percentile_lo"], ranking["percentile_hi"] = (
        np.where(silent, np.nan, v) for v in (p, lo, hi))
    ranking["flags"] = flags_column(ranking)
    if cat is not None:
        vectors = neighbours.store_vectors(store, ok.song_id, embedding, scorers, dev)
        cols = neighbours.neighbour_columns(vectors, cat, nearest, valid=~ok.silent.astype(bool).to_numpy())
        for c in neighbours.COLUMNS:
            ranking[c] = cols[c].to_numpy()
    # a silent segment says nothing about the song: it goes last, flagged, whatever its score
    key = "best_score" if segment == "best" else "score"
    ranking = ranking.sort_values(["silent", key], ascending=[True, False], kind="stable",
                                  na_position="last").reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    # the store for the HTML report (log-mel images, curves, tags), the reference's and the catalogue's names
    ranking.attrs.update(context, between_song_sd=between)
    return ranking, failures


#: the columns every ranking of a spectrogram model has (options add ``best_*``, ``nearest*``)
RANKING_COLUMNS = ["rank", "song_id", "path", "artist", "title", "score", "score_std", "predicted_hit_score",
                   "n_models", "seg_start", "seg_end", "duration", "padded", "silent", "ood_score", "ood",
                   "ood_note", "percentile", "percentile_lo", "percentile_hi", "flags"]


#: ``reference`` of the ranking of a reference's own songs: no percentile of theirs is needed
_SCORES_ONLY = object()


def _reference(reference, model, scorers, **rank_kwargs) -> tuple[Reference | None, str, pd.DataFrame | None]:
    """The percentile's reference, why there is none (in words) and the reference songs'
    ranking (None unless ``reference`` is a labels CSV or folder)."""
    if isinstance(reference, Reference):
        return reference, "", None
    if reference is _SCORES_ONLY:  # the reference songs themselves: their scores are all that is used
        return None, "", None
    if reference is None:
        return (*training_reference(model, scorers[0].target), None)
    src = reference_source(reference)
    cache = rank_kwargs.pop("cache")
    ref_cache = Path(cache).with_name(Path(cache).name + "_reference") if cache else None
    ranked, failed = rank_folder(src, model, cache=ref_cache, nearest=0, reference=_SCORES_ONLY, **rank_kwargs)
    if failed:
        log.warning("%d reference song(s) of %s could not be scored", len(failed), src)
    if "silent" not in ranked:
        raise ParameterError(f"reference={str(reference)!r}: no song of it could be scored")
    ref = ranking_reference(ranked, src.name)
    ref.name = f"the {len(ref.scores)} songs of {src.name}"
    return ref, "", ranked


def _catalogue(ref_ranked, reference, model, embedding: str, scorers,
               dev, extracting: dict | None = None) -> tuple[neighbours.Catalogue | None, str]:
    """The catalogue of the nearest songs: the ranked reference songs, else the run's
    training songs; or None and why not."""
    if ref_ranked is not None:
        name = f"the {Path(reference).name} songs"
        cat = neighbours.store_catalogue(ref_ranked.attrs["store"], name, embedding, scorers, dev,
                              song_ids=ref_ranked.song_id,
                              titles=dict(zip(ref_ranked.song_id, ref_ranked.title, strict=True)))
        cat.name = f"the {len(cat.song_ids)} songs of {Path(reference).name}"
        return cat, ""
    if isinstance(reference, Reference):
        return None, "a Reference object holds scores only: pass a labels CSV or folder for the nearest songs"
    embedded = None
    sources = neighbours.training_sources(model, embedding)
    if sources is not None:  # a pretrained network the training store lacks: embed its songs (cached)
        labels, params = sources
        stored = embeddings.with_embedding(params, embedding, "song")
        rep = extract(labels, cached_store_path(labels, stored), stored, **(extracting or {}))
        if neighbours.catalogue_songs(FeatureStore.open(rep.store), rep.song_ids).empty:
            return None, (f"no training song of {Path(labels).name} could be embedded by {embedding} "
                          f"({len(rep.failures)} failed: is their audio on this machine?); pass --reference "
                          "LABELS.csv|FOLDER, or --nearest 0")
        embedded = (rep.store, rep.song_ids)
    return neighbours.training_catalogue(model, embedding, scorers, dev, embedded)
