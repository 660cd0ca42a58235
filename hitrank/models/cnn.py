"""The rating CNN of Yang et al. (ICASSP 2017), used as the scorer of Yu et al. (2018), Fig. 1.

Layer by layer (input ``(B, 128, 323)`` log-mel, see ``shared/reference/anchors.md``):

====================================================  =================
layer                                                 output (C x T)
====================================================  =================
input standardisation (per mel bin, training stats)   128 x 323
conv 32, kernel 128x4 (the whole mel axis), LReLU     32 x 320
max-pool 1x2                                          32 x 160
conv 64, kernel 1x4, LReLU                            64 x 157
max-pool 1x2, dropout 0.25                            64 x 78
conv 256 1x1, LReLU, dropout 0.25                     256 x 78
conv 256 1x1, LReLU, dropout 0.25                     256 x 78
conv 1 1x1 (+ LReLU if ``output_activation``)         1 x 78
global average pool over time                         score
====================================================  =================

A 2-D conv whose kernel spans all 128 mel bins is the same as a 1-D conv with 128 input
channels, which is how it is written here (identical maths, faster on CPU).

Choices the sources leave open (documented in docs/training.md): LeakyReLU slope 0.1 (released
code); the input is standardised per mel bin with training-set statistics (stored in the
model's buffers, so checkpoints carry them); the output LeakyReLU of the released code is off
by default because hitrank trains on standardised targets, which are negative for half the
songs (``output_activation='leaky_relu'`` restores it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..constants import N_MELS
from .layers import ByteDropout, standardise
from .registry import Scorer, register

LEAKY_SLOPE = 0.1


@register("simple_cnn")
class SimpleCNN(Scorer):
    """Two conv layers + three fully-convolutional layers -> one hit score per song.

    Parameters
    ----------
    n_mels : mel bins of the input
    conv_channels : filters of the two conv layers
    kernel : time widths of the two conv kernels (frames)
    fc_channels : channels of the two hidden 1x1 layers
    dropout : dropout probability after the second pooling and the hidden 1x1 layers
    output_activation : 'none' or 'leaky_relu' (the released code's)
    """

    def __init__(self, n_mels: int = N_MELS, conv_channels=(32, 64), kernel=(4, 4),
                 fc_channels=(256, 256), dropout: float = 0.25, output_activation: str = "none"):
        super().__init__()
        if output_activation not in ("none", "leaky_relu"):
            raise TypeError(f"output_activation={output_activation!r}; use 'none' or 'leaky_relu'")
        c1, c2 = conv_channels
        f1, f2 = fc_channels
        act = lambda: nn.LeakyReLU(LEAKY_SLOPE)  # noqa: E731
        layers = [
            nn.Conv1d(n_mels, c1, kernel[0]), act(), nn.MaxPool1d(2),
            nn.Conv1d(c1, c2, kernel[1]), act(), nn.MaxPool1d(2), ByteDropout(dropout),
            nn.Conv1d(c2, f1, 1), act(), ByteDropout(dropout),
            nn.Conv1d(f1, f2, 1), act(), ByteDropout(dropout),
            nn.Conv1d(f2, 1, 1),
        ]
        if output_activation == "leaky_relu":
            layers.append(act())
        self.net = nn.Sequential(*layers)
        self.register_buffer("in_mean", torch.zeros(n_mels))
        self.register_buffer("in_std", torch.ones(n_mels))

    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-mel-bin mean and std of the training inputs, shapes (n_mels,)."""
        self.in_mean.copy_(mean)
        self.in_std.copy_(torch.clamp(std, min=1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, n_mels, T) log-mel (any float dtype) -> (B,) scores."""
        return self.frame_scores(x).mean(dim=1)

    @property
    def frame_stride(self) -> int:
        """Input frames between two per-frame scores (the product of the pooling sizes)."""
        return int(np.prod([m.kernel_size for m in self.net if isinstance(m, nn.MaxPool1d)]))

    def frame_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame scores before the mean over time: (B, n_mels, T) -> (B, T') float32.

        The network is fully convolutional (valid convolutions, non-overlapping pooling), so
        the scores of a window that starts a multiple of :attr:`frame_stride` frames into a
        longer input are a run of the longer input's frame scores: a song's every window is
        scored from one pass over the whole song (:mod:`hitrank.curve`).
        """
        x = standardise(x, self.in_mean[:, None], self.in_std[:, None])
        return self.net(x).float()[:, 0, :]  # the per-frame scores may be bf16: their mean is float32
