"""Using trained descriptor models: predict a table, rank a folder of audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..corpus import is_audio_name, list_folder
from ..errors import LabelsError
from ..runtime import cache_dir
from .audio import describe_folder
from .extractor_names import DEFAULT_EXTRACTOR
from .model import DescriptorModel, load_models
from .prepare import prepare
from .table import DescriptorTable, read_table


def descriptor_cache(source: str | os.PathLike, tags: bool = False,
                     extractor: str = DEFAULT_EXTRACTOR) -> Path:
    """Cache folder for the audio descriptors of a folder / labels CSV."""
    return cache_dir("descriptors", {"source": str(Path(source).absolute()), "descriptors": 1,
                                     "tags": tags, "extractor": extractor})


def table_from_source(source: str | os.PathLike, workers: int = 1, progress: bool = True,
                      cache: str | os.PathLike | None = None, tags: bool = False,
                      extractor: str = DEFAULT_EXTRACTOR) -> tuple[DescriptorTable, list]:
    """A descriptor table from a CSV, or from a folder of audio (described with ``extractor``,
    cached; with the 50 ``tag_*`` columns when ``tags``)."""
    source = Path(source)
    if source.is_file() and is_audio_name(source.name):
        raise LabelsError(f"{str(source)!r} is one audio file; give the folder of audio that holds the songs "
                          "(or a descriptor CSV)")
    if source.is_dir() and not list_folder(source) and not any(source.glob("*.csv")):
        raise LabelsError(f"{str(source)!r}: the folder holds no audio files and no .csv tables")
    if source.is_dir() and list_folder(source):  # audio (a folder of CSV tables is a table)
        out = Path(cache) if cache else descriptor_cache(source, tags, extractor)
        rep = describe_folder(source, out, workers=workers, progress=progress, tags=tags,
                              extractor=extractor)
        ok = set(rep.song_ids)
        if rep.ok == 0:
            first = rep.failures[0] if rep.failures else None
            raise LabelsError(f"{str(source)!r}: none of its {len(rep.failures)} audio file(s) could be described"
                              + (f" (first: {first[1]!r}: {first[2]})" if first else ""))
        table = read_table(out / "descriptors.csv")
        keep = table.frame["song_id"].astype(str).isin(ok).to_numpy()
        return _rows(table, keep), rep.failures
    return read_table(source), []


def _rows(table: DescriptorTable, keep: np.ndarray) -> DescriptorTable:
    return DescriptorTable(table.frame[keep].reset_index(drop=True), table.ids[keep],
                           table.artists[keep], table.sources, table.columns)


def predict_table(models: list[DescriptorModel], table: DescriptorTable) -> pd.DataFrame:
    """One row per input row: ``row`` (in the rows of every table read, in order), ``source``
    and ``line`` (the file it came from and its line there, as an editor counts them: the
    header is line 1), ``id, artist``, the score (probability or predicted target; its name in
    ``attrs["score"]``), ``score_std`` over the fold models, ``n_models``."""
    cfg = models[0].cfg
    prep, _ = prepare(cfg, table, columns=models[0].columns, need_target=False)
    preds = np.stack([m.predict(prep) for m in models])
    if cfg.data.task == "regress" and cfg.data.transform != "none":
        name = f"predicted_{cfg.data.transform}_{cfg.data.target}"
    else:
        name = "hit_probability" if cfg.data.task == "classify" else "predicted_" + cfg.data.target
    frame = table.frame
    source = frame["source_file"].to_numpy()[prep.rows] if "source_file" in frame else ""
    line = frame["source_line"].to_numpy()[prep.rows] if "source_line" in frame else prep.rows + 2
    pred = pd.DataFrame({
        "row": prep.rows + 1, "source": source, "line": line, "id": prep.ids, "artist": prep.artists,
        name: preds.mean(axis=0), "score_std": preds.std(axis=0), "n_models": len(models),
    })
    pred.attrs["score"] = name
    return pred


def rank_descriptor_folder(folder, model, cache=None, workers: int = 1, progress: bool = True):
    """Rank a folder of audio with a descriptor model (same columns as :func:`hitrank.rank.rank_folder`)."""
    models = load_models(model)
    tags = any(c.startswith("tag_") for c in models[0].columns)  # trained on `descriptors --tags`
    table, failures = table_from_source(folder, workers, progress, cache, tags=tags,
                                        extractor=models[0].cfg.data.extractor)
    if len(table) == 0:
        return pd.DataFrame(columns=["rank", "song_id", "path", "score"]), failures
    pred = predict_table(models, table)
    score_col = pred.attrs["score"]
    ranking = pd.DataFrame({
        "song_id": table.frame["song_id"].astype(str).to_numpy(), "path": table.frame["path"].to_numpy(),
        "score": pred[score_col].to_numpy(), "score_std": pred["score_std"].to_numpy(),
        "n_models": len(models),
    })
    ranking = ranking.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    ranking.attrs["analysed"] = "the whole song (its first 10 minutes)"  # for the HTML report
    return ranking, failures
