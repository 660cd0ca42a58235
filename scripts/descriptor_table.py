"""Print a Markdown table of descriptor runs (their summary.json) with baselines beside them.

    python scripts/descriptor_table.py runs/topify_mlp runs/topify_smote ...

Every run lists its model, then the majority (or mean), logistic (or ridge), histogram
gradient boosting and random-forest baselines of the same rows and folds; the best ROC-AUC
(classify) or Spearman (regress) of each run is in bold. Below each table: the duplicate rows
removed before splitting and, for blends, the tree weight chosen on validation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHOW = {"classify": ("roc_auc", "pr_auc", "balanced_accuracy", "f1", "precision@10%"),
        "regress": ("mae", "spearman_all", "ndcg@10%", "spearman@10%")}
BEST = {"classify": "roc_auc", "regress": "spearman_all"}


def cell(r: dict, spread: bool = True, bold: bool = False) -> str:
    text = f"{r['mean']:.3f} ± {r['std']:.3f}" if spread else f"{r['mean']:.3f}"
    return f"**{text}**" if bold else text


def read_summary(run: Path) -> dict:
    """A run's summary.json; an undefined metric (written ``null``, strict JSON) reads as NaN."""
    s = json.loads((run / "summary.json").read_text())
    for res in s["results"].values():
        for r in res.values():
            for k in ("mean", "std"):
                if r.get(k) is None:
                    r[k] = float("nan")
    return s


def dedup_note(s: dict) -> str | None:
    d = s.get("dedup")
    if not d or not d["rows_removed"]:
        return None
    return (f"{d['rows_removed']} duplicate rows of {d['songs_with_copies']} songs removed before "
            f"splitting (same {d['by']}); copies agree on the target for "
            f"{100 * d['copies_agree_on_target']:.1f}% of those songs")


def notes(run: Path, s: dict) -> list[str]:
    out = []
    weights = [c["gbdt_weight"] for c in s.get("choices", []) if "gbdt_weight" in c]
    if weights:
        out.append(f"{run.name}: tree weight chosen on validation per fold: "
                   + ", ".join(f"{w:.2f}" for w in weights))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    by_task: dict = {}
    for run in args.runs:
        s = read_summary(run)
        by_task.setdefault(s["task"], []).append((run, s))
    for task, runs in by_task.items():
        cols = SHOW[task]
        print("\n| run | split | rows (hit rate) | model | " + " | ".join(cols) + " |")
        print("|" + "---|" * (4 + len(cols)))
        lines, dedup = [], {}
        for run, s in runs:
            how = f"{s['folds']}-fold" if s["split"] == "kfold" else "decade-out"
            rate = f" ({s['prevalence']:.3f})" if s.get("prevalence") is not None else ""
            key = BEST[task]
            top = max((r[key]["mean"] for r in s["results"].values() if r[key]["mean"] == r[key]["mean"]),
                      default=float("nan"))  # NaN (undefined) never the best
            for i, (model, res) in enumerate(s["results"].items()):
                head = f"| {run.name} | {how} | {s['n_rows']}{rate} |" if i == 0 else "| | | |"
                kfold = s["split"] == "kfold"
                print(head + f" {model} | " + " | ".join(
                    cell(res[c], kfold, c == key and res[c]["mean"] == top) for c in cols) + " |")
            lines += notes(run, s)
            note = dedup_note(s)
            if note:
                dedup.setdefault(note, []).append(run.name)
        lines = [f"{', '.join(names)}: {note}" for note, names in dedup.items()] + lines
        if lines:
            print()
            for line in lines:
                print(f"- {line}")


if __name__ == "__main__":
    main()
