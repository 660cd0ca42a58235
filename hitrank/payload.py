"""The one checkpoint file format of hitrank and its one safe reader.

Every kind of model hitrank saves (``kind``: spectrogram scorers, descriptor models, the
attention highlighter, converted taggers) is a dict ``{"format", "kind", ...}`` of plain
Python types and tensors written atomically by :func:`save_payload`, and read by
:func:`load_payload` with ``torch.load(weights_only=True)``: a file holding executable
Python objects is refused in one line and never loaded unsafely. Checkpoints written by
earlier versions (one format per kind) are read too. Models inside are stored as registry
name + kwargs + state dict (:mod:`hitrank.checkpoint` builds them).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import CheckpointError
from .fileio import atomic_torch_save

if TYPE_CHECKING:
    import torch

FORMAT = "hitrank-checkpoint/2"
KINDS = ("spectrogram", "descriptor", "highlighter", "tagger", "transfer")
#: formats written by earlier hitrank versions, read as the kind they held
LEGACY_FORMATS = {"hitrank-checkpoint/1": "spectrogram",
                  "hitrank-descriptor-checkpoint/1": "descriptor",
                  "hitrank-highlighter/1": "highlighter"}


def save_payload(path: str | os.PathLike, kind: str, payload: dict) -> None:
    """Write a checkpoint of ``kind`` atomically: ``{"format", "kind", **payload}``.

    ``payload`` holds plain Python types and tensors only (so it loads with
    ``weights_only=True``); models are stored as registry name + kwargs + state dict.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    atomic_torch_save({"format": FORMAT, "kind": kind, **payload}, path)


def _remedy(path: Path) -> str:
    """What to do about a damaged checkpoint: import it again when it is an imported pretrained
    model (``hitrank pretrained import`` writes a ``provenance.json`` beside each), else copy
    or retrain it."""
    if (path.parent / "provenance.json").is_file():
        return ("an imported pretrained model: import it again with `hitrank pretrained import "
                "HSP_CNN_FOLDER --force`")
    return "copy the checkpoint again or retrain it"


def load_payload(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``); the one reader of every kind.

    Raises
    ------
    CheckpointError
        One line naming the file and the reason: missing, unreadable or corrupt, holding
        executable Python objects (refused, never loaded unsafely), not a hitrank
        checkpoint, or of another kind than ``kind``.
    """
    import torch  # lazily: run folders are read (run.json, kinds) without torch

    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pt"))
        raise CheckpointError(f"{str(path)!r} is a folder, not a checkpoint file"
                              + (f" (it holds {', '.join(inside[:5])})" if inside else " (it holds no .pt file)"))
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r}: checkpoint file does not exist")
    damage = _damage(path)
    if damage:
        raise CheckpointError(f"{str(path)!r}: {damage}; {_remedy(path)}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # torch names the class or function it refused
            raise CheckpointError(f"{str(path)!r}: the file is damaged (its contents cannot be read); "
                                  f"{_remedy(path)}") from None
        raise CheckpointError(f"{str(path)!r}: refused: the file holds executable Python objects, "
                              "not plain tensors; hitrank never loads such files (they can run "
                              "code); use a checkpoint written by hitrank") from None
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign files
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{str(path)!r}: cannot load checkpoint ({type(exc).__name__}: "
                              f"{first}); is it a hitrank checkpoint?") from None
    found = None
    if isinstance(payload, dict):
        found = payload.get("kind") if payload.get("format") == FORMAT else LEGACY_FORMATS.get(payload.get("format"))
    if found not in KINDS:
        raise CheckpointError(f"{str(path)!r}: not a hitrank checkpoint (format {FORMAT!r} expected)")
    if kind is not None and found != kind:
        raise CheckpointError(f"{str(path)!r} holds a {found} model, not a {kind} model")
    return {**payload, "kind": found}


def _damage(path: Path) -> str:
    """Why a file cannot be a checkpoint at all ('' when it looks like one): empty, a cut or
    damaged zip archive (torch's format), or neither a zip nor a pickle (torch's legacy
    format) - so that such files are not mistaken for ones holding executable objects."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"PK\x03\x04"):
        return "" if zipfile.is_zipfile(path) else "the file is truncated or damaged (an incomplete archive)"
    if not head.startswith(b"\x80"):
        return "not a PyTorch checkpoint (a damaged file, or another kind of file)"
    return ""


def check_finite(values, where: str, fix: str) -> None:
    """Raise a CheckpointError ``"{where} has N of M values not finite (NaN or inf); {fix}"``
    when an array of weights or statistics (any shape) holds NaN or inf: a damaged file that
    would otherwise load and make every output NaN."""
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise CheckpointError(f"{where} has {bad} of {np.size(values)} values not finite (NaN or inf); {fix}")


def checkpoint_kind(path: str | os.PathLike) -> str:
    """The kind of model a checkpoint holds (spectrogram, descriptor, highlighter)."""
    return load_payload(path)["kind"]


def model_state(model: torch.nn.Module) -> dict:
    """A model's state dict on the CPU (what checkpoints store)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}
