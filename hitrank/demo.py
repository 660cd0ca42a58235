"""``hitrank demo``: the whole pipeline on the embedded synthetic corpus, with honest numbers.

1. synthesise a labelled corpus and a held-out folder of songs no model sees in training
   (``hitrank synth``; the held-out songs' true scores are known, so the ranking can be
   checked);
2. extract HL-30 log-mels with the training-free highlighter (``hitrank extract --segment
   hl30``);
3. cross-validate the simple CNN on HL-30 (the paper's Table-1 row (c), ``hitrank cv``) and
   report the pooled out-of-fold metrics (every song scored once by the fold model that never
   saw it) with bootstrap 95% intervals, next to a random ranking and the oracle (the
   generative latents without their noise: the best any model could do);
4. rank the held-out folder with the fold ensemble (``hitrank rank``) and score that ranking
   against the held-out songs' true scores, with intervals, next to random and oracle, and
   show predicted vs true ranks side by side.

Sizes (600 labelled + 150 held-out songs, 5 folds, 8 epochs) are chosen so that the demo
finishes in about three minutes on a 2-core CPU and its numbers mean something: with 150
held-out songs a Spearman of 0.3 has an interval of about +-0.15. Everything is cached in the
work folder: a second run reuses the corpus, features and finished folds.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .runtime import cache_root

log = logging.getLogger(__name__)

DEMO_SEED = 0
HELDOUT_SEED = 1
DEMO_SONGS = 600  # labelled songs of the cross-validated corpus
HELDOUT_SONGS = 150  # songs no model trains on: their ranking is checked against the truth
DEMO_FOLDS = 5
DEMO_EPOCHS = 8
DEMO_SR = 22050  # Hz; the analysis rate, so no resampling is needed in the demo
SHOW = 15  # held-out songs shown side by side
CONFIG = "table1/c_simple_cnn_hl30"  # the simple CNN on HL-30 (fallback highlighter)
METRIC_NAMES = {"ndcg": "nDCG@10%", "spearman_all": "Spearman (all)", "kendall": "Kendall@10%",
                "recall": "Recall@10%"}


def _interval(point: float, ci) -> str:
    return f"{point:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _whole_set_ci(y: np.ndarray, p: np.ndarray, seed: int = 0, n_boot: int = 2000) -> list[float]:
    """95% bootstrap interval of the Spearman correlation over all songs."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        vals.append(spearmanr(y[i], p[i])[0])
    return [float(np.nanquantile(vals, 0.025)), float(np.nanquantile(vals, 0.975))]


def score_table(y: np.ndarray, pred: np.ndarray, latent: np.ndarray, folds=None, top: float = 0.1) -> pd.DataFrame:
    """Model vs random ranking vs oracle on the same songs: nDCG@10%, Spearman over all songs,
    Kendall and recall @10%, each with its 95% interval (model: bootstrap over songs; random:
    the central 95% of random rankings)."""
    from scipy.stats import spearmanr

    from .uncertainty import pooled_metrics, random_baseline

    model = pooled_metrics(y, pred, folds, top)
    rand = random_baseline(y, None, top)
    orc = pooled_metrics(y, latent, folds, top, n_boot=200)
    rho_ci = _whole_set_ci(y, pred)
    rng = np.random.default_rng(1)
    rand_rho = [spearmanr(y, rng.random(len(y)))[0] for _ in range(200)]
    rows = {
        "model": {**{k: _interval(model["pooled"][k], model["ci"][k]) for k in ("ndcg", "kendall", "recall")},
                  "spearman_all": _interval(model["pooled"]["spearman_all"], rho_ci)},
        "random ranking": {**{k: _interval(rand[k]["mean"], (rand[k]["lo"], rand[k]["hi"]))
                              for k in ("ndcg", "kendall", "recall")},
                           "spearman_all": _interval(float(np.mean(rand_rho)), np.quantile(rand_rho, [0.025, 0.975]))},
        "oracle (latents)": {k: f"{orc['pooled'][k]:+.3f}" for k in ("ndcg", "kendall", "recall", "spearman_all")},
    }
    table = pd.DataFrame(rows).T[list(METRIC_NAMES)]
    table.columns = [METRIC_NAMES[c] for c in table.columns]
    table.attrs["model"] = model
    return table


def run_demo(out: str | os.PathLike | None = None, n_songs: int = DEMO_SONGS, epochs: int = DEMO_EPOCHS,
             workers: int = 2, progress: bool = True, heldout: int = HELDOUT_SONGS,
             folds: int = DEMO_FOLDS) -> dict:
    """Run the demo; prints its report and returns ``{"cv": summary, "heldout": dict}``."""
    from .config import feature_params, load_config
    from .cv import run_cv
    from .cvreport import load_run, write_cv_report
    from .data import load_dataset
    from .extract import extract
    from .rank import rank_folder
    from .report import write_ranking_report
    from .store import FeatureStore
    from .synth import synthesize

    t0 = time.time()
    out = Path(out) if out else cache_root() / "demo"
    corpus, held = out / "corpus", out / "heldout"
    cfg = load_config(CONFIG, [f"name=demo_{Path(CONFIG).name}", f"train.epochs={epochs}",
                               "train.patience=3", f"cv.folds={folds}"])
    print(f"[1/4] synthesising {n_songs} labelled songs and {heldout} held-out songs into {out}")
    truth = synthesize(corpus, n_songs, seed=DEMO_SEED, sr=DEMO_SR, workers=workers, progress=progress)
    truth_held = synthesize(held, heldout, seed=HELDOUT_SEED, sr=DEMO_SR, workers=workers,
                            progress=progress)
    print("[2/4] extracting HL-30 log-mels (the 30 s highlight, training-free highlighter)")
    extract(corpus / "labels.csv", out / "store_hl30", feature_params(cfg), workers=workers,
            progress=progress)
    ds, _ = load_dataset(FeatureStore.open(out / "store_hl30"))
    print(f"[3/4] {folds}-fold CV of the simple CNN on HL-30 (Table 1 row (c); at most {epochs} epochs)")
    run_dir = out / "runs" / "simple_cnn_hl30"
    summary = run_cv(cfg, ds, run_dir, progress=progress)
    pred = pd.read_csv(run_dir / "predictions.csv").merge(truth[["song_id", "oracle"]], on="song_id")
    cv_table = score_table(pred.hit_score.to_numpy(), pred.pred.to_numpy(), pred.oracle.to_numpy(),
                           pred.fold.to_numpy(), cfg.cv.top_fraction)
    print(f"\nCross-validated on {len(ds)} songs: pooled out-of-fold metrics (every song scored by "
          "the fold model that never saw it), 95% intervals:")
    print(cv_table.to_string())
    print(f"[4/4] ranking the {heldout} held-out songs with the {folds} fold models")
    ranking, failures = rank_folder(held / "audio", run_dir, cache=out / "heldout_store", workers=workers,
                                    progress=progress)
    ranking.to_csv(out / "heldout_ranking.csv", index=False)
    write_ranking_report(ranking, failures, out / "heldout_report.html", str(run_dir),
                         store_dir=ranking.attrs.get("store"))
    write_cv_report([load_run(run_dir)], out / "cv_report.html")
    th = truth_held.assign(file=truth_held.path.str.split("/").str[-1]).set_index("file")
    y = th.loc[ranking.song_id, "hit_score"].to_numpy()
    latent = th.loc[ranking.song_id, "oracle"].to_numpy()
    held_table = score_table(y, ranking.score.to_numpy(), latent, None, cfg.cv.top_fraction)
    print(f"\nHeld-out check: the ranking of {len(ranking)} songs no model trained on, against their "
          "true hit scores, 95% intervals:")
    print(held_table.to_string())
    true_rank = pd.Series(y).rank(ascending=False, method="first").astype(int).to_numpy()
    side = pd.DataFrame({"predicted rank": ranking["rank"], "true rank": true_rank,
                         "song": ranking.song_id, "hit score": y})
    k = max(1, round(cfg.cv.top_fraction * len(ranking)))  # the true top 10%
    show = min(SHOW, len(ranking))
    print(f"\nThe top {show} of the predicted ranking next to the true ranks (1 = biggest hit; a "
          f"random ranking puts on average {show * k / len(ranking):.1f} of the true top {k} here):")
    print(side.head(show).to_string(index=False, formatters={"hit score": "{:.2e}".format}))
    hits = int((true_rank[:show] <= k).sum())
    rho = held_table.attrs["model"]["pooled"]["spearman_all"]
    print(f"{hits} of the top {show} predicted are true top-10% songs; Spearman over all held-out songs "
          f"{rho:+.3f}.")
    print(f"\ndone in {time.time() - t0:.0f} s. Corpus: {corpus}; features: {out / 'store_hl30'}; run: "
          f"{run_dir}; held-out ranking: {out / 'heldout_ranking.csv'}; reports: "
          f"{out / 'heldout_report.html'}, {out / 'cv_report.html'}")
    return {"cv": summary, "cv_table": cv_table, "heldout": held_table, "side": side}
