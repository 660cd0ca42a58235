"""Attention highlighter after Huang, Chou & Yang (2017), "Music thumbnailing via neural
attention modeling of music emotion" (NAM-LF with positional encoding), trained here.

The whole song's log-mel is cut into ~3 s chunks; a small conv encoder embeds each chunk; a
sinusoidal positional encoding is added; two FC layers and an attention layer (tanh FC ->
FC -> softmax over chunks) weight the chunks; each chunk's own prediction (FC 1024 -> FC
n_out, late fusion) is averaged with those weights into the song prediction. The highlight is
the 30 s window with the largest attention mass.

Differences from the original (documented in docs/data.md): the front end is hitrank's own
log-mel (22050 Hz, n_fft 4096, hop 2048, 128 mels, dB) so one STFT serves the highlighter and
the features, which makes a chunk 32 frames (2.97 s) and the encoder convs (64 @ 3, 128 @ 4
stride 2, 256 @ 4 stride 2, each BN + ReLU, max over time) act on 32 rather than 129 frames;
the target is a song-level value we have (the hit score, log-standardised) instead of 190
emotion classes; the original's weights (CC BY-NC) are not used.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..constants import DB_AMIN, N_MELS
from ..errors import CheckpointError
from ..features import FeatureParams, log_mel
from ..payload import load_payload

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "highlighter.pt"  # in the --out folder of `hitrank highlighter train`
CHUNK_FRAMES = 32  # frames per chunk: 32 x 2048 / 22050 = 2.97 s
SILENCE_DB = 10.0 * math.log10(DB_AMIN)  # -100 dB: silence on hitrank's dB log-mel scale


def positional_encoding(n: int, d: int, device=None) -> torch.Tensor:
    """Sinusoidal encoding (n, d), base 10000; position 0 is the zero vector."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float32, device=device)
    angle = pos / (10000.0 ** (i / d))
    pe = torch.zeros(n, d, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.sin(angle + math.pi / 2) * (pos > 0)  # cos, but 0 at position 0
    return pe


class AttentionHighlighter(nn.Module):
    """Chunk encoder + positional encoding + attention + late-fusion head.

    ``forward(x, mask)``: x (B, C, n_mels, CHUNK_FRAMES) log-mel chunks, mask (B, C) bool
    (True = real chunk) -> (prediction (B, n_out), attention (B, C)).
    """

    def __init__(self, n_mels: int = N_MELS, d: int = 256, n_out: int = 1, head: int = 1024):
        super().__init__()

        def block(cin, cout, k, s):
            return [nn.Conv1d(cin, cout, k, stride=s), nn.BatchNorm1d(cout), nn.ReLU()]

        self.encoder = nn.Sequential(*block(n_mels, 64, 3, 1), *block(64, 128, 4, 2), *block(128, d, 4, 2))
        self.fc = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(),
                                nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU())
        self.attn = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))
        self.head = nn.Sequential(nn.Linear(d, head), nn.ReLU(), nn.Linear(head, n_out))
        self.d = d
        self.register_buffer("in_mean", torch.zeros(n_mels))
        self.register_buffer("in_std", torch.ones(n_mels))

    def set_input_stats(self, mean, std) -> None:
        self.in_mean.copy_(mean)
        self.in_std.copy_(torch.clamp(std, min=1e-3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        b, c, m, t = x.shape
        x = (x.float() - self.in_mean[:, None]) / self.in_std[:, None]
        flat = x.reshape(b * c, m, t)
        valid = mask.reshape(-1)
        h = torch.zeros(b * c, self.d, device=x.device)
        h[valid] = self.encoder(flat[valid]).amax(dim=-1)  # only real chunks reach BatchNorm
        h = h.reshape(b, c, self.d)
        pe = positional_encoding(c, self.d, x.device)
        z = torch.zeros_like(h)
        z[mask] = self.fc((h + pe)[mask])
        score = self.attn(z).squeeze(-1).masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(score, dim=1)
        per_chunk = torch.zeros(b, c, self.head[-1].out_features, device=x.device)
        per_chunk[mask] = self.head(h[mask])
        return (alpha[..., None] * per_chunk).sum(dim=1), alpha


def chunk(mel: np.ndarray | torch.Tensor, floor: float = SILENCE_DB) -> torch.Tensor:
    """(n_mels, T) -> (C, n_mels, CHUNK_FRAMES); the last partial chunk is padded with
    ``floor``, the value of silence on the log-mel's scale (-100 dB for hitrank's dB log-mel),
    not with 0 (0 dB is loud)."""
    mel = torch.as_tensor(mel)
    n_mels, t = mel.shape
    c = max(1, math.ceil(t / CHUNK_FRAMES))
    padded = torch.full((n_mels, c * CHUNK_FRAMES), floor, dtype=mel.dtype)
    padded[:, :t] = mel
    return padded.reshape(n_mels, c, CHUNK_FRAMES).permute(1, 0, 2).contiguous()


def batch_chunks(mels: list, floor: float = SILENCE_DB) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-song log-mels -> padded chunk batch (B, C, n_mels, F) and mask (B, C); missing
    chunks are masked, the last partial chunk of each song is padded with ``floor``."""
    chunks = [chunk(m, floor) for m in mels]
    c = max(len(ch) for ch in chunks)
    x = torch.zeros(len(chunks), c, *chunks[0].shape[1:], dtype=chunks[0].dtype)
    mask = torch.zeros(len(chunks), c, dtype=torch.bool)
    for i, ch in enumerate(chunks):
        x[i, : len(ch)] = ch
        mask[i, : len(ch)] = True
    return x, mask


def attention_to_seconds(alpha: np.ndarray, n_sec: int, params: FeatureParams) -> np.ndarray:
    """Chunk attention (C,) -> per-second curve (n_sec,), normalised by its maximum."""
    chunk_s = CHUNK_FRAMES * params.hop_length / params.sr
    idx = np.minimum((np.arange(n_sec) + 0.5) / chunk_s, len(alpha) - 1).astype(int)
    curve = np.asarray(alpha, dtype=np.float64)[idx]
    return curve / max(curve.max(), 1e-12)


class Highlighter:
    """A loaded highlighter checkpoint; ``curve(y, sr)`` gives per-second attention."""

    def __init__(self, payload: dict, source: str):
        self.source = source
        self.params = FeatureParams.from_dict(payload["feature_params"])
        self.info = payload.get("info", {})
        self.model = AttentionHighlighter(**payload["kwargs"])
        self.model.load_state_dict(payload["state_dict"])
        self.model.eval()

    @torch.no_grad()
    def attention(self, y: np.ndarray) -> np.ndarray:
        """Chunk attention (C,) of a song (n,) at the feature rate."""
        mel = log_mel(y, self.params)
        x, mask = batch_chunks([mel])
        return self.model(x, mask)[1][0].numpy()

    def curve(self, y: np.ndarray, sr: int) -> np.ndarray:
        n_sec = max(1, int(np.ceil(len(y) / sr)))
        return attention_to_seconds(self.attention(y), n_sec, self.params)


def load_highlighter(path: str | os.PathLike) -> Highlighter:
    """Load a highlighter checkpoint safely (``weights_only=True``): the ``.pt`` file, or the
    folder ``hitrank highlighter train --out`` wrote (its ``highlighter.pt``)."""
    inside = Path(path) / CHECKPOINT_NAME
    if Path(path).is_dir() and not inside.is_file():
        held = sorted(p.name for p in Path(path).glob("*.pt"))[:3]
        raise CheckpointError(f"{str(path)!r} is not a highlighter run: it holds no {CHECKPOINT_NAME}"
                              + (f" (it holds {', '.join(held)}: a ranking model?)" if held else "")
                              + "; give the --out folder of `hitrank highlighter train` or its checkpoint")
    file = inside if inside.is_file() else path
    return Highlighter(load_payload(file, "highlighter"), str(path))


@functools.lru_cache(maxsize=4)
def load_highlighter_cached(path: str) -> Highlighter:
    """One loaded highlighter per worker process."""
    return load_highlighter(path)


@dataclass(frozen=True)
class HighlighterTrainConfig:
    target: str = "hit_score"  # song-level target: hit_score (log-standardised)
    epochs: int = 30
    batch_size: int = 8  # songs per step
    lr: float = 0.001  # Adam
    val_fraction: float = 0.15  # songs held out for choosing the best epoch
    max_songs: int = 0  # 0 = all labelled songs
    seed: int = 0
    device: str = "auto"
