"""Closest known songs: nearest neighbours in a song embedding, and fit to a reference catalogue.

An analyst places a new song among songs they know: "it sounds closest to these five of last
year's releases, and fits that catalogue better than 70% of its own songs". Both answers come
from one embedding of every song, compared by cosine similarity:

- ``model``: the ranking model's own penultimate layer (the input of its scoring layer, the
  1x1 convolution or linear layer with one output, averaged over time; for the paper's CNNs
  the 256 channels of the last hidden 1x1 convolution, as :func:`hitrank.models.ret30.penultimate`;
  a tag-fusion model's audio branch), computed on the analysed 30 s log-mel the model scores. A fold ensemble's vector is each
  fold model's unit vector, concatenated and scaled by ``1 / sqrt(n_models)``, so the cosine
  of two songs is the mean over fold models of their cosines. Costs one more forward pass.
- a registered pretrained network (:data:`hitrank.embeddings.EMBEDDINGS`: ``musicnn``,
  ``musicnn-msd``, ``jynet``, ``ret30``), pooled over the whole song (``--embedding-scope
  song`` of ``extract``); costs that network's seconds per file (docs/benchmarks.md).

Similarity is the cosine of the two songs' vectors after subtracting the catalogue's mean
vector (:meth:`Catalogue.centre`): the embeddings of ReLU networks share a large common
direction, so raw cosines of any two songs are all near 1 (0.94-0.98 for the KKBOX model on
real clips), and centring lets them say which songs of *this* catalogue are alike. A catalogue
of fewer than :data:`MIN_CATALOGUE` songs is not centred and states no fit.

For each query song: its ``k`` nearest reference songs (closest first) and their
similarities; its **fit** to the reference, the mean similarity to its ``k`` nearest
reference songs (``fit_similarity``), stated as a percentile (``fit``, 0-100) among the
reference songs' own values (each to its ``k`` nearest *other* reference songs), so that 50
means "as typical of the catalogue as its median song" and 100 "closer to it than any of its
own songs" (a duplicate of a reference song). Silent songs and all-zero vectors get empty
cells. This is the audio counterpart of the playlist-fit seed system (``hitrank fit``, which
compares descriptor tables).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .audio import file_tags
from .corpus import labelled_names
from .errors import ParameterError
from .features import FeatureParams
from .fileio import atomic_path
from .inference import predict
from .runinfo import read_run_info, run_folder, run_name
from .runtime import cache_dir
from .store import FeatureStore

log = logging.getLogger(__name__)

MODEL_EMBEDDING = "model"  # the ranking model's own penultimate layer
DEFAULT_K = 5  # nearest reference songs listed per song
CHUNK = 2048  # query songs compared with the whole reference at once (2048 x n float32)
#: catalogue songs needed to centre the vectors on the catalogue's mean and to state a fit:
#: with fewer, the mean is mostly the songs themselves (two songs centre to opposite vectors)
MIN_CATALOGUE = 10
SEPARATOR = ";"  # between the neighbours of one song in the CSV columns
COLUMNS = ("nearest", "nearest_title", "nearest_score", "nearest_similarity", "fit", "fit_similarity")
TEXT_COLUMNS = COLUMNS[:4]  # the ';'-separated ones (one neighbour's cell may look like a number)


def unit_rows(V: np.ndarray) -> np.ndarray:
    """Rows of ``V`` (n, d) scaled to unit length, float32 (an all-zero row stays zero)."""
    V = np.asarray(V, dtype=np.float32)
    norm = np.linalg.norm(V, axis=1, keepdims=True)
    return np.divide(V, norm, out=np.zeros_like(V), where=norm > 0)


def scoring_head(model: torch.nn.Module) -> torch.nn.Module:
    """The layer that turns the model's last hidden layer into its score: the last linear or
    convolutional layer with one output (of the audio branch of a tag-fusion model, whose tag
    DNN is left out); a ParameterError for a model without one."""
    audio_branch = getattr(model, "base", model)
    heads = [m for m in audio_branch.modules()
             if (isinstance(m, torch.nn.Linear) and m.out_features == 1)
             or (isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)) and m.out_channels == 1)]
    if not heads:
        raise ParameterError(f"model {type(model).__name__} has no one-output scoring layer: its "
                             "penultimate layer cannot serve as an embedding; pick --embedding musicnn")
    return heads[-1]


def _keep_input(into: list):
    """A forward hook appending its layer's input to ``into``: (batch, width) float32 on the CPU,
    averaged over time when the layer is a 1x1 convolution over frames (batch, width, frames)."""
    def hook(_module, inputs, _output):
        x = inputs[0].detach().float()
        into.append((x.flatten(2).mean(dim=2) if x.ndim > 2 else x).cpu())
    return hook


def model_vectors(scorers, X: torch.Tensor, T: torch.Tensor | None = None) -> np.ndarray:
    """The ``model`` embedding of songs: every fold model's penultimate layer.

    Parameters
    ----------
    scorers : loaded checkpoints (:class:`hitrank.checkpoint.CheckpointScorer`), each with
        ``members`` [(weight, model)]
    X : (n, n_mels, n_frames) log-mel segments as the models take them
    T : (n, 50) tag vectors, for models with a tag branch

    Returns
    -------
    (n, D) float32, D the sum of the members' penultimate widths; rows of unit length (or
    zero), the cosine of two rows is the mean of the members' cosines
    """
    idx = np.arange(len(X))
    parts = []
    for s in scorers:
        for _, model in s.members:
            got: list[torch.Tensor] = []
            hook = scoring_head(model).register_forward_hook(_keep_input(got))
            try:
                predict(model, X, idx, T=T if getattr(model, "uses_tags", False) else None)
            finally:
                hook.remove()
            parts.append(unit_rows(torch.cat(got).numpy()))
    return np.concatenate(parts, axis=1) / np.float32(math.sqrt(len(parts)))


def nearest(Q: np.ndarray, C: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``C`` to each row of ``Q`` by cosine similarity.

    Parameters
    ----------
    Q : (m, d) query vectors; C : (n, d) reference vectors (both unit rows, :func:`unit_rows`)
    k : neighbours per query (at most n, or n - 1 with ``exclude_self``)
    exclude_self : Q is C: a song is not its own neighbour

    Returns
    -------
    index : (m, k) int, rows of C, closest first
    similarity : (m, k) float32 cosines, descending
    """
    k = min(int(k), len(C) - (1 if exclude_self else 0))
    if k < 1 or len(Q) == 0:
        return np.zeros((len(Q), 0), np.int64), np.zeros((len(Q), 0), np.float32)
    index = np.empty((len(Q), k), np.int64)
    sims = np.empty((len(Q), k), np.float32)
    for a in range(0, len(Q), CHUNK):
        S = Q[a: a + CHUNK] @ C.T  # (chunk, n)
        if exclude_self:
            rows = np.arange(len(S))
            S[rows, a + rows] = -np.inf
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1, kind="stable")
        index[a: a + CHUNK] = np.take_along_axis(part, order, axis=1)
        sims[a: a + CHUNK] = np.take_along_axis(S, index[a: a + CHUNK], axis=1)
    return index, sims


@dataclass
class Catalogue:
    """Reference songs with their embedding.

    Attributes
    ----------
    name : in words, e.g. "the 200 training songs of runs/ab"
    song_ids, paths, titles : (n,) str
    scores : (n,) float true hit scores (NaN when unknown)
    vectors : (n, d) float32 unit rows
    embedding : the embedding's name (``model`` or a registered network)

    ``mean`` (d,) and ``centred`` (n, d) (:meth:`centre`) are derived: similarities are
    cosines of vectors centred on the catalogue's mean.
    """

    name: str
    song_ids: np.ndarray
    paths: np.ndarray
    titles: np.ndarray
    scores: np.ndarray
    vectors: np.ndarray
    embedding: str

    def __post_init__(self):
        n = len(self.song_ids)
        if any(len(a) != n for a in (self.paths, self.titles, self.scores, self.vectors)):
            raise ParameterError(f"catalogue {self.name!r}: ids, paths, titles, scores and vectors differ in length")
        if n == 0:
            raise ParameterError(f"catalogue {self.name!r} holds no usable song (all failed or silent)")
        self._self_fit = None
        centre = n >= MIN_CATALOGUE
        self.mean = self.vectors.mean(axis=0) if centre else np.zeros(self.vectors.shape[1:], np.float32)
        self.centred = self.centre(self.vectors)

    def centre(self, V: np.ndarray) -> np.ndarray:
        """Vectors ``V`` (m, d) moved by the catalogue's mean vector and scaled to unit length:
        cosines of centred vectors compare what distinguishes songs within the catalogue (the
        embeddings of ReLU networks share a large common direction: raw cosines all near 1)."""
        return unit_rows(np.asarray(V, dtype=np.float32) - self.mean)

    def self_fit(self, k: int) -> np.ndarray:
        """Each reference song's mean similarity to its ``k`` nearest other songs, (n,) (NaN
        for a catalogue of fewer than :data:`MIN_CATALOGUE` songs: no fit is stated)."""
        if len(self.vectors) < MIN_CATALOGUE:
            return np.full(len(self.vectors), np.nan)
        if self._self_fit is None or self._self_fit[0] != k:
            _, s = nearest(self.centred, self.centred, k, exclude_self=True)
            self._self_fit = (k, s.mean(axis=1) if s.shape[1] else np.full(len(self.vectors), np.nan))
        return self._self_fit[1]


def fit_percentile(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each of ``values`` (m,) among ``reference`` (n,): the share of
    reference values below, ties counted half; NaN where a value is NaN or the reference empty."""
    ref = np.sort(np.asarray(reference, dtype=np.float64)[np.isfinite(reference)])
    v = np.asarray(values, dtype=np.float64)
    if len(ref) == 0:
        return np.full(len(v), np.nan)
    below = np.searchsorted(ref, v, side="left")
    upto = np.searchsorted(ref, v, side="right")
    return np.where(np.isfinite(v), 100.0 * (below + upto) / (2 * len(ref)), np.nan)


def store_vectors(store: FeatureStore, song_ids, embedding: str, scorers=None,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """The embedding ``embedding`` of songs of a feature store, (n, D) float32 unit rows.

    ``model`` runs ``scorers`` on the stored log-mel segments (in chunks of :data:`CHUNK`
    songs: memory stays flat); a registered network reads the store's embedding side file,
    which the store must have been extracted with (``extract --embedding NAME``).
    """
    ids = list(song_ids)
    if embedding != MODEL_EMBEDDING:
        if store.params.embedding != embedding:
            raise ParameterError(f"{str(store.root)!r} holds no {embedding!r} embedding (it has "
                                 f"{store.params.embedding or 'none'}): extract it with --embedding {embedding}")
        return unit_rows(store.load_embeddings(ids))
    if not scorers:
        raise ParameterError("--embedding model needs a ranking model (--model RUN)")
    dev = torch.device(device)
    uses_tags = any(s.uses_tags for s in scorers)
    parts = []
    for a in range(0, len(ids), CHUNK):
        chunk = ids[a: a + CHUNK]
        X = torch.from_numpy(store.load(chunk)).to(dev)
        T = torch.from_numpy(store.load_tags(chunk)).to(dev) if uses_tags else None
        parts.append(model_vectors(scorers, X, T))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _signature(path: Path) -> list:
    """A file's size and modification time (ns), or None when it is missing."""
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return None


def _given_titles(titles: dict, ids, paths) -> list[str]:
    """``titles[song_id]`` for each song, the file's own tag title where that is empty or
    absent (tags are read for those songs only)."""
    got = [titles.get(s) or "" for s in ids]
    gaps = [i for i, t in enumerate(got) if not t]
    paths = list(paths)
    for i, t in zip(gaps, file_tags([paths[i] for i in gaps])[1], strict=True):
        got[i] = t
    return got


def _vectors_and_titles(store: FeatureStore, ok: pd.DataFrame, embedding: str, scorers, device,
                        titles: dict | None) -> tuple[np.ndarray, list]:
    """The catalogue songs' vectors and titles, cached under ``$HITRANK_CACHE/neighbours`` by
    the store's manifest and the models' files: ranking against the same catalogue again
    neither runs the models over it nor reads its files' tags."""
    key = {"store": str(Path(store.root).resolve()), "embedding": embedding,
           "manifest": [_signature(Path(store.root) / f) for f in ("manifest.csv", "journal.jsonl")],
           "models": [[str(s.source), _signature(Path(s.source))] for s in (scorers or [])
                      if embedding == MODEL_EMBEDDING],
           "titles": titles is None}
    ids = ok.song_id.astype(str).to_numpy().astype(str)  # a unicode array: saved without pickle
    key["songs"] = hashlib.sha1("\n".join(ids).encode()).hexdigest()  # subsets of one store apart
    cache = cache_dir("neighbours", key) / "catalogue.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if np.array_equal(z["song_ids"], ids):
                    got = list(z["titles"]) if titles is None else _given_titles(titles, ids, ok.path)
                    return z["vectors"], got
        except (OSError, ValueError, KeyError):  # a damaged cache file is recomputed
            pass
    vectors = store_vectors(store, ids, embedding, scorers, device)
    found = file_tags(ok.path)[1] if titles is None else _given_titles(titles, ids, ok.path)
    found = [t if isinstance(t, str) else "" for t in found]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache, suffix=".tmp.npz") as tmp:
        np.savez(tmp, song_ids=ids, vectors=vectors, titles=np.asarray(found, dtype=str), allow_pickle=False)
    return vectors, found


def catalogue_songs(store: FeatureStore, song_ids=None) -> pd.DataFrame:
    """The manifest rows of the songs of ``store`` (or of ``song_ids`` among them) that a
    catalogue can hold: extracted and not silent."""
    man = store.manifest
    ok = man[(man.status == "ok") & ~man.silent.astype(bool)]
    if song_ids is not None:
        ok = ok[ok.song_id.isin(set(map(str, song_ids)))]
    return ok.reset_index(drop=True)


def store_catalogue(store_dir: str | os.PathLike, name: str, embedding: str, scorers=None,
                    device: torch.device | str = "cpu", song_ids=None, titles=None) -> Catalogue:
    """A catalogue of the usable songs of a feature store (or of ``song_ids`` among them):
    true hit scores from its manifest (NaN when the source had none), titles from ``titles``
    ({song_id: title}) or the files' own tags. Vectors and tags are cached
    (:func:`_vectors_and_titles`)."""
    store = FeatureStore.open(store_dir)
    ok = catalogue_songs(store, song_ids)
    vectors, found = _vectors_and_titles(store, ok, embedding, scorers, device, titles)
    return Catalogue(name, ok.song_id.astype(str).to_numpy(), ok.path.astype(str).to_numpy(),
                     np.asarray(found, dtype=object),
                     pd.to_numeric(ok.hit_score, errors="coerce").to_numpy(dtype=np.float64),
                     vectors, embedding)


def _holds(params: FeatureParams, embedding: str, scope: str) -> bool:
    """Whether a store of ``params`` holds ``embedding`` pooled over ``scope``: the query songs'
    vectors and the catalogue's must average over the same audio to be compared. (For the
    ``segment`` scope the segment itself is not compared: only a transfer run asks for it, and
    its training store was extracted with the run's own parameters, as its ranked songs are.)"""
    return (params.embedding, params.embedding_scope) == (embedding, scope)


def training_catalogue(model: str | os.PathLike, embedding: str, scorers,
                       device: torch.device | str = "cpu", embedded=None,
                       scope: str = "song") -> tuple[Catalogue | None, str]:
    """The training songs of a run as a catalogue (from the feature store its ``run.json``
    records), or None and why not, in words with the fix.

    ``embedded``: ``(store folder, song ids)`` holding the training songs' ``embedding`` when
    the training store lacks that pretrained network's pooled over ``scope`` (the query songs'
    scope: ``song`` for ``--embedding NAME``, a transfer run's own), extracted by the caller
    from the run's labels CSV (:func:`training_sources`)."""
    run = run_folder(model)
    info = read_run_info(run) or {}
    store = info.get("store", "")
    if not store:
        return None, (f"{str(run)!r} does not record its training songs' feature store (imported "
                      "models and older runs do not): pass --reference LABELS.csv|FOLDER")
    if not Path(store, "params.json").is_file():
        return None, (f"the training store {store!r} of {str(run)!r} is gone: pass --reference "
                      "LABELS.csv|FOLDER")
    song_ids = None
    if embedding != MODEL_EMBEDDING and not _holds(FeatureStore.open(store).params, embedding, scope):
        if embedded is None:
            return None, (f"the training store of {str(run)!r} holds no {embedding!r} embedding of the {scope} "
                          "scope and no labels CSV of the run is at hand to extract it from: pass --reference "
                          "LABELS.csv|FOLDER")
        store, song_ids = embedded
    cat = store_catalogue(store, f"the training songs of {run_name(run)}", embedding, scorers, device,
                          song_ids=song_ids, titles=labelled_titles(info.get("labels")))
    cat.name = f"the {len(cat.song_ids)} training songs of {run_name(run)}"
    return cat, ""


def _training_store(info: dict) -> str:
    """The training feature store a run's ``run.json`` (``info``) records, or '' when it records
    none or the store is gone (:func:`training_catalogue` says which, in words)."""
    store = info.get("store", "")
    return store if store and Path(store, "params.json").is_file() else ""


def training_sources(model: str | os.PathLike, embedding: str,
                     scope: str = "song") -> tuple[str, FeatureParams] | None:
    """What the training songs of a run need to be embedded by a pretrained network its
    training store lacks (pooled over ``scope``): ``(labels CSV, the store's FeatureParams)``,
    or None when the store already holds ``embedding`` of that scope (or ``embedding`` is the
    model's own), or the run records no usable store or labels CSV
    (:func:`training_catalogue` then says why)."""
    info = read_run_info(run_folder(model)) or {}
    store, labels = _training_store(info), info.get("labels", "")
    if embedding == MODEL_EMBEDDING or not store:
        return None
    params = FeatureStore.open(store).params
    if _holds(params, embedding, scope) or not labels or not Path(labels).is_file():
        return None
    return labels, params


def training_paths(model: str | os.PathLike) -> set[str]:
    """The audio files a run learned from (the real paths of its training store's songs, as
    ``run.json`` records the store), empty when it records none or the store is gone."""
    store = _training_store(read_run_info(run_folder(model)) or {})
    if not store:
        return set()
    man = FeatureStore.open(store).manifest
    return {os.path.realpath(p) for p in man.loc[man.status == "ok", "path"].astype(str)}


def labelled_titles(labels: str | os.PathLike | None) -> dict[str, str] | None:
    """``{song_id: title}`` from a labels CSV's ``title`` column, or None when there is no such
    CSV or column (then the files' own tags name the songs)."""
    named = labelled_names(labels)
    return {s: t for s, (_, t) in named.items()} if any(t for _, t in named.values()) else None


def split_cell(value) -> list[str]:
    """The entries of one ``;``-separated neighbour cell, closest first ([] for an empty or
    missing cell): the inverse of how :func:`neighbour_columns` writes them."""
    return [v.strip() for v in value.split(SEPARATOR)] if isinstance(value, str) and value.strip() else []


def _joined(values, fmt) -> str:
    return SEPARATOR.join(fmt(v) for v in values)


def neighbour_columns(Q: np.ndarray, cat: Catalogue, k: int = DEFAULT_K,
                      valid: np.ndarray | None = None) -> pd.DataFrame:
    """The neighbour columns of query songs ``Q`` (m, d) against a catalogue; rows not
    ``valid`` ((m,) bool: e.g. silent songs) and all-zero vectors get empty cells.

    Returns
    -------
    DataFrame of m rows: ``nearest`` (reference song ids, closest first, ``;``-separated),
    ``nearest_title``, ``nearest_score`` (true hit scores, empty when unknown),
    ``nearest_similarity`` (cosines, 4 decimals), ``fit`` (0-100) and ``fit_similarity``
    (mean cosine to the ``k`` nearest). ``.attrs["index"]`` (m, k) and
    ``.attrs["similarity"]`` hold the arrays.
    """
    if Q.shape[1] != cat.vectors.shape[1]:
        raise ParameterError(f"embedding widths differ: {Q.shape[1]} for the songs, {cat.vectors.shape[1]} "
                             f"for {cat.name} (same --embedding and model needed)")
    if k > len(cat.song_ids):
        log.warning("%s: %d song(s), fewer than the %d nearest asked for (--nearest); each song lists all of them",
                    cat.name, len(cat.song_ids), k)
    index, sims = nearest(cat.centre(Q), cat.centred, k)
    fit_sim = sims.mean(axis=1) if sims.shape[1] else np.full(len(Q), np.nan)
    ok = np.linalg.norm(Q, axis=1) > 0
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    fit_sim = np.where(ok, fit_sim, np.nan)
    out = pd.DataFrame({
        "nearest": [_joined(cat.song_ids[i], str) if g else "" for i, g in zip(index, ok, strict=True)],
        "nearest_title": [_joined(cat.titles[i], lambda t: str(t).replace(SEPARATOR, ",")) if g else ""
                          for i, g in zip(index, ok, strict=True)],
        "nearest_score": [_joined(cat.scores[i], lambda v: "" if not np.isfinite(v) else f"{v:.6g}") if g else ""
                          for i, g in zip(index, ok, strict=True)],
        "nearest_similarity": [_joined(s, lambda v: f"{v:.4f}") if g else "" for s, g in zip(sims, ok, strict=True)],
        "fit": fit_percentile(fit_sim, cat.self_fit(k)),
        "fit_similarity": fit_sim,
    })
    out.attrs["index"], out.attrs["similarity"] = index, sims
    return out


__all__ = ["MODEL_EMBEDDING", "DEFAULT_K", "COLUMNS", "TEXT_COLUMNS", "Catalogue", "unit_rows", "scoring_head", "model_vectors",
           "nearest", "fit_percentile", "neighbour_columns", "split_cell", "store_vectors", "catalogue_songs",
           "store_catalogue", "training_catalogue", "training_paths", "training_sources"]
