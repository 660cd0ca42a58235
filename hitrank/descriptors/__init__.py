"""Descriptor branch: hit prediction from song-level descriptors (the smaller seed systems).

* :mod:`.table`: Spotify-style descriptor tables (two layouts), clear errors for bad cells.
* :mod:`.extractors`: the same descriptors computed from a signal, by named extractor;
  :mod:`.audio`: from files and folders (``hitrank descriptors``).
* :mod:`.learners`: the learners a config can name (``model.name``), as specs.
* :mod:`.config`: one YAML per seed system (``configs/descriptors/``).
* :mod:`.prepare`: rows, target, one row per song, scaling, network inputs.
* :mod:`.history`: artist-history inputs from strictly earlier songs.
* :mod:`.fitting`: networks, trees and blends fitted on arrays; :mod:`.model`: a fitted model
  and its checkpoint.
* :mod:`.evaluate`: metrics and baselines; :mod:`.cv`: the CV protocol and its run folder.
* :mod:`.commands`: ``hitrank cv`` / ``train`` with ``--data``; :mod:`.apply`: ``predict``
  and ``rank``; :mod:`.fit`: playlist fit (``hitrank fit``).
"""
