"""Print a Markdown table of descriptor runs (their summary.json) with baselines beside them.

    python scripts/descriptor_table.py runs/topify_mlp runs/topify_smote ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHOW = {"classify": ("roc_auc", "pr_auc", "balanced_accuracy", "f1", "precision@10%"),
        "regress": ("mae", "spearman_all", "ndcg@10%", "spearman@10%")}


def cell(r: dict, spread: bool = True) -> str:
    return f"{r['mean']:.3f} ± {r['std']:.3f}" if spread else f"{r['mean']:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    by_task: dict = {}
    for run in args.runs:
        s = json.loads((run / "summary.json").read_text())
        by_task.setdefault(s["task"], []).append((run, s))
    for task, runs in by_task.items():
        cols = SHOW[task]
        print("\n| run | split | rows (hit rate) | model | " + " | ".join(cols) + " |")
        print("|" + "---|" * (4 + len(cols)))
        for run, s in runs:
            how = f"{s['folds']}-fold" if s["split"] == "kfold" else "decade-out"
            rate = f" ({s['prevalence']:.3f})" if s.get("prevalence") is not None else ""
            for i, (model, res) in enumerate(s["results"].items()):
                head = f"| {run.name} | {how} | {s['n_rows']}{rate} |" if i == 0 else "| | | |"
                kfold = s["split"] == "kfold"
                print(head + f" {model} | " + " | ".join(cell(res[c], kfold) for c in cols) + " |")


if __name__ == "__main__":
    main()
