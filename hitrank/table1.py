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

from .config import PACKAGED_CONFIGS, Config, feature_params, highlighter_checkpoint, load_config
from .errors import ConfigError

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
    from . import segments

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


def extract_stores(rows: list[Row], labels: str | os.PathLike, out: Path, workers: int = 1,
                   progress: bool = True) -> list:
    """Make (or resume) the stores the rows need; returns the extraction failures."""
    from .extract import extract

    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(_store_key(row.cfg), []).append(row)
    failures = []
    for group in groups.values():
        tagged = [r for r in group if r.cfg.features.tags]
        params = feature_params((tagged or group)[0].cfg)
        name = params.segment + (f"_tags_{params.tagger}" if params.tags else "")
        if params.highlighter not in ("", "fallback"):
            name += "_" + params.highlighter.replace(":", "_")
        store = out / "stores" / name
        log.info("store %s for rows %s", store, ",".join(r.letter for r in group))
        rep = extract(labels, store, params, workers=workers, progress=progress,
                      highlighter=highlighter_checkpoint(group[0].cfg))
        failures += [f for f in rep.failures if f not in failures]
        for r in group:
            r.store = store
    return failures


def run_table1(labels: str | os.PathLike, out: str | os.PathLike, rows=ROWS, overrides: list[str] = (),
               highlighter=None, workers: int = 1, progress: bool = True) -> dict:
    """Extract, cross-validate every row, compare; returns ``{"rows", "table", "pairs", ...}``.

    ``overrides`` (``--set``) apply to every row, e.g. ``train.epochs=15``; ``highlighter``
    is an attention highlighter checkpoint for the HL-30 rows (default: the training-free
    fallback), which must not have been trained on these songs (refused otherwise, unless
    ``--set cv.allow_highlighter_overlap=true``).
    """
    from tqdm import tqdm

    from .cv import run_cv
    from .cvreport import comparison_table, load_run, pairwise, write_cv_report
    from .data import load_dataset
    from .experiment import check_highlighter_overlap
    from .fileio import atomic_write_text
    from .store import FeatureStore

    out = Path(out)
    plan = plan_rows(rows, out, overrides, highlighter)
    t0 = time.time()
    failures = extract_stores(plan, labels, out, workers, progress)
    total = sum(r.cfg.cv.folds for r in plan)
    bar = tqdm(total=total, desc="table1", unit="fold", disable=not progress)
    done_folds = 0
    for row in plan:
        store = FeatureStore.open(row.store)
        ds, problems = load_dataset(store)
        notes = check_highlighter_overlap(row.cfg, store, set(ds.song_ids))
        bar.set_postfix_str(f"row ({row.letter}) {row.cfg.name}")
        run_cv(row.cfg, ds, row.out, progress=False, notes=notes)
        done_folds += row.cfg.cv.folds
        bar.update(row.cfg.cv.folds)
        log.info("row (%s) done: %s (%d of %d folds, %.0f s so far)", row.letter, row.out, done_folds,
                 total, time.time() - t0)
    bar.close()
    runs = [load_run(r.out) for r in plan]
    table = comparison_table(runs)
    pairs = pairwise(runs) if len(runs) > 1 else None
    atomic_write_text(out / "comparison.csv", table.to_csv(index=False))
    if pairs is not None:
        atomic_write_text(out / "pairs.csv", pairs.to_csv(index=False))
    write_cv_report(runs, out / "comparison.html")
    return {"rows": [r.out for r in plan], "table": table, "pairs": pairs, "failures": failures,
            "seconds": time.time() - t0, "html": out / "comparison.html"}
