"""CV reports: the Table-1 comparison of runs, paired tests over folds, plots, an HTML page.

``hitrank cv`` writes ``report.html`` (with ``folds.png`` and ``curves.png``) into its run
folder; ``hitrank compare RUN_A RUN_B ...`` prints the comparison of several runs next to the
paper's published rows and can write the same HTML page for all of them.

Paired comparison of two runs: both used the same folds (same seed and corpus), so their
per-fold metrics are paired; the Wilcoxon signed-rank test (scipy, two-sided) over the folds
gives a p-value, and the effect size is the matched-pairs rank-biserial correlation
``r = (W+ - W-) / (W+ + W-)`` in [-1, 1] (positive: the first run is better).
"""

from __future__ import annotations

import html
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata, wilcoxon

from .errors import HitrankError
from .fileio import atomic_write_text

METRICS = ("ndcg", "kendall", "spearman")
#: Yu et al. (2018), Table 1 (KKBOX, 15k songs, 10-fold): nDCG, Kendall, Spearman @10%.
PAPER = {
    "a": (0.0725, -0.0421, -0.0696), "b": (0.0872, 0.0157, 0.0225), "c": (0.0999, 0.0735, 0.1121),
    "d": (0.1241, 0.1080, 0.1663), "e": (0.1069, 0.0828, 0.1222), "f": (0.0994, 0.1059, 0.1578),
    "g": (0.1200, 0.0575, 0.0854), "h": (0.1285, 0.1687, 0.2465), "i": (0.1127, 0.1852, 0.2713),
    "j": (0.1287, 0.2415, 0.3481), "k": (0.1127, 0.1868, 0.2753), "l": (0.1287, 0.2421, 0.3484),
}


def load_run(run: str | os.PathLike) -> dict:
    """``summary.json`` and ``folds.csv`` of a spectrogram CV run folder."""
    run = Path(run)
    try:
        summary = json.loads((run / "summary.json").read_text())
        folds = pd.read_csv(run / "folds.csv")
    except FileNotFoundError:
        raise HitrankError(f"{str(run)!r}: not a finished CV run (summary.json and folds.csv "
                           "are written by `hitrank cv`)") from None
    if "ndcg" not in folds:
        raise HitrankError(f"{str(run)!r}: not a spectrogram CV run (descriptor runs are "
                           "compared with scripts/descriptor_table.py)")
    curves = pd.read_csv(run / "curves.csv") if (run / "curves.csv").exists() else None
    name = str(summary.get("name", run.name))
    row = name[0] if len(name) > 1 and name[1] == "_" and name[0] in PAPER else ""
    return {"path": str(run), "label": run.name, "name": name, "paper_row": row,
            "summary": summary, "folds": folds, "curves": curves}


def comparison_table(runs: list[dict]) -> pd.DataFrame:
    """One row per run (mean +- std over folds) and, before it, the paper's row if known."""
    rows = []
    for r in runs:
        if r["paper_row"]:
            rows.append({"row": f"({r['paper_row']}) paper", "run": "KKBOX 15k songs",
                         **dict(zip(METRICS, PAPER[r["paper_row"]], strict=True))})
        s = r["summary"]
        rows.append({"row": f"({r['paper_row']})" if r["paper_row"] else "", "run": r["label"],
                     "songs": str(s.get("n_songs", "")), "folds": str(s.get("folds", "")),
                     **{m: f"{s[m + '_mean']:.3f} +- {s[m + '_std']:.3f}" for m in METRICS}})
    return pd.DataFrame(rows).fillna("")


def paired(a: dict, b: dict, metric: str) -> dict:
    """Wilcoxon signed-rank over shared folds of ``a`` vs ``b`` and the rank-biserial effect."""
    fa, fb = a["folds"].set_index("fold")[metric], b["folds"].set_index("fold")[metric]
    shared = fa.index.intersection(fb.index)
    d = (fa[shared] - fb[shared]).to_numpy(dtype=float)
    nz = d[d != 0]
    if len(nz) < 2:
        return {"n": len(shared), "mean_diff": float(np.mean(d)) if len(d) else 0.0, "p": 1.0, "r": 0.0}
    ranks = rankdata(np.abs(nz))
    w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    return {"n": len(shared), "mean_diff": float(np.mean(d)), "p": float(wilcoxon(nz).pvalue),
            "r": float((w_plus - w_minus) / (w_plus + w_minus))}


def pairwise(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for a, b in itertools.combinations(runs, 2):
        for m in METRICS:
            t = paired(a, b, m)
            rows.append({"a": a["label"], "b": b["label"], "metric": m + "@10%", "folds": t["n"],
                         "mean a-b": round(t["mean_diff"], 4), "wilcoxon p": round(t["p"], 4),
                         "effect r": round(t["r"], 3)})
    return pd.DataFrame(rows)


def plot_folds(runs: list[dict], path: Path) -> Path | None:
    """Per-fold metric values of each run (points) and their means (bars)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(4 + 1.1 * len(runs) * 1.5, 3.4))
    for ax, m in zip(axes, METRICS, strict=True):
        for i, r in enumerate(runs):
            v = r["folds"][m].to_numpy(dtype=float)
            ax.bar(i, v.mean(), color="#cde6dc", width=0.6)
            ax.scatter(np.full(len(v), i) + np.linspace(-0.15, 0.15, len(v)), v, s=12, color="#1b7f6a")
        ax.axhline(0, color="#999", lw=0.6)
        ax.set_xticks(range(len(runs)), [r["label"][:14] for r in runs], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{m}@10% per fold", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(runs: list[dict], path: Path) -> Path | None:
    """Validation loss per epoch, every fold of every run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    with_curves = [r for r in runs if r["curves"] is not None and len(r["curves"])]
    if not with_curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(with_curves):
        for k, (_, c) in enumerate(r["curves"].groupby(["fold", "member", "grid"])):
            ax.plot(c["epoch"], c["val_loss"], color=colours[i % len(colours)], alpha=0.5, lw=0.8,
                    label=r["label"] if k == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_cv_report(runs: list[dict], out: str | os.PathLike) -> Path:
    """The HTML page (and its PNGs beside it) for one or more runs."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.stem
    folds_png = plot_folds(runs, out.with_name(f"{stem}_folds.png"))
    curves_png = plot_curves(runs, out.with_name(f"{stem}_curves.png"))
    pair = pairwise(runs) if len(runs) > 1 else None
    imgs = "".join(f'<p><img src="{html.escape(p.name, quote=True)}" alt="{alt}"></p>'
                   for p, alt in ((folds_png, "per-fold metrics"), (curves_png, "training curves")) if p)
    parts = [f"<h1>hitrank CV report</h1><p class=meta>{len(runs)} run(s) &middot; "
             f"{time.strftime('%Y-%m-%d %H:%M')} &middot; metrics on the true top 10% of each test "
             "fold, mean +- std over folds; the paper's rows are KKBOX data (compare directions)</p>",
             _table_html(comparison_table(runs))]
    if pair is not None:
        parts += ["<h2>Paired comparisons over folds</h2><p class=meta>Wilcoxon signed-rank "
                  "(two-sided) over the shared folds; effect r = matched-pairs rank-biserial "
                  "(positive: a is better)</p>", _table_html(pair)]
    parts.append(imgs)
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>hitrank CV report</title>"
            "<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}th{background:#f6f6f6}"
            ".meta{color:#666}</style></head><body>" + "".join(parts) + "</body></html>")
    atomic_write_text(out, page)
    return out
