"""Descriptor-branch networks: an MLP over song descriptors and an LSTM over an artist's songs."""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register


def mlp(n_in: int, hidden, activation: type[nn.Module] | nn.Module, dropout: float) -> nn.Sequential:
    """``n_in -> hidden... -> 1``: Linear, activation, Dropout per hidden layer, then Linear."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        act = activation() if isinstance(activation, type) else activation
        layers += [nn.Linear(width, int(h)), act, nn.Dropout(dropout)]
        width = int(h)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@register("descriptor_mlp", role="descriptor")
class DescriptorMLP(nn.Module):
    """Fully connected score network: ``n_in -> hidden... -> 1`` with ReLU and dropout.

    Topify's MLP is ``hidden=(128, 128, 128), dropout=0.5``; the log-streams MLP
    ``hidden=(64, 32), dropout=0.2``; the balanced MLP ``hidden=(30, 10)``. A Siamese MLP is
    this network applied to both songs of a pair (shared weights).

    Input ``(B, n_in)``, output ``(B,)`` (a logit for classifiers, a score otherwise).
    """

    def __init__(self, n_in: int, hidden: tuple = (128, 128, 128), dropout: float = 0.5):
        super().__init__()
        self.net = mlp(n_in, hidden, nn.ReLU, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@register("history_lstm", role="descriptor")
class HistoryLSTM(nn.Module):
    """LSTM over an artist's earlier songs followed by the song itself (Niggli's Model V).

    Input ``(B, L, n_in)``: ``L - 1`` earlier songs, oldest first, zero-padded at the front,
    then the song to score; output ``(B,)`` from the last step's hidden state.
    """

    def __init__(self, n_in: int, hidden: int = 10):
        super().__init__()
        self.lstm = nn.LSTM(n_in, int(hidden), batch_first=True)
        self.head = nn.Linear(int(hidden), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)
