"""One entry point per model-using command, whatever kind of model or config it is given.

The spectrogram branch (Mid-30 / HL-30 log-mels, the paper's CNNs) and the descriptor branch
(Spotify-style descriptor tables, the smaller seed systems) share the commands ``cv``,
``train``, ``rank`` and ``predict``. These functions pick the branch from what the user gave
(``--data`` tables, or ``--store`` / ``--labels`` audio features) and from the run folder's
manifest (:mod:`hitrank.runinfo`), so the command line never has to look inside checkpoints.
"""

from __future__ import annotations

import os

from .errors import HitrankError
from .runinfo import resolve_model, run_kind


def cross_validate(config, overrides=(), *, out: str | os.PathLike, store=None, labels=None,
                   data=None, workers: int = 1, distribute: str = "auto", progress: bool = True) -> dict:
    """``hitrank cv``: a descriptor config with ``data`` tables, else a spectrogram config
    with a ``store`` or ``labels``. Returns the branch's result dict (``kind``, ``summary``)."""
    if data is not None:
        from .descriptors.run import cv_command

        return cv_command(config, overrides, data=data, out=out, progress=progress)
    from .experiment import cv_command

    return cv_command(config, overrides, out=out, store=store, labels=labels, distribute=distribute,
                      workers=workers, progress=progress)


def train(config, overrides=(), *, out: str | os.PathLike, store=None, labels=None, data=None,
          workers: int = 1, progress: bool = True) -> dict:
    """``hitrank train``: one model (``out/model.pt``), from tables or audio features."""
    if data is not None:
        from .descriptors.run import train_command

        return train_command(config, overrides, data=data, out=out)
    from .experiment import train_command

    return train_command(config, overrides, out=out, store=store, labels=labels, workers=workers,
                         progress=progress)


def _rank_spectrogram(folder, model, *, cache, workers, device, progress, highlighter, engine, address):
    from .rank import rank_folder

    return rank_folder(folder, model, cache=cache, workers=workers, device=device, progress=progress,
                       highlighter=highlighter, engine=engine, address=address)


def _rank_descriptor(folder, model, *, cache, workers, device, progress, highlighter, engine, address):
    from .descriptors.apply import rank_descriptor_folder

    if engine != "local":
        raise HitrankError(f"{str(model)!r} is a descriptor model: its audio descriptors are computed "
                           "with the local engine; drop --engine ray")
    return rank_descriptor_folder(folder, model, cache=cache, workers=workers, progress=progress)


#: how each kind of run ranks a folder of audio (kinds: hitrank.runinfo.RUN_KINDS)
RANKERS = {"spectrogram": _rank_spectrogram, "descriptor": _rank_descriptor}


def rank(folder, model, *, cache=None, workers: int = 1, device: str = "auto", progress: bool = True,
         highlighter=None, engine: str = "local", address: str | None = None):
    """``hitrank rank``: rank a folder of audio with a run folder, a checkpoint or an imported
    pretrained model's name. Returns ``(ranking DataFrame, failures)``."""
    path = resolve_model(model)
    return RANKERS[run_kind(path)](folder, path, cache=cache, workers=workers, device=device,
                                   progress=progress, highlighter=highlighter, engine=engine,
                                   address=address)


def predict(model, data):
    """``hitrank predict``: score every row of descriptor tables with a descriptor run.

    Returns ``(predictions DataFrame, number of models)``.
    """
    from .descriptors.apply import predict_table
    from .descriptors.run import load_models
    from .descriptors.table import read_table

    path = resolve_model(model)
    if run_kind(path) != "descriptor":
        raise HitrankError(f"{str(model)!r} is a spectrogram model: it ranks audio folders with "
                           "`hitrank rank`; `predict` scores descriptor tables with descriptor runs")
    models = load_models(path)
    return predict_table(models, read_table(data)), len(models)
