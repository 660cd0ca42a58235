"""Run folders say what they are: ``RUN/run.json`` names the kind of model they hold.

``{"format": "hitrank-run/1", "kind": "spectrogram" | "descriptor", "command": "cv" |
"train" | "import", "hitrank": version, "created": ISO time, ...}`` (``store``: the training
songs' feature store; ``labels``: the labels CSV ``cv`` / ``train`` learned from, whose titles
name the training songs as closest songs). Commands that use a run
(``rank``, ``predict``, ``compare``) read it instead of opening checkpoints to guess. A
single checkpoint file names its kind itself (:func:`hitrank.payload.checkpoint_kind`).
Run folders written before run.json existed are recognised from their first checkpoint
(:func:`find_checkpoints`: the checkpoints of a run folder).

Pretrained models imported with ``hitrank pretrained import`` live under
``$HITRANK_CACHE/models/<name>`` and can be named instead of a path (``--model yu2018-kkbox``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from .errors import CheckpointError, StaleRunError
from .fileio import atomic_write_text
from .payload import checkpoint_kind
from .runtime import models_dir
from .version import __version__

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
RUN_FORMAT = "hitrank-run/1"
RUN_KINDS = ("spectrogram", "descriptor", "transfer")  # transfer: models on pretrained embeddings
#: pretrained models that ``hitrank pretrained import`` can install, and where from
PRETRAINED = {"yu2018-kkbox": "the authors' KKBOX-trained ret30 CNN + tag DNN with JYnet tags",
              "yu2018-kkbox-hl30": "the same model on hitrank's HL-30 (fallback highlighter) segment"}


def run_folder(model: str | os.PathLike) -> Path:
    """The run folder of a resolved model: the folder itself, or a checkpoint file's folder."""
    path = Path(model)
    return path.parent if path.is_file() else path


def run_name(model: str | os.PathLike) -> str:
    """The name of a model's run folder as it is now (``--model .`` or ``runs/a/`` name the
    folder itself; a copied or renamed run its new name), for messages and reference names."""
    return Path(os.path.abspath(run_folder(model))).name


def rows_fingerprint(rows) -> str:
    """16 hex digits of SHA-256 over ``rows`` (tuples of text: a song's id, its hit score's
    ``repr``, ...), sorted, so that their order does not count: recorded in ``run.json`` so
    that a run written again, or resumed, checks it learns from what it started with."""
    text = "\n".join("\t".join(row) for row in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_run_info(out: str | os.PathLike, kind: str, command: str, **extra) -> None:
    """Write ``out/run.json`` (atomically)."""
    if kind not in RUN_KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {RUN_KINDS}")
    info = {"format": RUN_FORMAT, "kind": kind, "command": command, "hitrank": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    atomic_write_text(Path(out) / RUN_FILE, json.dumps(info, indent=2))


def check_reuse(out: str | os.PathLike, kind: str, command: str, name: str) -> None:
    """Refuse to write a ``kind`` ``command`` run of config ``name`` into a folder that holds
    another run (another kind, command or config): its files would be replaced or mixed with
    the new ones. The same run's folder is fine (an interrupted run resumes there)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StaleRunError(f"--out {str(out)!r} is a file; a run is a folder: give a new folder's name")
    info = read_run_info(out)
    if info is None:
        return
    held = (info.get("kind"), info.get("command"), info.get("name", name))
    if held != (kind, command, name):
        raise StaleRunError(f"{str(out)!r} holds a {held[0]} `{held[1]}` run of {held[2]!r}; writing a {kind} "
                            f"`{command}` run of {name!r} there would replace or mix its files: use another --out")


def add_run_info(run: str | os.PathLike, **fields) -> None:
    """Add ``fields`` to a run folder's run.json (atomically); nothing when it has none."""
    info = read_run_info(run)
    if info is not None:
        atomic_write_text(Path(run) / RUN_FILE, json.dumps({**info, **fields}, indent=2))


def read_run_info(run: str | os.PathLike) -> dict | None:
    """The run.json of a run folder, or None when there is none."""
    path = Path(run) / RUN_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r}: unreadable run manifest ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT or info.get("kind") not in RUN_KINDS:
        raise CheckpointError(f"{str(path)!r}: not a hitrank run manifest ({RUN_FORMAT!r} with a kind "
                              f"in {list(RUN_KINDS)} expected)")
    return info


def resolve_model(spec: str | os.PathLike) -> Path:
    """A run folder, a checkpoint file, or the name of an imported pretrained model."""
    path = Path(spec)
    if path.exists():
        return path
    name = str(spec)
    if name in PRETRAINED:
        installed = models_dir() / name
        if installed.is_dir():
            return installed
        raise CheckpointError(f"pretrained model {name!r} is not imported yet: run `hitrank pretrained "
                              f"import PATH` with PATH a checkout of the authors' repository "
                              f"(github.com/OckhamsRazor/HSP_CNN) or a folder with its released "
                              f"weights ({PRETRAINED[name]})")
    raise CheckpointError(f"{name!r}: no such run folder or checkpoint (pretrained models: "
                          f"{', '.join(PRETRAINED)})")


FINGERPRINT_CHARS = 12  # hex characters of a model's fingerprint


def model_fingerprint(model: str | os.PathLike) -> str:
    """The first :data:`FINGERPRINT_CHARS` hex characters of the SHA-256 of a model's
    checkpoints (:func:`find_checkpoints`, names and bytes): equal for the same model however it
    is named (a relative or absolute path, a pretrained model's name), different after training
    it again."""
    h = hashlib.sha256()
    for path in find_checkpoints(model):
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:FINGERPRINT_CHARS]


def run_kind(model: str | os.PathLike) -> str:
    """What a run folder or checkpoint holds: ``spectrogram`` or ``descriptor``."""
    path = resolve_model(model)
    first = None
    if path.is_dir():
        info = read_run_info(path)
        if info is not None:
            return info["kind"]
        first = find_checkpoints(path)[0]  # a folder holding no model is refused by name first
        log.info("%r has no %s (written by an older hitrank): reading its first checkpoint", str(path),
                 RUN_FILE)
    kind = checkpoint_kind(first or find_checkpoints(path)[0])
    if kind not in RUN_KINDS:
        raise CheckpointError(f"{str(path)!r} holds a {kind} checkpoint, not a model that ranks songs")
    return kind


def find_checkpoints(model: str | os.PathLike) -> list[Path]:
    """A checkpoint file, or every ``fold_*.pt`` / ``model.pt`` in a run folder (or in an
    imported pretrained model, named like ``yu2018-kkbox``)."""
    model = resolve_model(model)
    if model.is_file():
        return [model]
    if model.is_dir():
        found = sorted(model.glob("fold_*.pt")) or sorted(model.glob("model.pt"))
        if found:
            _check_no_fold_missing(model, found)
            return found
        what = (" is a learning-curve folder (learning_curve.csv), which holds no model"
                if (model / "learning_curve.csv").is_file() else ": no fold_*.pt or model.pt in this run folder")
        raise CheckpointError(f"{str(model)!r}{what}; train one with `hitrank cv` or `hitrank train`")
    raise CheckpointError(f"{str(model)!r}: no such run folder or checkpoint")


def _check_no_fold_missing(folder: Path, found: list[Path]) -> None:
    """Refuse a cross-validation run folder whose record of a trained fold (``fold_XX.json``,
    or the number of folds in ``run.json``) has lost its checkpoint (``fold_XX.pt``): its fold
    ensemble would rank silently with fewer models than it was evaluated with."""
    have = {p.stem for p in found}
    missing = {p.stem for p in folder.glob("fold_*.json") if p.stem not in have}
    info = read_run_info(folder)  # a transfer cv records its number of folds here
    if info is not None and isinstance(info.get("folds"), int) and any(p.name.startswith("fold_") for p in found):
        missing |= {f"fold_{f:02d}" for f in range(info["folds"])} - have
    missing = sorted(missing)
    if missing:
        names = ", ".join(f"{m}.pt" for m in missing)
        again = ("run the same `hitrank cv` command again (a transfer run is run again whole, from its cached "
                 "embeddings)" if info is not None and "folds" in info
                 else "run the same `hitrank cv` command again to retrain the fold")
        raise CheckpointError(f"{str(folder)!r}: {names} missing ({len(found)} of {len(found) + len(missing)} "
                              f"fold checkpoints found), so its fold ensemble is incomplete; put the file back, "
                              f"or {again}")
