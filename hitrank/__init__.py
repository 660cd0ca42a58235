"""hitrank: rank songs by how likely they are to be hits, from their audio.

Implements Yu, Yang, Hung & Chen (2018), "Hit song prediction for pop music by Siamese CNN
with ranking loss": Mid-30 / HL-30 log-mel features, a simple CNN and a multi-objective
Siamese CNN, and the paper's ranking metrics.

Public API (imported lazily, so ``import hitrank`` stays cheap)::

    hitrank.synthesize(out, n_songs, seed=0)            # synthetic corpus
    hitrank.extract(source, store_dir)                  # feature store
    hitrank.extract(source, store_dir, engine="ray")    # ... with Ray tasks (local or a cluster)
    hitrank.FeatureStore.open(store_dir)                # read a store
    hitrank.load_config(path, overrides)                # experiment config
    hitrank.run_cv(cfg, dataset, run_dir)               # cross-validation
    hitrank.cross_validate(config, out=run_dir, labels=csv)  # what `hitrank cv` does (extract, cv, report)
    hitrank.load_checkpoint(path)                       # a trained model
    hitrank.rank_folder(folder, run_dir)                # ranking
    hitrank.potential_curve(path, run_dir)              # score of every 30 s window of a song
    hitrank.similar(path, reference)                    # the closest reference songs, and the fit
    hitrank.ranking_metrics(y_true, y_pred, top=0.1)    # nDCG / Kendall / Spearman @10%
    hitrank.find_highlight(path)                        # HL-30 highlight of a file
"""

import importlib

from .version import __version__

_API = {
    "synthesize": "synth", "extract": "extract", "extract_song": "extract",
    "FeatureStore": "store", "FeatureParams": "features", "log_mel": "features",
    "load_config": "config", "run_cv": "cv", "run_train": "cv", "load_dataset": "data",
    "cross_validate": "commands",
    "load_checkpoint": "checkpoint", "rank_folder": "rank", "ranking_metrics": "metrics",
    "find_highlight": "thumbnail", "potential_curve": "curve", "similar": "commands",
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'hitrank' has no attribute {name!r}")
