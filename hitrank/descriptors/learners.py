"""Descriptor learners by name: what ``model.name`` of a descriptor config trains.

A :class:`LearnerSpec` says what a name means in fields that the training code reads
(:mod:`.fitting`, :mod:`.prepare`, :mod:`.cv`, :mod:`.config`); no code looks at the name
itself. The networks are those of :mod:`hitrank.models.descriptor`, built by their registered
names; the trees are scikit-learn's histogram gradient boosting stored as tensors.

=================  ====================================================================
name               trains
=================  ====================================================================
``mlp``            ``model.seeds`` MLPs (``model.hidden``, ``model.dropout``), averaged
``siamese_mlp``    one MLP with ``(1 - w) * BCE/MSE + w * pairwise ranking hinge``
``history_lstm``   an LSTM over the artist's earlier songs (needs ``data.history``)
``gbdt``           gradient-boosted trees (``model.gbdt``)
``blend``          ``model.seeds`` MLPs and the trees, the tree weight chosen on validation
=================  ====================================================================

Adding a learner: a :class:`LearnerSpec` in :data:`LEARNERS` (with a network registered in
:mod:`hitrank.models` if it needs a new one); configs can then name it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError


def mlp_kwargs(n_in: int, hidden: tuple, dropout: float) -> dict:
    """Keyword arguments of ``descriptor_mlp``: every layer of ``model.hidden``, dropout."""
    return {"n_in": n_in, "hidden": [int(h) for h in hidden], "dropout": dropout}


def lstm_kwargs(n_in: int, hidden: tuple, dropout: float) -> dict:
    """Keyword arguments of ``history_lstm``: one hidden size (the first of ``model.hidden``);
    the LSTM has no dropout."""
    return {"n_in": n_in, "hidden": int(hidden[0])}


@dataclass(frozen=True)
class LearnerSpec:
    """What a descriptor ``model.name`` trains, and how.

    Attributes
    ----------
    name : the ``model.name`` of configs
    networks : trains networks (``model.seeds`` of them when ``many_seeds``)
    trees : trains gradient-boosted trees (``model.gbdt``); with ``networks``, a blend whose
        tree weight is chosen on the validation part
    network : registered name (:func:`hitrank.models.build`) of the networks
    network_kwargs : ``(n_in, model.hidden, model.dropout) -> kwargs`` of ``network``
    sequences : the input of a song is its artist's earlier songs as a sequence, shape
        ``(k + 1, F + 2)`` (needs ``data.history``); the baselines read it flattened and no
        permutation importance is computed. Else flat rows: the descriptors, plus the
        artist-history summary columns when ``data.history``
    pairwise : the loss adds the pairwise ranking hinge weighted by ``train.w``; at ``w = 1``
        the scores only rank, so validation uses a ranking score and the scores are
        calibrated on the validation part
    many_seeds : ``model.seeds > 1`` is allowed
    """

    name: str
    networks: bool = True
    trees: bool = False
    network: str = "descriptor_mlp"
    network_kwargs: Callable[[int, tuple, float], dict] = mlp_kwargs
    sequences: bool = False
    pairwise: bool = False
    many_seeds: bool = False


#: every learner, by ``model.name`` (this order is the order configs' errors list them in)
LEARNERS: dict[str, LearnerSpec] = {spec.name: spec for spec in (
    LearnerSpec("mlp", many_seeds=True),
    LearnerSpec("siamese_mlp", pairwise=True),
    LearnerSpec("history_lstm", network="history_lstm", network_kwargs=lstm_kwargs, sequences=True),
    LearnerSpec("gbdt", networks=False, trees=True),
    LearnerSpec("blend", trees=True, many_seeds=True),
)}


def learner(name: str) -> LearnerSpec:
    """The spec registered as ``name``; ConfigError listing the known names otherwise."""
    try:
        return LEARNERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"model.name={name!r}; allowed: {list(LEARNERS)}") from None
