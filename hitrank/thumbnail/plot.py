"""A PNG of a song's importance curve over its log-mel spectrogram (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import HitrankError
from ..features import FeatureParams, log_mel


def plot_highlight(h: dict, folder: Path, name: str | None = None) -> Path:
    """Save ``folder/<name>.highlight.png`` (``name``: the file's name by default, or a relative
    path whose folders exist); ``h`` is :func:`find_highlight`'s result."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise HitrankError("--plot needs matplotlib: pip install matplotlib") from None
    params = FeatureParams()
    mel = log_mel(h["audio"], params).numpy()
    secs = mel.shape[1] * params.hop_length / params.sr
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=[0, secs, 0, mel.shape[0]])
    curve = np.asarray(h["curve"], dtype=float)
    ax2 = ax.twinx()
    ax2.plot(np.arange(len(curve)) + 0.5, curve / max(curve.max(), 1e-12), color="cyan", lw=1.5)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel(f"{h['method']} curve")
    ax.axvspan(h["start"], h["end"], color="white", alpha=0.25)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(f"{Path(h['path']).name}: highlight {h['start']:.0f}-{h['end']:.0f} s")
    fig.tight_layout()
    out = Path(folder) / ((name or Path(h["path"]).name) + ".highlight.png")
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
