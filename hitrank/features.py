"""Log-mel spectrogram of the paper, computed with ``torch.stft`` (batched, CPU or GPU).

Parameters (Yu et al. 2018, Sec. 2.5): 128 mel bins, 22050 Hz, Hamming window of 4096
samples, hop 2048 (half overlap). The mel filter bank is librosa's (Slaney scale and area
normalisation), so the result matches ``librosa.feature.melspectrogram(..., window='hamming')``
followed by the same log.

Log scalings (``log``):

``db``
    ``10 * log10(max(S, 1e-10))``, i.e. ``librosa.power_to_db(S, ref=1.0, top_db=None)``.
    Absolute (not relative to each song's maximum), so loudness differences survive. Default.
``log1p``
    ``log10(1 + 10000 * S)``, the compression of the pop-music-highlighter and musicnn.
``none``
    Raw mel power, as in the authors' released code.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from .constants import (
    CONTRAST_QUANTILES,
    DB_AMIN,
    FEATURE_DTYPE,
    HOP_LENGTH,
    LOG1P_SCALE,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    SEGMENT_SECONDS,
)
from .errors import ParameterError
from .yamlconfig import without_late_defaults

if TYPE_CHECKING:  # torch and librosa are imported when first needed (fast start)
    import torch

WINDOWS = ("hamming", "hann")
LOGS = ("db", "log1p", "none")
TAG_SCOPES = ("", "segment", "song")
EMBEDDING_SCOPES = ("", "segment", "song")
#: '' the mel of the segment's audio (cut first) | 'centre' the released ret30 rule: on audio of
#: ``segment_seconds`` or longer, the mel of all of it with its centre ``n_frames`` kept
MEL_CROPS = ("", "centre")
#: '' none | 'median' | 'lowest': the store also holds a *contrast* window per song, away from
#: the segment: the 30 s of median rating by its highlighter, or the lowest-rated
#: (:func:`hitrank.thumbnail.contrast_window`; HL-30 only; within-song training, ``train.contrast``)
CONTRASTS = ("", *CONTRAST_QUANTILES)
#: FeatureParams fields only training reads: checkpoints leave them out, so that ranking with
#: a model extracts no more than the model scores
TRAINING_ONLY = ("contrast", "whole_song")
DEFAULT_TAGGER = "musicnn"  # the tagger of stores made before the tagger was recorded


@dataclass(frozen=True)
class FeatureParams:
    """Everything that determines the features; stored with every store and checkpoint."""

    sr: int = SAMPLE_RATE  # Hz
    n_mels: int = N_MELS
    n_fft: int = N_FFT  # samples
    hop_length: int = HOP_LENGTH  # samples
    window: str = "hamming"  # paper text; the released code used librosa's default 'hann'
    log: str = "db"
    segment: str = "mid30"  # a registered segment method (hitrank.segments): mid30 | hl30 | ...
    segment_seconds: float = SEGMENT_SECONDS
    highlighter: str = ""  # set by the segment method: hl30 'fallback' or 'attention:<digest>'
    tags: str = ""  # '' none | 'segment' | 'song': 50 MTT tags averaged over the segment / song
    tagger: str = ""  # the tagger of the tags (hitrank.tags.TAGGERS): musicnn | jynet; '' without tags
    embedding: str = ""  # '' none | a pretrained network of hitrank.embeddings (musicnn, ...)
    embedding_scope: str = ""  # 'segment' | 'song': what the embedding averages over; '' without one
    embedding_dim: int = 0  # its width (recorded so a store can be read without the network)
    mel_crop: str = ""  # '' cut the segment's audio, then its mel | 'centre': see MEL_CROPS (Mid-30 only)
    contrast: str = ""  # '' | 'median' | 'lowest': also store a contrast window per song (CONTRASTS; HL-30 only)
    whole_song: bool = False  # also store each song's whole log-mel (whole-song training, train.window_loss)

    def __post_init__(self):
        if self.window not in WINDOWS:
            raise ParameterError(f"window={self.window!r}; expected one of {WINDOWS}")
        if self.log not in LOGS:
            raise ParameterError(f"log={self.log!r}; expected one of {LOGS}")
        if self.tags not in TAG_SCOPES:
            raise ParameterError(f"tags={self.tags!r}; expected one of {TAG_SCOPES}")
        if self.tags and not self.tagger:
            object.__setattr__(self, "tagger", DEFAULT_TAGGER)
        elif not self.tags and self.tagger:
            object.__setattr__(self, "tagger", "")
        if self.mel_crop not in MEL_CROPS:
            raise ParameterError(f"mel_crop={self.mel_crop!r}; expected one of {MEL_CROPS}")
        if not isinstance(self.whole_song, bool):
            raise ParameterError(f"whole_song={self.whole_song!r}; expected true or false")
        if self.contrast not in CONTRASTS:
            raise ParameterError(f"contrast={self.contrast!r}; expected one of {CONTRASTS}")
        if self.embedding_scope not in EMBEDDING_SCOPES:
            raise ParameterError(f"embedding_scope={self.embedding_scope!r}; expected one of "
                                 f"{EMBEDDING_SCOPES[1:]}")
        if bool(self.embedding) != (self.embedding_dim > 0) or bool(self.embedding) != bool(self.embedding_scope):
            raise ParameterError(f"embedding={self.embedding!r}, embedding_scope={self.embedding_scope!r}, "
                                 f"embedding_dim={self.embedding_dim}: give all three or none")

    @property
    def dtype(self) -> str:
        """On-disk dtype of these features: float16, or float32 for raw power (``log='none'``),
        whose loud bins overflow float16 (max 65504)."""
        return "float32" if self.log == "none" else FEATURE_DTYPE

    @property
    def n_frames(self) -> int:
        """Frames per segment (centred STFT): 323 for the paper's parameters."""
        return 1 + int(self.sr * self.segment_seconds) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)

    #: fields added after feature caches existed, left out of :meth:`cache_key` while they
    #: hold their default, so that caches made before them stay valid
    LATE_FIELDS = ("contrast", "whole_song")

    def cache_key(self) -> dict:
        """The fields that name these features in cache keys: :meth:`to_dict` without the
        :attr:`LATE_FIELDS` that hold their default."""
        return without_late_defaults(self.to_dict(), self, self.LATE_FIELDS)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureParams:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _torch_constants(sr, n_fft, n_mels, window, device):
    import torch

    basis = torch.from_numpy(_mel_basis(sr, n_fft, n_mels)).to(device)
    win_fn = torch.hamming_window if window == "hamming" else torch.hann_window
    win = win_fn(n_fft, periodic=True, dtype=torch.float32, device=device)
    return basis, win


def apply_log(power: torch.Tensor, log: str) -> torch.Tensor:
    """Compress mel power with the named scaling (see module docstring)."""
    import torch

    if log == "db":
        return 10.0 * torch.log10(torch.clamp(power, min=DB_AMIN))
    if log == "log1p":
        return torch.log10(1.0 + LOG1P_SCALE * power)
    if log == "none":
        return power
    raise ParameterError(f"log={log!r}; expected one of {LOGS}")


def log_mel(
    y: np.ndarray | torch.Tensor,
    params: FeatureParams = FeatureParams(),
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Log-mel spectrogram of one or a batch of signals.

    Parameters
    ----------
    y : array of shape (n_samples,) or (batch, n_samples)
        Mono audio at ``params.sr``.
    params : FeatureParams
    device : torch device, optional
        Where to compute; defaults to the device of ``y`` (CPU for numpy input).

    Returns
    -------
    torch.Tensor of shape (n_mels, n_frames) or (batch, n_mels, n_frames), float32
        ``n_frames = 1 + n_samples // hop_length`` (centred frames, zero padding).
    """
    import torch

    x = torch.as_tensor(y, dtype=torch.float32)
    if device is not None:
        x = x.to(device)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[None]
    if x.ndim != 2:
        raise ParameterError(f"log_mel expects (n,) or (batch, n) audio, got shape {tuple(x.shape)}")
    basis, win = _torch_constants(params.sr, params.n_fft, params.n_mels, params.window, x.device)
    spec = torch.stft(
        x, n_fft=params.n_fft, hop_length=params.hop_length, window=win,
        center=True, pad_mode="constant", return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()  # (batch, 1 + n_fft/2, frames)
    mel = torch.matmul(basis, power)
    out = apply_log(mel, params.log)
    return out[0] if squeeze else out


def librosa_log_mel(y: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Reference implementation with librosa (slow path, used by tests and benchmarks)."""
    import librosa
    import torch

    mel = librosa.feature.melspectrogram(
        y=y, sr=params.sr, n_fft=params.n_fft, hop_length=params.hop_length,
        window=params.window, n_mels=params.n_mels, center=True, pad_mode="constant",
    )
    return apply_log(torch.from_numpy(mel), params.log).numpy()
