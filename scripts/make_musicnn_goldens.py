"""Developer only: run the ORIGINAL musicnn TensorFlow taggers on the test clips and save
golden outputs to tests/data/musicnn_golden.npz (the port is compared with them in CI).

Needs a throwaway virtual environment with TensorFlow (never a hitrank dependency):

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2" librosa==0.11.0 soundfile
    /tmp/tfenv/bin/pip install --no-deps musicnn==0.1.0
    PYTHONPATH=. /tmp/tfenv/bin/python scripts/make_musicnn_goldens.py

Also prints the TensorFlow tagging throughput (for BENCHMARKS.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hitrank.tags.clips import SR, clips  # noqa: E402


def main() -> None:
    from musicnn.extractor import extractor

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, y in clips().items():
            path = Path(tmp) / f"{name}.wav"
            sf.write(path, y, SR, subtype="FLOAT")  # float WAV at 16 kHz: librosa.load reads it exactly
            for model in ("MTT_musicnn", "MTT_vgg"):
                taggram, tags, feats = extractor(str(path), model=model, input_length=3,
                                                 input_overlap=False, extract_features=True)
                out[f"{name}/{model}/taggram"] = taggram.astype(np.float64)
                print(f"{name:8s} {model:12s} top3: {[tags[i] for i in np.argsort(-taggram.mean(0))[:3]]}")
        # throughput of the original on a 30 s excerpt, batch of 1 patch per run as in musicnn
        long = np.tile(clips()["techno"], 5)[: 30 * SR]
        path = Path(tmp) / "long.wav"
        sf.write(path, long, SR, subtype="FLOAT")
        extractor(str(path), model="MTT_musicnn", extract_features=False)
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            extractor(str(path), model="MTT_musicnn", extract_features=False)
        dt = (time.perf_counter() - t0) / reps
        print(f"TensorFlow MTT_musicnn: {dt:.3f} s per 30 s clip ({30 / dt:.1f}x real time)")
    dest = Path(__file__).resolve().parents[1] / "tests" / "data" / "musicnn_golden.npz"
    dest.parent.mkdir(exist_ok=True)
    np.savez_compressed(dest, **out)
    print(f"wrote {dest} ({dest.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
