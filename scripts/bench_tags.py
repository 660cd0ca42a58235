"""Tagging throughput: the hitrank PyTorch port vs the original musicnn TensorFlow model, CPU.

Both tag the same synthesised songs (16 kHz WAV, --seconds long) file by file, the way each
library is called: ``hitrank.tags.tag_file`` vs ``musicnn.extractor.extractor``. The
TensorFlow side runs in the Python of a throwaway venv (see scripts/make_musicnn_goldens.py):

    python scripts/bench_tags.py --tf-python /tmp/tfenv/bin/python --songs 8 --seconds 30

Prints songs/s of each and the ratio, and the largest tag difference between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TF_SNIPPET = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
from musicnn.extractor import extractor
files = sys.argv[1:]
extractor(files[0], model="MTT_musicnn", extract_features=False)  # warm-up (imports, graph)
t0 = time.perf_counter()
out = {}
for f in files:
    taggram, _ = extractor(f, model="MTT_musicnn", extract_features=False)
    out[f] = taggram.mean(0).tolist()
print(json.dumps({"seconds": time.perf_counter() - t0, "tags": out}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tf-python", required=True, help="python of a venv with tensorflow + musicnn")
    ap.add_argument("--songs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both (default 1)")
    args = ap.parse_args()

    import torch

    from hitrank.tags import tag_file
    from hitrank.tags.clips import SR, clips

    torch.set_num_threads(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TF_NUM_INTRAOP_THREADS": str(args.threads),
           "TF_NUM_INTEROP_THREADS": "1"}
    base = list(clips().values())
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.songs):
            y = np.tile(base[i % len(base)], int(np.ceil(args.seconds * SR / len(base[0]))))
            path = Path(tmp) / f"song_{i:03d}.wav"
            sf.write(path, y[: int(args.seconds * SR)], SR, subtype="FLOAT")
            files.append(str(path))
        tag_file(files[0])  # warm-up (weights, mel basis)
        t0 = time.perf_counter()
        ours = {f: np.array(list(tag_file(f)["tags"].values())) for f in files}
        t_ours = time.perf_counter() - t0
        res = subprocess.run([args.tf_python, "-c", TF_SNIPPET, *files], capture_output=True, text=True,
                             env=env, check=True)
        tf = json.loads(res.stdout.strip().splitlines()[-1])
    diff = max(float(np.max(np.abs(ours[f] - np.array(v)))) for f, v in tf["tags"].items())
    n = len(files)
    print(f"{n} songs x {args.seconds:.0f} s, {args.threads} thread(s)")
    print(f"  hitrank port (PyTorch)   {n / t_ours:7.2f} songs/s")
    print(f"  musicnn (TensorFlow)     {n / tf['seconds']:7.2f} songs/s")
    print(f"  ratio port / original    {tf['seconds'] / t_ours:7.2f}x   (max tag difference {diff:.1e})")


if __name__ == "__main__":
    main()
