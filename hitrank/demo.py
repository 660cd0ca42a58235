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
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .config import check_available, load_config
from .errors import StaleRunError
from .runtime import cache_root
from .synth import synthesize
from .uncertainty import pooled_metrics, random_baseline

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
#: the demo's steps in order, as passed to ``on_step`` with what each one is about to do
STEPS = ("synth", "extract", "cv", "cv_done", "rank")


def _interval(point: float, ci) -> str:
    return f"{point:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _whole_set_ci(y: np.ndarray, p: np.ndarray, seed: int = 0, n_boot: int = 2000) -> list[float]:
    """95% bootstrap interval of the Spearman correlation over all songs."""
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


@dataclass
class DemoResult:
    """What the demo did and found (the CLI prints it)."""

    out: Path  # the work folder
    corpus: Path  # the labelled corpus
    store: Path  # its HL-30 feature store
    run_dir: Path  # the cross-validation run folder
    ranking_csv: Path  # the held-out ranking
    reports: tuple  # (held-out ranking report, CV report), HTML
    summary: dict  # the CV summary (summary.json)
    n_songs: int  # songs cross-validated
    cv_table: pd.DataFrame  # model / random / oracle, pooled out-of-fold, with intervals
    n_ranked: int  # held-out songs ranked
    heldout_table: pd.DataFrame  # model / random / oracle on the held-out songs
    side: pd.DataFrame  # predicted rank, true rank, song, hit score; best predicted first
    show: int  # rows of ``side`` shown
    top_k: int  # size of the true top 10% of the held-out songs
    hits: int  # true top-10% songs among the first ``show`` predicted
    spearman: float  # Spearman over all held-out songs
    seconds: float


def run_demo(commands: ModuleType, out: str | os.PathLike | None = None, n_songs: int = DEMO_SONGS,
             epochs: int = DEMO_EPOCHS, workers: int = 2, progress: bool = True,
             heldout: int = HELDOUT_SONGS, folds: int = DEMO_FOLDS,
             on_step: Callable[[str, dict], None] | None = None) -> DemoResult:
    """Run the demo with the commands' own calls (synth, extract, cv, rank); returns what it
    found. ``on_step(step, facts)`` is called as each step of :data:`STEPS` starts (``cv_done``:
    with the cross-validation's ``n_songs`` and ``table``), e.g. to print progress.

    ``commands`` is the command layer, :mod:`hitrank.commands` (the CLI passes it): its
    ``extract_store``, ``cross_validate`` and ``rank`` run the steps exactly as the commands
    do. It is passed rather than imported so that the demo sits beside the command layer, not
    above it, and the chain of imports under the CLI stays short.
    """
    def step(name: str, **facts) -> None:
        if on_step is not None:
            on_step(name, facts)

    t0 = time.time()
    out = Path(out) if out else cache_root() / "demo"
    corpus, held = out / "corpus", out / "heldout"
    cfg = load_config(CONFIG, [f"name=demo_{Path(CONFIG).name}", f"train.epochs={epochs}",
                               "train.patience=3", f"cv.folds={folds}"])
    step("synth", n_songs=n_songs, heldout=heldout, out=out)
    truth = synthesize(corpus, n_songs, seed=DEMO_SEED, sr=DEMO_SR, workers=workers, progress=progress)
    truth_held = synthesize(held, heldout, seed=HELDOUT_SEED, sr=DEMO_SR, workers=workers,
                            progress=progress)
    step("extract")
    store, _ = commands.extract_store(cfg, check_available(cfg), corpus / "labels.csv",
                                      out / "store_hl30", workers=workers, progress=progress)
    step("cv", folds=folds, epochs=epochs)
    run_dir = out / "runs" / "simple_cnn_hl30"
    cv_report = out / "cv_report.html"
    try:
        cv = commands.cross_validate(cfg, out=run_dir, store=store, progress=progress, report=cv_report)
    except StaleRunError as exc:  # an earlier demo with other --songs, --epochs or --folds
        log.warning("%s; the demo trains its run again", exc)
        shutil.rmtree(run_dir)
        cv = commands.cross_validate(cfg, out=run_dir, store=store, progress=progress, report=cv_report)
    pred = pd.read_csv(run_dir / "predictions.csv").merge(truth[["song_id", "oracle"]], on="song_id")
    cv_table = score_table(pred.hit_score.to_numpy(), pred.pred.to_numpy(), pred.oracle.to_numpy(),
                           pred.fold.to_numpy(), cfg.cv.top_fraction)
    step("cv_done", n_songs=cv["summary"]["n_songs"], table=cv_table)
    step("rank", heldout=heldout, folds=folds)
    ranking_csv, ranking_report = out / "heldout_ranking.csv", out / "heldout_report.html"
    ranking, _ = commands.rank(held / "audio", run_dir, cache=out / "heldout_store", workers=workers,
                               progress=progress, out=ranking_csv, html=ranking_report)
    th = truth_held.assign(file=truth_held.path.str.split("/").str[-1]).set_index("file")
    y = th.loc[ranking.song_id, "hit_score"].to_numpy()
    latent = th.loc[ranking.song_id, "oracle"].to_numpy()
    held_table = score_table(y, ranking.score.to_numpy(), latent, None, cfg.cv.top_fraction)
    true_rank = pd.Series(y).rank(ascending=False, method="first").astype(int).to_numpy()
    side = pd.DataFrame({"predicted rank": ranking["rank"], "true rank": true_rank,
                         "song": ranking.song_id, "hit score": y})
    k = max(1, round(cfg.cv.top_fraction * len(ranking)))  # the true top 10%
    show = min(SHOW, len(ranking))
    return DemoResult(out=out, corpus=corpus, store=store, run_dir=run_dir, ranking_csv=ranking_csv,
                      reports=(ranking_report, cv_report), summary=cv["summary"],
                      n_songs=cv["summary"]["n_songs"], cv_table=cv_table, n_ranked=len(ranking),
                      heldout_table=held_table, side=side, show=show, top_k=k,
                      hits=int((true_rank[:show] <= k).sum()),
                      spearman=held_table.attrs["model"]["pooled"]["spearman_all"],
                      seconds=time.time() - t0)
