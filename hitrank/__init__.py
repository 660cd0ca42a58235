"""hitrank: rank songs by how likely they are to be hits, from their audio.

Implements Yu, Yang, Hung & Chen (2018), "Hit song prediction for pop music by Siamese CNN
with ranking loss": Mid-30 log-mel features, a simple CNN and a multi-objective Siamese CNN,
and the paper's ranking metrics.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
