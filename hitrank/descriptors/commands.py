"""The descriptor branch's commands: ``hitrank cv`` and ``hitrank train`` with ``--data``
tables and a descriptor config (``configs/descriptors/``)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import HitrankError
from ..fileio import atomic_write_text, strict_json
from .config import DescriptorConfig, is_descriptor_config, load_descriptor_config
from .cv import run_cv, start_run, train_one
from .prepare import log_left_out, prepare
from .table import DescriptorTable, extractors_of, read_table


def train_table(cfg: DescriptorConfig, table: DescriptorTable, out: str | os.PathLike) -> dict:
    """Train one model on every usable row (a validation part stops training); writes
    ``out/model.pt`` and ``out/config.yaml``."""
    out = start_run(cfg, out, "train")
    prep, problems = prepare(cfg, table)
    log_left_out(problems)
    model, curve, (tr, va, _, _) = train_one(cfg, prep, np.arange(len(prep.y)), cfg.train.seed)
    info = {"name": cfg.name, "n_train": len(tr), "n_val": len(va), "n_left_out": len(problems),
            "epochs": len(curve), "curve": curve, "sources": table.sources, "dedup": prep.dedup,
            "choice": model.parts.get("choice")}
    model.save(out / "model.pt", info)
    atomic_write_text(out / "train.json", strict_json(info, indent=1))
    return info


def _load_checked(config, overrides) -> DescriptorConfig:
    """The descriptor config at ``config`` with ``overrides``; a clear error for another kind."""
    if not is_descriptor_config(config):
        raise HitrankError(f"--data needs a descriptor config (branch: descriptors, see "
                           f"configs/descriptors/); {str(config)!r} is not one")
    return load_descriptor_config(config, overrides)


def check_extractor(cfg: DescriptorConfig, table: DescriptorTable) -> None:
    """Refuse a ``descriptors.csv`` computed with another extractor than the config's
    ``data.extractor`` (the model would meet other descriptors when it ranks audio)."""
    for src, made in extractors_of(table).items():
        if made != cfg.data.extractor:
            raise HitrankError(f"{src!r} was made by `hitrank descriptors --extractor {made}` "
                               f"but the config says data.extractor={cfg.data.extractor!r}; "
                               f"use --set data.extractor={made} or describe the audio again")


def _checked_inputs(config, overrides, data) -> tuple[DescriptorConfig, DescriptorTable]:
    """The descriptor config and the tables of ``--data``, checked against each other."""
    cfg = _load_checked(config, overrides)
    table = read_table(data)
    check_extractor(cfg, table)
    return cfg, table


def cv_command(config, overrides=(), *, data, out: str | os.PathLike, progress: bool = False) -> dict:
    """``hitrank cv --data TABLE`` with a descriptor config; returns ``{"kind", "summary"}``."""
    cfg, table = _checked_inputs(config, overrides, data)
    return {"kind": "descriptor", "summary": run_cv(cfg, table, out, progress=progress)}


def train_command(config, overrides=(), *, data, out: str | os.PathLike) -> dict:
    """``hitrank train --data TABLE`` with a descriptor config; returns ``{"kind", "info"}``."""
    cfg, table = _checked_inputs(config, overrides, data)
    return {"kind": "descriptor", "info": train_table(cfg, table, out)}
