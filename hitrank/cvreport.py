"""CV reports: the Table-1 comparison of runs, paired tests, plots, an HTML page.

``hitrank cv`` writes ``report.html`` (with ``folds.png`` and ``curves.png``) into its run
folder; ``hitrank compare RUN_A RUN_B ...`` prints the comparison of several runs next to the
paper's published rows and can write the same HTML page for all of them.

Paired comparison of two runs, by TEST SONG IDS (each run's ``predictions.csv``):

Wilcoxon over folds
    Only folds whose test songs are the same set in both runs are paired (same fold seed and
    songs); folds whose test songs differ are dropped, and when none is left the test is
    refused (p = NaN). The Wilcoxon signed-rank test (scipy, two-sided) over those folds'
    metrics (``folds.csv``) gives a p-value; the effect size is the matched-pairs
    rank-biserial correlation ``r = (W+ - W-) / (W+ + W-)`` in [-1, 1] (positive: the first
    run is better). Runs without ``predictions.csv`` are paired by fold index, as before.
paired bootstrap over songs
    The songs both runs tested are resampled with replacement (seeded), within each stratum
    of (fold in run a, fold in run b), so every resample has the fold structure of both runs;
    each run's metric is recomputed per fold on the resampled songs and averaged over its
    folds. Reported: the difference a - b on the shared songs, the 2.5% and 97.5% quantiles
    of the resampled differences (a 95% percentile interval), and the share of resamples in
    which a is strictly better. It works whether or not the folds agree.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import rankdata, wilcoxon

from .errors import HitrankError
from .fileio import atomic_write_text
from .metrics import MIN_TOP, ranking_metrics, top_metrics_batch
from .strata import stratum_mean_predictions
from .uncertainty import oracle, random_baseline, stratified_resamples

METRICS = ("ndcg", "kendall", "spearman")
N_BOOT = 2000  # paired-bootstrap resamples
BOOT_SEED = 0
CI_LEVEL = 0.95  # the bootstrap interval
DEFAULT_TOP = 0.1  # cv.top_fraction of runs whose config.yaml does not say
PREDICTION_COLUMNS = ("song_id", "fold", "hit_score", "pred")
SCORE_RTOL = 1e-9  # hit scores of a shared song must agree to this relative tolerance
#: Columns of :func:`pairwise`, in order.
PAIRWISE_COLUMNS = ("a", "b", "metric", "songs", "folds", "mean a-b", "wilcoxon p", "effect r",
                    "boot a-b", "boot lo", "boot hi", "P(a>b)", "note")
#: Yu et al. (2018), Table 1 (KKBOX, 15k songs, 10-fold): nDCG, Kendall, Spearman @10%.
PAPER = {
    "a": (0.0725, -0.0421, -0.0696), "b": (0.0872, 0.0157, 0.0225), "c": (0.0999, 0.0735, 0.1121),
    "d": (0.1241, 0.1080, 0.1663), "e": (0.1069, 0.0828, 0.1222), "f": (0.0994, 0.1059, 0.1578),
    "g": (0.1200, 0.0575, 0.0854), "h": (0.1285, 0.1687, 0.2465), "i": (0.1127, 0.1852, 0.2713),
    "j": (0.1287, 0.2415, 0.3481), "k": (0.1127, 0.1868, 0.2753), "l": (0.1287, 0.2421, 0.3484),
}


def _read_predictions(run: Path) -> pd.DataFrame | None:
    path = run / "predictions.csv"
    if not path.exists():
        return None
    pred = pd.read_csv(path, dtype={"song_id": str})
    missing = [c for c in PREDICTION_COLUMNS if c not in pred]
    if missing:
        raise HitrankError(f"{str(path)!r}: no column(s) {missing}; expected {list(PREDICTION_COLUMNS)}")
    if pred["song_id"].duplicated().any():
        dup = pred.loc[pred["song_id"].duplicated(), "song_id"].iloc[0]
        raise HitrankError(f"{str(path)!r}: song {dup!r} is tested twice; each song belongs to one "
                           "test fold")
    return pred[list(PREDICTION_COLUMNS)]


def _top_fraction(run: Path) -> float:
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except FileNotFoundError:
        return DEFAULT_TOP
    return float((cfg.get("cv") or {}).get("top_fraction", DEFAULT_TOP))


def within_results(summary: dict) -> tuple[str, dict, dict] | None:
    """A run's within-stratum results: ``(column, model, stratum-mean baseline)`` as
    :func:`hitrank.strata.evaluate` dicts, or None. Transfer runs keep them at the top of
    ``summary.json`` (``within`` names the column); spectrogram runs under ``within`` (written
    by ``hitrank cv --within``, :func:`hitrank.commands.within_report`)."""
    w = summary.get("within")
    if isinstance(w, dict) and "stratum_mean" in w:
        return w["column"], w["model"], w["stratum_mean"]
    if isinstance(w, str) and w and "stratum_mean" in summary:
        return w, summary["model"], summary["stratum_mean"]
    return None


def _read_strata(run: Path, summary: dict, pred: pd.DataFrame | None) -> np.ndarray | None:
    """The stratum of each song of ``pred`` (the column that ``predictions.csv`` keeps beside
    the predictions of a run with within-stratum results), or None."""
    found = within_results(summary)
    if found is None or pred is None:
        return None
    column = found[0]
    full = pd.read_csv(run / "predictions.csv", dtype={"song_id": str, column: str}, keep_default_na=False)
    return full[column].astype(str).to_numpy() if column in full else None


def _check_summary(run: Path, summary) -> None:
    """HitrankError naming the run unless ``summary`` (read from its ``summary.json``) is a
    mapping whose fold statistics (``ndcg_mean``, ``spearman_std``, ...) and pooled metrics
    are numbers or null, and whose counts (``n_songs``, ``songs``, ``folds``) are whole
    numbers >= 0."""
    def number(v) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    if not isinstance(summary, dict):
        raise HitrankError(f"{str(run)!r}: damaged run folder: summary.json holds a "
                           f"{type(summary).__name__}, not a mapping; run `hitrank cv` again")
    pooled = summary.get("pooled", {})
    stats = {f"{m}_{s}" for m in (*METRICS, "recall") for s in ("mean", "std", "se")}
    values = {**{k: v for k, v in summary.items() if k in stats},
              **({f"pooled.{k}": v for k, v in pooled.items()} if isinstance(pooled, dict) else {"pooled": pooled})}
    bad = [k for k, v in values.items() if not number(v)]
    bad += [k for k in ("n_songs", "songs", "folds") if k in summary  # counts: whole numbers >= 0
            and not (isinstance(summary[k], int) and not isinstance(summary[k], bool) and summary[k] >= 0)]
    if bad:
        raise HitrankError(f"{str(run)!r}: damaged run folder: summary.json's {bad[:3]} "
                           f"{'is' if len(bad) == 1 else 'are'} not a number (or not a count); run `hitrank cv` "
                           "again")


def _undefined_as_nan(summary: dict) -> dict:
    """``summary.json`` writes an undefined fold statistic (``*_mean``, ``*_std``, ``*_se``) as
    ``null`` (strict JSON); in memory it is NaN again, printed ``nan``."""
    return {k: (float("nan") if v is None and k.endswith(("_mean", "_std", "_se")) else v)
            for k, v in summary.items()}


def load_run(run: str | os.PathLike) -> dict:
    """``summary.json``, ``folds.csv`` and ``predictions.csv`` of a spectrogram CV run folder.

    Returns
    -------
    dict with ``path``, ``label``, ``name``, ``paper_row``, ``summary`` (dict), ``folds``
    (DataFrame, one row per fold), ``curves`` (DataFrame or None), ``predictions``
    (DataFrame with song_id, fold, hit_score, pred; None for runs without one), ``strata``
    ((n,) str aligned with ``predictions`` for runs with within-stratum results, else None)
    and ``top`` (the run's ``cv.top_fraction``).
    """
    run = Path(run)
    if not run.exists():
        raise HitrankError(f"{str(run)!r} does not exist (`hitrank compare` takes the --out folders of `hitrank cv`)")
    if not run.is_dir():
        raise HitrankError(f"{str(run)!r}: not a run folder (`hitrank compare` takes the --out folders of "
                           "`hitrank cv`)")
    try:
        summary = json.loads((run / "summary.json").read_text())
        _check_summary(run, summary)
        summary = _undefined_as_nan(summary)
        folds = pd.read_csv(run / "folds.csv")
    except FileNotFoundError:
        raise HitrankError(f"{str(run)!r}: not a finished CV run (summary.json and folds.csv "
                           "are written by `hitrank cv`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise HitrankError(f"{str(run)!r}: damaged run folder: summary.json or folds.csv cannot be read "
                           f"({type(exc).__name__}: {str(exc)[:120]}); run `hitrank cv` again") from None
    if "ndcg" not in folds:
        raise HitrankError(f"{str(run)!r}: not a spectrogram or transfer CV run (`compare` reads their "
                           "per-fold nDCG; a descriptor run's summary.json holds its metrics per model, "
                           "and the repository's scripts/descriptor_table.py tabulates them)")
    text = [m for m in METRICS if m in folds and not pd.api.types.is_numeric_dtype(folds[m])]
    if text:
        raise HitrankError(f"{str(run)!r}: damaged run folder: folds.csv column(s) {text} hold text, "
                           "not numbers; run `hitrank cv` again")
    curves = pd.read_csv(run / "curves.csv") if (run / "curves.csv").exists() else None
    name = str(summary.get("name", run.name))
    row = name[0] if len(name) > 1 and name[1] == "_" and name[0] in PAPER else ""
    pred = _read_predictions(run)
    return {"path": str(run), "label": run.name, "name": name, "paper_row": row,
            "summary": summary, "folds": folds, "curves": curves,
            "predictions": pred, "strata": _read_strata(run, summary, pred), "top": _top_fraction(run)}


def _within_cell(result: dict) -> str:
    """``mean [lo, hi]`` of a within-stratum Spearman (:func:`hitrank.strata.evaluate`), and
    how many strata were thin (their songs mostly in fold x stratum cells under 3 songs)."""
    mean = (result.get("within") or {}).get("mean") or {}
    thin = (result.get("within") or {}).get("thin") or {}
    note = (f" (thin: {len(thin)} of {len(result['within'].get('strata', {}))} strata in cells too small to "
            "rank in)" if thin else "")
    if "spearman" not in mean:  # no stratum ranked anything (every one thin: said)
        return "n/a" + note if thin else ""
    lo, hi = mean["spearman_ci"]
    if not _defined(mean["spearman"]):  # null in summary.json (NaN in memory): every stratum undefined
        return "n/a" + note
    return f"{mean['spearman']:+.3f} " + (f"[{lo:+.2f}, {hi:+.2f}]" if _defined(lo) and _defined(hi) else "[n/a]") + note


def _defined(v) -> bool:
    return v is not None and np.isfinite(v)


def baseline_rows(r: dict) -> list[dict]:
    """The baselines of a run with within-stratum results, on its own test songs and folds:
    a random ranking (mean over random draws), the oracle (the labels themselves) and the
    stratum mean (each song predicted by its stratum's mean over the other folds' songs),
    each with the paper's per-fold metrics; [] for other runs."""
    found, pred = within_results(r["summary"]), r["predictions"]
    if found is None or pred is None or r.get("strata") is None:
        return []
    column, _, base = found
    y, folds, top = pred["hit_score"].to_numpy(float), pred["fold"].to_numpy(), r["top"]
    rnd, orc = random_baseline(y, folds, top), oracle(y, folds, top)
    mean_pred = stratum_mean_predictions(y, folds, r["strata"])
    per_fold = pd.DataFrame([ranking_metrics(y[folds == f], mean_pred[folds == f], top) for f in np.unique(folds)])
    common = {"row": "baseline", "songs": str(len(y)), "folds": str(len(np.unique(folds)))}
    within = f"spearman within {column}"
    return [{**common, "run": f"{r['label']}: random ranking", **{m: f"{rnd[m]['mean']:.3f}" for m in METRICS},
             within: "+0.000 (by construction)"},
            {**common, "run": f"{r['label']}: oracle (the labels)", **{m: f"{orc[m]:.3f}" for m in METRICS},
             within: "+1.000"},
            {**common, "run": f"{r['label']}: {column} mean",
             **{m: f"{per_fold[m].mean():.3f} +- {per_fold[m].std(ddof=1):.3f}" for m in METRICS},
             within: _within_cell(base)}]


def comparison_table(runs: list[dict]) -> pd.DataFrame:
    """One row per run (mean +- std over folds) and, before it, the paper's row if known; after
    a run with within-stratum results, its within-stratum Spearman (mean over strata, 95%
    interval) and its baseline rows (:func:`baseline_rows`)."""
    rows = []
    for r in runs:
        if r["paper_row"]:
            rows.append({"row": f"({r['paper_row']}) paper", "run": "KKBOX 15k songs",
                         **dict(zip(METRICS, PAPER[r["paper_row"]], strict=True))})
        s = r["summary"]
        found = within_results(s)
        rows.append({"row": f"({r['paper_row']})" if r["paper_row"] else "", "run": r["label"],
                     "songs": str(s.get("n_songs", "")), "folds": str(s.get("folds", "")),
                     **{m: f"{s[m + '_mean']:.3f} +- {s[m + '_std']:.3f}" for m in METRICS},
                     **({f"spearman within {found[0]}": _within_cell(found[1])} if found else {})})
        rows += baseline_rows(r)
    return pd.DataFrame(rows).fillna("")


def align(a: dict, b: dict) -> dict:
    """Which test songs and folds two runs share (from their ``predictions``).

    Returns
    -------
    dict with ``songs_a``, ``songs_b``, ``shared_songs`` (counts), ``folds_a``, ``folds_b``
    (fold counts), ``same_folds`` (sorted fold numbers whose test songs are the same set in
    both runs), ``folds_differ`` (fold numbers in both runs whose test songs differ) and
    ``note`` ('' when the runs tested the same songs in the same folds). None when either run
    has no predictions.
    """
    pa, pb = a.get("predictions"), b.get("predictions")
    if pa is None or pb is None:
        return None
    sets_a = {int(f): frozenset(g) for f, g in pa.groupby("fold")["song_id"]}
    sets_b = {int(f): frozenset(g) for f, g in pb.groupby("fold")["song_id"]}
    both = sorted(set(sets_a) & set(sets_b))
    same = [f for f in both if sets_a[f] == sets_b[f]]
    shared = len(set(pa["song_id"]) & set(pb["song_id"]))
    notes = []
    if shared != len(pa) or shared != len(pb):
        notes.append(f"{shared} of {len(pa)}/{len(pb)} test songs shared")
    if len(same) != len(sets_a) or len(same) != len(sets_b):
        notes.append(f"test folds differ: {len(same)} of {max(len(sets_a), len(sets_b))} folds "
                     "have the same test songs" + ("; Wilcoxon refused" if not same else ""))
    return {"songs_a": len(pa), "songs_b": len(pb), "shared_songs": shared,
            "folds_a": len(sets_a), "folds_b": len(sets_b), "same_folds": same,
            "folds_differ": [f for f in both if f not in same], "note": "; ".join(notes)}


def paired(a: dict, b: dict, metric: str) -> dict:
    """Wilcoxon signed-rank over the folds of ``a`` and ``b`` that tested the same songs.

    Parameters
    ----------
    a, b : runs from :func:`load_run` (at least ``folds``; with ``predictions`` the folds
        are matched by their test songs, without by fold index)
    metric : a column of ``folds.csv`` (ndcg, kendall, spearman)

    Returns
    -------
    dict with ``n`` (folds paired), ``mean_diff`` (mean a - b over them), ``p`` (two-sided;
    1.0 with fewer than two non-zero differences, NaN when no fold could be paired), ``r``
    (rank-biserial effect), ``shared_songs`` (None without predictions), ``folds_differ``
    (folds in both runs whose test songs differ) and ``note``.
    """
    fa, fb = a["folds"].set_index("fold")[metric], b["folds"].set_index("fold")[metric]
    al = align(a, b)
    if al is None:
        shared = fa.index.intersection(fb.index)
        extra = {"shared_songs": None, "folds_differ": 0,
                 "note": "no predictions.csv: paired by fold index"}
    else:
        shared = fa.index.intersection(fb.index).intersection(pd.Index(al["same_folds"]))
        extra = {"shared_songs": al["shared_songs"], "folds_differ": len(al["folds_differ"]),
                 "note": al["note"]}
    if len(shared) == 0:
        return {"n": 0, "mean_diff": float("nan"), "p": float("nan"), "r": float("nan"), **extra}
    d = (fa[shared] - fb[shared]).to_numpy(dtype=float)
    nz = d[d != 0]
    if len(nz) < 2:
        return {"n": len(shared), "mean_diff": float(np.mean(d)), "p": 1.0, "r": 0.0, **extra}
    ranks = rankdata(np.abs(nz))
    w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    return {"n": len(shared), "mean_diff": float(np.mean(d)), "p": float(wilcoxon(nz).pvalue),
            "r": float((w_plus - w_minus) / (w_plus + w_minus)), **extra}


def _run_boot_metrics(y: np.ndarray, pred: np.ndarray, folds: np.ndarray, idx: np.ndarray,
                      top: float, metrics) -> dict:
    """Each metric per fold on the resampled songs ``idx`` (B, n), averaged over folds -> (B,).

    Folds with fewer than :data:`~hitrank.metrics.MIN_TOP` shared songs cannot be ranked and
    are left out of the average (all NaN when none is left).
    """
    fold_of_col = folds[idx[0]]  # strata keep each column's fold fixed across rows
    per_fold = {m: [] for m in metrics}
    for f in np.unique(fold_of_col):
        cols = idx[:, fold_of_col == f]
        if cols.shape[1] < MIN_TOP:
            continue
        res = top_metrics_batch(y[cols], pred[cols], top)
        for m in metrics:
            per_fold[m].append(res[m])
    return {m: np.mean(v, axis=0) if v else np.full(len(idx), np.nan) for m, v in per_fold.items()}


def _shared_table(a: dict, b: dict) -> tuple[pd.DataFrame, str]:
    pa, pb = a.get("predictions"), b.get("predictions")
    if pa is None or pb is None:
        missing = [r["label"] for r in (a, b) if r.get("predictions") is None]
        return pd.DataFrame(), f"no predictions.csv in {', '.join(missing)}: no bootstrap"
    m = pa.merge(pb, on="song_id", suffixes=("_a", "_b")).sort_values("song_id", kind="stable")
    if len(m) == 0:
        return m, "no shared test songs: no bootstrap"
    ya, yb = m["hit_score_a"].to_numpy(float), m["hit_score_b"].to_numpy(float)
    bad = ~np.isclose(ya, yb, rtol=SCORE_RTOL, atol=0.0)
    if bad.any():
        return pd.DataFrame(), (f"hit scores differ on {int(bad.sum())} shared songs (other labels): "
                                "no bootstrap")
    return m.reset_index(drop=True), ""


def paired_bootstrap(a: dict, b: dict, metrics=METRICS, n_boot: int = N_BOOT,
                     seed: int = BOOT_SEED, cache: dict | None = None) -> dict:
    """Paired bootstrap over the test songs two runs share (see the module docstring).

    Parameters
    ----------
    a, b : runs from :func:`load_run` (with ``predictions``)
    metrics : metric names (``ndcg``, ``kendall``, ``spearman``, ``recall``), each @ the
        run's ``top`` fraction
    n_boot : resamples
    seed : the resampling seed (the same seed and runs give the same numbers)
    cache : optional dict reused across calls (by :func:`pairwise`): a run's resampled
        metrics are computed once per set of shared songs and strata

    Returns
    -------
    dict metric -> {``diff`` (a - b on the shared songs), ``lo``, ``hi`` (the 95% interval
    of the resampled a - b), ``p_a_better`` (share of resamples with a > b), ``n_songs``,
    ``note``}; NaN numbers (and a note) when the runs share no songs or disagree on them.
    """
    shared, note = _shared_table(a, b)
    if note:
        nan = float("nan")
        return {k: {"diff": nan, "lo": nan, "hi": nan, "p_a_better": nan, "n_songs": len(shared),
                    "note": note} for k in metrics}
    y = shared["hit_score_a"].to_numpy(float)
    fa, fb = shared["fold_a"].to_numpy(np.int64), shared["fold_b"].to_numpy(np.int64)
    strata = fa * (int(fb.max()) + 1) + fb
    key = hashlib.sha1(shared["song_id"].str.cat(sep="\x1f").encode() + strata.tobytes()).hexdigest()
    identity = np.argsort(strata, kind="stable")[None]  # every song once, grouped like resamples
    sides = {}
    for label, run in (("a", a), ("b", b)):
        ck = (run.get("path", id(run)), key, n_boot, seed, tuple(metrics))
        sides[label] = {"ck": ck, "pred": shared[f"pred_{label}"].to_numpy(float),
                        "folds": fa if label == "a" else fb, "top": run.get("top", DEFAULT_TOP),
                        "res": None if cache is None else cache.get(ck)}
    todo = [label for label, side in sides.items() if side["res"] is None]
    parts: dict = {label: [] for label in todo}
    if todo:  # one pass over the resamples serves both runs
        for idx in itertools.chain([identity], stratified_resamples(strata, n_boot, seed)):
            for label in todo:
                side = sides[label]
                parts[label].append(_run_boot_metrics(y, side["pred"], side["folds"], idx,
                                                      side["top"], metrics))
        for label in todo:
            sides[label]["res"] = {k: np.concatenate([p[k] for p in parts[label]]) for k in metrics}
            if cache is not None:
                cache[sides[label]["ck"]] = sides[label]["res"]
    result = {}
    for k in metrics:
        d = sides["a"]["res"][k] - sides["b"]["res"][k]
        point, boot = d[0], d[1:]  # row 0: the shared songs themselves
        lo, hi = np.quantile(boot, [(1 - CI_LEVEL) / 2, 1 - (1 - CI_LEVEL) / 2])
        result[k] = {"diff": float(point), "lo": float(lo), "hi": float(hi),
                     "p_a_better": float(np.mean(boot > 0)), "n_songs": len(shared), "note": ""}
    return result


def pairwise(runs: list[dict], n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> pd.DataFrame:
    """Every pair of runs, every metric: Wilcoxon over folds with the same test songs and the
    paired bootstrap over shared songs; columns :data:`PAIRWISE_COLUMNS`."""
    rows = []
    cache: dict = {}
    for a, b in itertools.combinations(runs, 2):
        boot = paired_bootstrap(a, b, METRICS, n_boot, seed, cache)
        tops = {a.get("top", DEFAULT_TOP), b.get("top", DEFAULT_TOP)}
        for m in METRICS:
            t, bt = paired(a, b, m), boot[m]
            notes = [n for n in (t["note"], bt["note"]) if n]
            if len(tops) > 1:
                notes.append(f"top fractions differ ({', '.join(map(str, sorted(tops)))})")
            rows.append({"a": a["label"], "b": b["label"], "metric": m + "@10%",
                         "songs": t["shared_songs"],
                         "folds": t["n"], "mean a-b": round(t["mean_diff"], 4),
                         "wilcoxon p": round(t["p"], 4), "effect r": round(t["r"], 3),
                         "boot a-b": round(bt["diff"], 4), "boot lo": round(bt["lo"], 4),
                         "boot hi": round(bt["hi"], 4), "P(a>b)": round(bt["p_a_better"], 3),
                         "note": "; ".join(dict.fromkeys(notes))})
    return pd.DataFrame(rows, columns=list(PAIRWISE_COLUMNS))


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
        parts += ["<h2>Paired comparisons</h2><p class=meta>Wilcoxon signed-rank (two-sided) over "
                  "the folds whose test songs are the same in both runs (folds; effect r = "
                  "matched-pairs rank-biserial, positive: a is better); paired bootstrap over the "
                  f"shared test songs (songs; {N_BOOT} resamples within folds): boot a-b on those "
                  f"songs, boot lo / hi its {CI_LEVEL:.0%} interval, P(a&gt;b) the share of "
                  "resamples where a is better</p>", _table_html(pair)]
    parts.append(imgs)
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>hitrank CV report</title>"
            "<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}th{background:#f6f6f6}"
            ".meta{color:#666}</style></head><body>" + "".join(parts) + "</body></html>")
    atomic_write_text(out, page)
    return out
