"""The descriptor extractors' names (the extractors themselves are :mod:`.extractors`): what
configs, checkpoints and described folders record, checked without loading any audio code."""

#: the extractors of :data:`hitrank.descriptors.extractors.EXTRACTORS`, in its order
EXTRACTOR_NAMES = ("librosa", "hybrid")
#: the extractor of ``hitrank descriptors`` and of descriptor configs (``data.extractor``)
DEFAULT_EXTRACTOR = "hybrid"
#: the extractor of folders described (and models trained) before the extractor was recorded
LEGACY_EXTRACTOR = "librosa"
