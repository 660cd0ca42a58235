"""Playlist fit: how well does a candidate song fit a reference set (a playlist, a catalogue)?

Inputs are the Spotify-style descriptors both sets have and, when both were described with
``--tags``, the 50 MTT tag probabilities. The fit of a song is the mean log-likelihood of its standardised descriptors under a diagonal
Gaussian fitted to the reference songs (variances shrunk towards 1 so small references stay
stable): ``fit = -0.5 * mean_j ((x_j - mu_j) / sigma_j)^2``. Higher fits better; 0 is the
reference's centre.

With a second set of songs that do *not* fit (negatives: another playlist, skipped songs) a
classifier can be trained instead: :func:`choose_classifier` fits a small DNN (hitrank's
descriptor MLP, the seed's 36 -> 36 layers), logistic regression and gradient-boosted trees on
80% of the songs and keeps the one with the best ROC-AUC on the other 20%. The DNN or the trees
replace logistic regression only when they beat it there by ``FIT_MIN_GAIN`` *and* by two
standard errors of the paired difference (bootstrap over the validation songs), so a gain that
small validation sets show by chance does not count; else logistic regression (refitted on all
songs) is kept, and on held-out songs the choice is not below logistic regression beyond noise.

Evaluated as in the playlist-membership seed: given two playlists A and B, which one did a
held-out song come from? The song goes to the playlist it fits better; compared, on the same
folds, with the chosen classifier trained on A vs B, with logistic regression and with chance
(0.5).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import HitrankError
from ..tags.musicnn import checkpoint_dir
from .apply import table_from_source
from .config import DataConfig, DescModelConfig, DescriptorConfig, DescTrainConfig
from .evaluate import roc_auc
from .fitting import fit_gbdt, fit_network, network_scores
from .prepare import Scaler
from .table import DESCRIPTORS, DescriptorTable, extractors_of, numeric_column

log = logging.getLogger(__name__)

#: the classifiers :func:`choose_classifier` picks from (logistic regression first: the default)
FIT_MODELS = ("logistic", "dnn", "gbdt")
#: validation ROC-AUC the DNN or the trees must gain over logistic regression to be chosen
#: and at least FIT_SE standard errors of that gain (paired bootstrap, FIT_BOOTSTRAP resamples)
FIT_MIN_GAIN = 0.002
FIT_SE = 2.0
FIT_BOOTSTRAP = 200
#: share of the songs held out to choose the classifier (and stop the DNN and the trees)
FIT_VAL_FRACTION = 0.2
#: the DNN: the seed's hidden layers (12 -> 36 -> 36 -> 1), no dropout, early stopping
FIT_DNN = {"hidden": (36, 36), "dropout": 0.0, "epochs": 100, "patience": 10, "batch_size": 64}


def common_columns(a: DescriptorTable, b: DescriptorTable) -> list[str]:
    """Descriptor columns with values in both tables, plus shared ``tag_*`` columns."""
    cols = [c for c in a.present() if c in b.present()]
    cols += [c for c in a.frame.columns if c.startswith("tag_") and c in b.frame.columns]
    if not cols:
        raise HitrankError(f"no descriptor column is shared by {a.sources[0]!r} and {b.sources[0]!r}; "
                           f"expected some of {list(DESCRIPTORS)}")
    return cols


def matrix(table: DescriptorTable, cols: list[str]) -> np.ndarray:
    return np.column_stack([numeric_column(table.frame[c]).to_numpy(float) for c in cols])


class PlaylistModel:
    """Diagonal Gaussian over a reference set; ``fit(X)`` scores candidates (n,)."""

    def __init__(self, ref: np.ndarray, shrink: float = 10.0):
        if len(ref) < 2:
            raise HitrankError(f"the reference set has {len(ref)} usable song(s); need at least 2")
        with np.errstate(all="ignore"):
            self.median = np.nan_to_num(np.nanmedian(ref, axis=0))
        ref = np.where(np.isnan(ref), self.median, ref)
        # a descriptor equal on every reference song (the duration of 30 s previews) has no
        # spread to measure a candidate against: it takes no part (scale inf: z = 0)
        self.scale = np.where(ref.std(axis=0) > 1e-12, ref.std(axis=0), np.inf)
        z = (ref - ref.mean(axis=0)) / self.scale
        n = len(ref)
        self.mu = ref.mean(axis=0)
        self.var = (n * z.var(axis=0) + shrink) / (n + shrink)

    def fit(self, X: np.ndarray) -> np.ndarray:
        X = np.where(np.isnan(X), self.median, X)
        z = (X - self.mu) / self.scale
        return -0.5 * np.mean(z ** 2 / self.var, axis=1)


class PlaylistClassifier:
    """A classifier of "fits" (1) vs "does not fit" (0) chosen by :func:`choose_classifier`.

    Attributes
    ----------
    name : one of :data:`FIT_MODELS`
    report : validation ROC-AUC of every candidate, and the choice
    """

    def __init__(self, name: str, scaler, model, report: dict):
        self.name, self.scaler, self.model, self.report = name, scaler, model, report

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probability that each row (n, F) (NaN allowed) belongs to the positive set, (n,)."""
        Z = self.scaler.transform(X)
        if self.name == "logistic":
            return self.model.predict_proba(Z)[:, 1]
        return 1.0 / (1.0 + np.exp(-network_scores(self.model, Z)))


def _fit_config(kind: str) -> DescriptorConfig:
    """The descriptor config of the ``dnn`` (learner ``mlp``) or ``gbdt`` candidate."""
    model = (DescModelConfig(name="mlp", hidden=FIT_DNN["hidden"], dropout=FIT_DNN["dropout"])
             if kind == "dnn" else DescModelConfig(name="gbdt"))
    train = DescTrainConfig(epochs=FIT_DNN["epochs"], patience=FIT_DNN["patience"],
                            batch_size=FIT_DNN["batch_size"])
    return DescriptorConfig(name=f"playlist_{kind}", data=DataConfig(task="classify"), model=model,
                            train=train)


def choose_classifier(X: np.ndarray, y: np.ndarray, seed: int = 0,
                      candidates: dict | None = None) -> PlaylistClassifier:
    """Train the classifiers of :data:`FIT_MODELS` on ``X`` (n, F) (NaN allowed), ``y`` (n,)
    0/1, and keep the best on a stratified validation split (see the module docstring).

    ``candidates``, when a dict, receives every fitted candidate by name (for evaluation).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    y = np.asarray(y).astype(int)
    if min(np.bincount(y, minlength=2)) < 5:
        raise HitrankError(f"{int(y.sum())} songs that fit and {int((1 - y).sum())} that do not: "
                           "need at least 5 of each to train a classifier")
    tr, va = train_test_split(np.arange(len(y)), test_size=FIT_VAL_FRACTION, stratify=y,
                              random_state=seed)
    scaler = Scaler.fit(X[tr])
    Z = scaler.transform(X)
    yf = y.astype(np.float64)
    fitted = {"logistic": LogisticRegression(max_iter=2000).fit(Z[tr], y[tr]),
              "dnn": fit_network(_fit_config("dnn"), Z[tr], yf[tr], Z[va], yf[va], seed)[0]["model"],
              "gbdt": fit_gbdt(_fit_config("gbdt"), Z[tr], yf[tr], Z[va], yf[va], seed)[0]["model"]}
    s_va = {"logistic": fitted["logistic"].predict_proba(Z[va])[:, 1],
            **{k: network_scores(fitted[k], Z[va]) for k in ("dnn", "gbdt")}}
    val = {k: roc_auc(y[va], v) for k, v in s_va.items()}
    gain_se = _gain_se(y[va], s_va, seed)
    ok = {k: k == "logistic" or val[k] - val["logistic"] > max(FIT_MIN_GAIN, FIT_SE * gain_se[k])
          for k in FIT_MODELS}
    name = max((k for k in FIT_MODELS if ok[k]), key=lambda k: val[k])
    if candidates is not None:
        candidates.update({k: PlaylistClassifier(k, scaler, m, {}) for k, m in fitted.items()})
    report = {"chosen": name, "val_roc_auc": val, "gain_se": gain_se, "n_train": len(tr),
              "n_val": len(va)}
    if name == "logistic":  # nothing to stop early: refit on every song
        scaler = Scaler.fit(X)
        return PlaylistClassifier(name, scaler, LogisticRegression(max_iter=2000).fit(
            scaler.transform(X), y), report)
    return PlaylistClassifier(name, scaler, fitted[name], report)


def _gain_se(y: np.ndarray, scores: dict, seed: int) -> dict:
    """Bootstrap standard error of each model's ROC-AUC gain over logistic regression on the
    same resampled validation songs (paired)."""
    rng = np.random.default_rng(seed)
    gains: dict = {k: [] for k in scores if k != "logistic"}
    for _ in range(FIT_BOOTSTRAP):
        i = rng.integers(0, len(y), len(y))
        if len(np.unique(y[i])) < 2:
            continue
        base = roc_auc(y[i], scores["logistic"][i])
        for k in gains:
            gains[k].append(roc_auc(y[i], scores[k][i]) - base)
    return {k: float(np.std(v)) if v else float("inf") for k, v in gains.items()}


def rank_candidates(reference: DescriptorTable, candidates: DescriptorTable,
                    negatives: DescriptorTable | None = None, seed: int = 0) -> pd.DataFrame:
    """Candidates sorted by fit, best first: ``rank, id, artist, fit`` and the columns used.

    Without ``negatives`` the fit is the Gaussian fit rule (:class:`PlaylistModel`); with
    them it is the probability of belonging with the reference rather than the negatives under
    the classifier :func:`choose_classifier` picks (``frame.attrs["model"]`` and
    ``attrs["validation"]`` say which, and why).
    """
    cols = common_columns(reference, candidates)
    if negatives is None:
        fit = PlaylistModel(matrix(reference, cols)).fit(matrix(candidates, cols))
        model, report = "fit_rule", None
    else:
        cols = [c for c in cols if c in common_columns(reference, negatives)]
        if not cols:
            raise HitrankError(f"no descriptor column is shared by the reference, the candidates "
                               f"and the negatives ({negatives.sources[0]!r})")
        ref, neg = matrix(reference, cols), matrix(negatives, cols)
        clf = choose_classifier(np.vstack([ref, neg]), np.r_[np.ones(len(ref)), np.zeros(len(neg))], seed)
        log.info("playlist fit: %s chosen on validation (ROC-AUC %s)", clf.name,
                 ", ".join(f"{k} {v:.3f}" for k, v in clf.report["val_roc_auc"].items()))
        fit, model, report = clf.predict(matrix(candidates, cols)), clf.name, clf.report
    frame = pd.DataFrame({"id": candidates.ids, "artist": candidates.artists, "fit": fit})
    if "path" in candidates.frame:
        frame["path"] = candidates.frame["path"].to_numpy()
    frame = frame.sort_values("fit", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    frame.attrs["columns"] = cols
    frame.attrs["model"] = model
    frame.attrs["validation"] = report
    return frame


def fit_sources(reference, candidates, workers: int = 1, progress: bool = True, tags: bool = False,
                negatives=None):
    """``hitrank fit``: rank the candidates (folder of audio or descriptor CSV) by their fit to
    the reference set; with ``negatives`` (songs that do not fit, same kinds of source) by a
    classifier chosen on validation. Returns ``(ranking, n_reference_songs, failures)``."""
    if tags:
        checkpoint_dir()  # fail before any work when the musicnn wheel is missing
    ref, f1 = table_from_source(reference, workers, progress, tags=tags)
    cand, f2 = table_from_source(candidates, workers, progress, tags=tags)
    neg, f3 = (table_from_source(negatives, workers, progress, tags=tags) if negatives is not None
               else (None, []))
    if len(ref) < 2:
        raise HitrankError(f"--reference {str(reference)!r}: {len(ref)} usable song(s); the fit needs at least 2 "
                           "(add songs)")
    _check_same_extractor({reference: ref, candidates: cand, negatives: neg})
    if neg is not None:
        both = sorted(set(map(str, ref.ids)) & set(map(str, neg.ids)))
        if both:
            log.warning("%d song(s) are in both --reference and --negatives (e.g. %s): the classifier "
                        "learns them as fitting and as not fitting", len(both), ", ".join(map(repr, both[:3])))
    return rank_candidates(ref, cand, neg), len(ref), f1 + f2 + f3


def _check_same_extractor(tables: dict) -> None:
    """HitrankError when the sources' descriptors come from different extractors (a
    ``descriptors.csv`` of ``hitrank descriptors --extractor librosa`` against audio described
    now with the default): their descriptors are not on one scale."""
    made = {}
    for source, table in tables.items():
        if table is not None:
            for extractor in set(extractors_of(table).values()):
                made.setdefault(extractor, str(source))
    if len(made) > 1:
        shown = "; ".join(f"{src!r}: --extractor {e}" for e, src in made.items())
        raise HitrankError(f"the sources were described by different extractors ({shown}); fit compares "
                           "descriptors across them: describe them the same way (hitrank descriptors "
                           "--extractor NAME)")


def evaluate_two_playlists(a: np.ndarray, b: np.ndarray, folds: int = 10, seed: int = 0) -> dict:
    """Which-playlist accuracy of the fit rule, the classifier chosen on validation
    (:func:`choose_classifier`), each of its candidates, logistic regression and chance; k-fold,
    equal sizes.

    The longer playlist is cut to the length of the shorter (as the seed did), so chance is
    0.5. Returns, per method (``fit``, ``chosen``, ``dnn``, ``gbdt``, ``logistic``, ``chance``),
    mean and std over folds of ``accuracy`` and ``roc_auc``, and ``choices`` (how often each
    classifier was chosen).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    if n < folds:
        raise HitrankError(f"playlists of {len(a)} and {len(b)} songs: need at least {folds} each")
    a, b = a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]
    X, y = np.vstack([a, b]), np.r_[np.ones(n), np.zeros(n)]
    res: dict = {k: [] for k in ("fit", "chosen", "dnn", "gbdt", "logistic", "chance")}
    choices: dict = {k: 0 for k in FIT_MODELS}
    for f, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)):
        fa = PlaylistModel(X[tr][y[tr] == 1]).fit(X[te])
        fb = PlaylistModel(X[tr][y[tr] == 0]).fit(X[te])
        margin = fa - fb
        med = np.nanmedian(X[tr], axis=0)
        Xtr, Xte = np.where(np.isnan(X[tr]), med, X[tr]), np.where(np.isnan(X[te]), med, X[te])
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-12
        lr = LogisticRegression(max_iter=2000).fit((Xtr - mu) / sd, y[tr])
        p = lr.predict_proba((Xte - mu) / sd)[:, 1]
        res["fit"].append((np.mean((margin > 0) == y[te]), roc_auc_score(y[te], margin)))
        res["logistic"].append((np.mean((p >= 0.5) == y[te]), roc_auc_score(y[te], p)))
        res["chance"].append((0.5, 0.5))
        fitted: dict = {}
        clf = choose_classifier(X[tr], y[tr], seed=seed * 1000 + f, candidates=fitted)
        choices[clf.name] += 1
        for k, m in (("chosen", clf), ("dnn", fitted["dnn"]), ("gbdt", fitted["gbdt"])):
            q = m.predict(X[te])
            res[k].append((np.mean((q >= 0.5) == y[te]), roc_auc_score(y[te], q)))
    out = {"n_per_playlist": n, "folds": folds, "choices": choices}
    for k, v in res.items():
        v = np.array(v)
        out[k] = {"accuracy": float(v[:, 0].mean()), "accuracy_std": float(v[:, 0].std(ddof=1)),
                  "roc_auc": float(v[:, 1].mean()), "roc_auc_std": float(v[:, 1].std(ddof=1))}
    return out
