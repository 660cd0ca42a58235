"""Exceptions raised for user errors (bad input, bad config), as opposed to bugs."""


class HitrankError(Exception):
    """Base class: an error the user can fix; the CLI prints it as one line."""


class AudioLoadError(HitrankError):
    """A file could not be decoded into usable audio."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path!r}: {reason}")


class ParameterError(HitrankError):
    """A function argument has a bad value."""


class ConfigError(HitrankError):
    """A config file or override names an unknown key or has a bad value."""


class StaleRunError(ConfigError):
    """A run folder holds work that does not belong to this run (another config, other songs):
    resuming would mix the two, so a command refuses it; the demo, whose folder it is, starts
    the run again."""


class StoreError(HitrankError):
    """A feature store is missing, corrupt, or was made with other parameters."""


class LabelsError(HitrankError):
    """A labels CSV is malformed."""


class CheckpointError(HitrankError):
    """A checkpoint is missing, corrupt, or does not match the features."""
