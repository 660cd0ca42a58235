"""Descriptor branch: hit prediction from song-level descriptors (the smaller seed systems).

* :mod:`.table`: Spotify-style descriptor tables (two layouts), clear errors for bad cells.
* :mod:`.audio`: the same descriptors approximated from audio (``hitrank descriptors``).
* :mod:`.config`: one YAML per seed system (``configs/descriptors/``).
* :mod:`.run`: cross-validation, training, prediction, permutation importance.
* :mod:`.fit`: playlist fit (``hitrank fit``).
"""
