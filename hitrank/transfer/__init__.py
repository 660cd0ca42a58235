"""The transfer branch: small models on pretrained song embeddings, for real catalogues with a
few hundred labels (``configs/real/``).

:mod:`.learners` (ridge, gradient-boosted trees, an MLP with the paper's multi-objective loss,
as a registry), :mod:`.config` (``branch: transfer`` configs), :mod:`.protocol` (nested
cross-validation, training, ranking), :mod:`.learning_curve` (learning curves) and :mod:`.report` (the terminal summary).
"""
