"""``hitrank table1``: the paper's Table 1 on a user's own catalogue, in one command.

From a labels CSV it extracts the stores the chosen rows need (Mid-30; HL-30; with tags for
the "+ tag" rows; each store made once and shared by every row that can read it, cached and
resumable under ``OUT/stores/``), cross-validates every row exactly as ``hitrank cv`` does
(one ordinary run folder per row under ``OUT/``, resumable fold by fold) and ends with the
``hitrank compare`` table next to the paper's rows (``OUT/comparison.csv`` and
``OUT/comparison.html``). Progress shows rows, folds and an estimated time left.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

from . import segments
from .config import PACKAGED_CONFIGS, Config, check_available, feature_params, load_config
from .corpus import check_training_labels
from .errors import ConfigError
from .fileio import atomic_write_text

log = logging.getLogger(__name__)

ROWS = "abcdefghijkl"  # the twelve rows of the paper's Table 1


@dataclass
class Row:
    """One row of Table 1: its letter, config and where it runs."""

    letter: str
    config: Path
    cfg: Config
    out: Path
    store: Path | None = None


def row_configs(rows: str | list[str] = ROWS) -> list[tuple[str, Path]]:
    """(letter, packaged config) of each requested row, in Table-1 order."""
    letters = [r.strip().lower() for r in (rows.split(",") if isinstance(rows, str) else rows) if r.strip()]
    if len(letters) == 1 and len(letters[0]) > 1:  # "aci" as well as "a,c,i"
        letters = list(letters[0])
    bad = [r for r in letters if r not in ROWS]
    if bad or not letters:
        raise ConfigError(f"--rows {','.join(letters)!r}: rows are letters of {list(ROWS)} (e.g. a,c,i)")
    found = {p.name[0]: p for p in sorted((PACKAGED_CONFIGS / "table1").glob("*.yaml"))}
    return [(r, found[r]) for r in ROWS if r in letters]


def plan_rows(rows, out: Path, overrides: list[str] = (), highlighter=None) -> list[Row]:
    """Load each row's config with the shared overrides (validated before any work);
    ``highlighter`` (an attention highlighter checkpoint) goes to the rows whose segment
    method takes one (HL-30)."""
    plan = []
    for letter, path in row_configs(rows):
        extra = list(overrides)
        if highlighter and segments.get(load_config(path, extra).features.segment).takes_highlighter:
            extra.append(f"features.highlighter={highlighter}")
        plan.append(Row(letter, path, load_config(path, extra), out / path.stem))
    return plan


def _store_key(cfg: Config) -> tuple:
    """Rows that differ only in whether they read tags share one store (a store with tags
    also serves the audio-only rows)."""
    p = feature_params(cfg).to_dict()
    return tuple((k, v) for k, v in sorted(p.items()) if k not in ("tags", "tagger"))


def extract_stores(commands: ModuleType, rows: list[Row], labels: str | os.PathLike, out: Path,
                   workers: int = 1, progress: bool = True) -> list:
    """Make (or resume) the stores the rows need, with ``commands.extract_store`` (see
    :func:`run_table1`); returns the extraction failures."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(_store_key(row.cfg), []).append(row)
    failures = []
    for group in groups.values():
        tagged = [r for r in group if r.cfg.features.tags]
        cfg = (tagged or group)[0].cfg
        params = check_available(cfg)  # missing tagger weights stop before any extraction
        name = params.segment + (f"_tags_{params.tagger}" if params.tags else "")
        if params.highlighter not in ("", "fallback"):
            name += "_" + params.highlighter.replace(":", "_")
        log.info("store %s for rows %s", out / "stores" / name, ",".join(r.letter for r in group))
        store, rep = commands.extract_store(cfg, params, labels, out / "stores" / name,
                                            workers=workers, progress=progress)
        failures += [f for f in rep.failures if f not in failures]
        for r in group:
            r.store = store
    return failures


def run_table1(commands: ModuleType, labels: str | os.PathLike, out: str | os.PathLike, rows=ROWS,
               overrides: list[str] = (), highlighter=None, workers: int = 1,
               progress: bool = True) -> dict:
    """Extract, cross-validate every row, compare; returns ``{"rows", "table", "pairs", ...}``
    (``diverged``: the rows whose model predicted NaN or inf for some test songs, with their
    counts and ``train.lr``).

    ``commands`` is the command layer, :mod:`hitrank.commands` (the CLI passes it): its
    ``extract_store``, ``cross_validate`` and ``compare`` do the work exactly as the commands
    do. It is passed rather than imported so that ``table1`` sits beside the command layer,
    not above it, and the chain of imports under the CLI stays short. ``overrides``
    (``--set``) apply to every row, e.g. ``train.epochs=15``; ``highlighter`` is an attention
    highlighter checkpoint for the HL-30 rows (default: the training-free fallback), which
    must not have been trained on these songs (refused otherwise, unless
    ``--set cv.allow_highlighter_overlap=true``).
    """
    check_training_labels(labels)  # before any store is extracted
    out = Path(out)
    plan = plan_rows(rows, out, overrides, highlighter)
    t0 = time.time()
    failures = extract_stores(commands, plan, labels, out, workers, progress)
    total = sum(r.cfg.cv.folds for r in plan)
    bar = tqdm(total=total, desc="table1", unit="fold", disable=not progress)
    done_folds, diverged = 0, []
    for row in plan:
        bar.set_postfix_str(f"row ({row.letter}) {row.cfg.name}")
        res = commands.cross_validate(row.cfg, out=row.out, store=row.store, progress=False, report=None)
        bad = (res.get("summary") or {}).get("non_finite", 0)
        if bad:  # a diverged row: its metrics rank NaN predictions last and mean little
            diverged.append({"row": row.letter, "name": row.cfg.name, "non_finite": int(bad),
                             "songs": int(res["summary"]["n_songs"]), "lr": float(row.cfg.train.lr)})
        done_folds += row.cfg.cv.folds
        bar.update(row.cfg.cv.folds)
        log.info("row (%s) done: %s (%d of %d folds, %.0f s so far)", row.letter, row.out, done_folds,
                 total, time.time() - t0)
    bar.close()
    table, pairs = commands.compare([r.out for r in plan], html=out / "comparison.html")
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False))
    if pairs is not None:
        atomic_write_text(out / "pairs.csv", pairs.to_csv(index=False))
    return {"rows": [r.out for r in plan], "table": table, "pairs": pairs, "failures": failures,
            "diverged": diverged, "seconds": time.time() - t0, "html": out / "comparison.html"}
