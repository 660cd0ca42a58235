"""The terminal summary of a transfer cv run (the CLI prints it; ``summary.json`` holds all)."""

from __future__ import annotations

import math

from ..strata import MIN_STRATUM, interval_note, named_some, within_warnings

NA = "n/a"  # an undefined figure (NaN in the results, null in summary.json)


def _num(v, fmt: str) -> str:
    """``v`` formatted, or n/a when undefined (None, NaN)."""
    return NA if v is None or not math.isfinite(v) else format(v, fmt)


def _interval(lo, hi) -> str:
    return f"[{NA}]" if NA in (_num(lo, "+.2f"), _num(hi, "+.2f")) else f"[{lo:+.2f}, {hi:+.2f}]"


def figure(d: dict, key: str) -> str:
    """``d[key] [d[key_ci]]`` as printed (Spearman-style signs; ``n/a`` where undefined)."""
    lo, hi = d.get(f"{key}_ci") or (float("nan"), float("nan"))
    return f"{_num(d[key], '+.3f')} {_interval(lo, hi)}"


def difference(d: dict) -> str:
    """A paired difference ``{"diff", "ci"}`` as printed (``n/a`` where undefined)."""
    return f"{_num(d['diff'], '+.3f')} {_interval(*d['ci'])}"


def within_lines(column: str, w: dict, base: dict, versus: dict) -> list[str]:
    """The within-stratum block: the model's :func:`hitrank.strata.within_metrics` ``w``, the
    stratum-mean baseline's ``base`` and their paired difference ``versus``."""
    cells = w["cell_mean"]["cells"]
    cell = (f"cell mean {w['cell_mean']['spearman']:+.3f} over {cells} fold x stratum cells" if cells
            else f"no fold x stratum cell has {MIN_STRATUM} songs and labels that vary")
    ranked, total = (w["mean"].get("strata", len(w["strata"])) if w["mean"] else 0), len(w["strata"])
    thin = w.get("thin") or {}
    why = "; ".join(reason for reason, some in (
        ("their labels are all equal", any(d.get("note") == "labels all equal" for d in w["strata"].values())),
        ("thin: most of their songs in fold x stratum cells too small to rank in", bool(thin))) if some)
    over = f"{ranked} strata" if ranked == total else f"{ranked} of {total} strata (the others rank nothing: {why})"
    lines = [f"  within {column} (per-fold centred; mean over {over}, {cell}):"]
    if w["mean"]:
        lines.append(f"  {'model':<22} {figure(w['mean'], 'spearman'):>24} {figure(w['mean'], 'ndcg'):>24}")
    lines.append(f"  {column + ' mean (baseline)':<22} {base['mean'].get('spearman', 0.0):>+24.3f}   (0 by construction)")
    for name, d in w["strata"].items():
        label = f"{name} ({d['n']}{', thin' if name in thin else ''})"  # thin: see the warning
        lines.append(f"    {label:<20} {figure(d, 'spearman'):>24} {figure(d, 'ndcg'):>24}")
    if w["left_out"]:
        lines.append(f"    strata with fewer than {MIN_STRATUM} songs, left out: {', '.join(w['left_out'])}")
    if w.get("missing"):
        ids = w.get("missing_ids") or []
        lines.append(f"    songs with no {column}, left out: {w['missing']}" + (f" ({named_some(ids)})" if ids else ""))
    lines.append(f"  model - {column} mean, paired over {versus.get('resampled', 'songs')}: all songs "
                 f"{difference(versus['pooled'])}"
                 + (f", within {column} {difference(versus['within'])}" if versus.get("within") else ""))
    return lines


def format_within_report(r: dict) -> str:
    """The within-stratum report of a spectrogram cv run (:func:`hitrank.commands.within_report`),
    ending with its warnings (:func:`hitrank.strata.within_warnings`), one ``warning:`` line each."""
    lines = [f"  {'':<22} {'Spearman (all songs)':>24} {'nDCG':>24}",
             f"  {'model':<22} {figure(r['model']['pooled'], 'spearman'):>24} {figure(r['model']['pooled'], 'ndcg'):>24}",
             f"  {r['column'] + ' mean (baseline)':<22} {figure(r['stratum_mean']['pooled'], 'spearman'):>24} "
             f"{figure(r['stratum_mean']['pooled'], 'ndcg'):>24}"]
    lines += within_lines(r["column"], r["model"]["within"], r["stratum_mean"]["within"], r["versus_stratum_mean"])
    lines += [f"  warning: {w}" for w in within_warnings(r["model"]["within"], r["column"])]
    return "\n".join(lines)


def format_transfer_summary(s: dict) -> str:
    """Pooled and within-stratum metrics with 95% intervals next to the stratum-mean baseline,
    random, the oracle and the label ceiling, and the run's ``warnings``, as text lines."""
    chosen = sorted({c["learner"] for c in s["chosen"]})
    lines = [f"{s['name']}: {s['songs']} songs, {s['folds']} folds grouped by {s['group_by']}"
             + (f" ({s['groups']} groups)" if s.get("groups") else "")
             + f", {s['embedding']} embedding ({s['scope']}), target {s['target']}"
             + (f", weighted by {s['weight']}" if s.get("weight") else "") + ", learner(s) chosen: "
             + ", ".join(chosen) + (f"; {s['seconds']:.0f} s" if "seconds" in s else ""),
             f"  {'':<22} {'Spearman (all songs)':>24} {'nDCG@' + format(s['top'], '.0%'):>24}"]
    rows = [("model", s["model"]["pooled"])]
    if "stratum_mean" in s:
        rows.append((f"{s['within']} mean (baseline)", s["stratum_mean"]["pooled"]))
    for name, d in rows:
        lines.append(f"  {name:<22} {figure(d, 'spearman'):>24} {figure(d, 'ndcg'):>24}")
    r, o = s["random"], s["oracle"]
    lines.append(f"  {'random ranking':<22} {r['spearman']:>+24.3f} {r['ndcg']:>+24.3f}")
    lines.append(f"  {'oracle (the labels)':<22} {o['spearman']:>+24.3f} {o['ndcg']:>+24.3f}")
    if s["model"].get("within"):
        lines += within_lines(s["within"], s["model"]["within"], s["stratum_mean"]["within"],
                              s["versus_stratum_mean"])
    c = s.get("ceiling")
    if c:
        top = _num(c["ceiling"], ".2f")
        txt = (f"  label ceiling ({c['songs']} songs, median {c['raters_median']:.0f} raters; split-half "
               f"{_num(c['split_half'], '+.2f')}, Spearman-Brown reliability {_num(c['reliability'], '.2f')}): "
               + (f"a perfect model correlates at most {top} with these labels" if top != NA
                  else "no ceiling (see the warning)"))
        if "within" in c:
            txt += (f"; within {s['within']}: reliability {_num(c['within']['reliability'], '.2f')}, "
                    f"ceiling {_num(c['within']['ceiling'], '.2f')}")
        lines.append(txt)
    if s.get("left_out"):
        lines.append(f"  {len(s['left_out'])} song(s) left out (no features or no usable score): see summary.json")
    warnings = list(s.get("warnings", []))
    pooled = [("all songs", s["model"]["pooled"])]
    if "stratum_mean" in s:
        pooled.append((f"all songs, {s['within']} mean", s["stratum_mean"]["pooled"]))
    notes = [interval_note(d, what) for what, d in pooled]
    warnings += [w for w in notes + (c or {}).get("warnings", []) if w and w not in warnings]
    lines += [f"  warning: {w}" for w in warnings]
    return "\n".join(lines)
