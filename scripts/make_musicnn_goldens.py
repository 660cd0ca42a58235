"""Developer only: run the ORIGINAL musicnn TensorFlow models on the test clips and save golden
outputs (the PyTorch port is compared with them in CI):

- tests/data/musicnn_golden.npz: per-patch tag probabilities of MTT_musicnn and MTT_vgg
  (``musicnn.extractor``; tests/test_tags.py);
- tests/data/musicnn_penultimate_golden.npz: per-patch 200-d penultimate layer (``bn_dense``) of
  MTT_musicnn and MSD_musicnn, float32 (P, 200), plus MSD_musicnn's per-patch tag probabilities
  (P, 50) (tests/test_embedding_golden.py).

The penultimate goldens are NOT taken from ``musicnn.extractor``'s ``features['penultimate']``:
in musicnn 0.1.0 that function concatenates the FIRST patch's penultimate (and cnn1/2/3) again
for every later patch (it appends ``penultimate_`` of the first ``sess.run`` instead of the
current batch's ``backend_``). This script builds the original graph (``musicnn.models``),
restores the wheel's checkpoint and runs it on each patch of ``musicnn.extractor.batch_data``
(the original preprocessing) separately, and prints how far the extractor's value is off.

Needs a throwaway virtual environment with TensorFlow (never a hitrank dependency):

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2" librosa==0.11.0 soundfile
    /tmp/tfenv/bin/pip install --no-deps musicnn==0.1.0
    PYTHONPATH=. /tmp/tfenv/bin/python scripts/make_musicnn_goldens.py [--what tags|penultimate|all]

Also prints the TensorFlow tagging throughput (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
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

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
TF_HELP = ("this developer script runs the original TensorFlow models; make a throwaway venv "
           "outside the repository:\n  python -m venv /tmp/tfenv\n  /tmp/tfenv/bin/pip install "
           "tensorflow-cpu==2.15.1 'numpy<2' librosa==0.11.0 soundfile\n  /tmp/tfenv/bin/pip "
           "install --no-deps musicnn==0.1.0\nthen run this script with /tmp/tfenv/bin/python")
EMBEDDING_MODELS = ("MTT_musicnn", "MSD_musicnn")
N_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1: 3 s patches


def _require_tensorflow() -> None:
    try:
        import musicnn  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as e:
        sys.exit(f"{e}\n{TF_HELP}")


def _write_clips(tmp: str) -> dict[str, str]:
    """The test clips as float WAVs at 16 kHz (librosa.load reads them back exactly)."""
    paths = {}
    for name, y in clips().items():
        paths[name] = str(Path(tmp) / f"{name}.wav")
        sf.write(paths[name], y, SR, subtype="FLOAT")
    return paths


def penultimate_goldens(paths: dict[str, str]) -> dict[str, np.ndarray]:
    """Per-patch penultimate (P, 200) of each embedding model, the graph run one patch at a time."""
    try:
        import tensorflow as tf
    except ImportError as e:  # never a hitrank dependency (see TF_HELP)
        sys.exit(f"{e}\n{TF_HELP}")
    from musicnn import models
    from musicnn.extractor import batch_data, extractor  # also disables eager execution

    wheel = Path(models.__file__).resolve().parent
    out = {}
    for model in EMBEDDING_MODELS:
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):  # as musicnn.extractor builds it
            x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, 96])
            is_training = tf.compat.v1.placeholder(tf.bool)
            logits, *_, pen = models.define_model(x, is_training, model, 50)
            probs = tf.nn.sigmoid(logits)
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, f"{wheel / model}/")
            for name, path in paths.items():
                batch, _ = batch_data(path, N_FRAMES, N_FRAMES)  # no overlap, as hitrank's patches
                runs = [sess.run([pen, probs], {x: batch[i:i + 1], is_training: False})
                        for i in range(len(batch))]
                out[f"{name}/{model}/penultimate"] = np.concatenate([r[0] for r in runs]).astype(np.float32)
                if model == "MSD_musicnn":
                    out[f"{name}/{model}/taggram"] = np.concatenate([r[1] for r in runs]).astype(np.float32)
        for name, path in paths.items():
            _, _, feats = extractor(path, model=model, input_length=3, input_overlap=False,
                                    extract_features=True)
            ours = out[f"{name}/{model}/penultimate"]
            bad = np.abs(feats["penultimate"] - ours).max(axis=1)
            same0 = np.abs(feats["penultimate"] - ours[0]).max(axis=1)
            print(f"{name:8s} {model:12s} penultimate {ours.shape}; musicnn.extractor's features "
                  f"off by {[f'{v:.3g}' for v in bad]} per patch, from patch 0's by "
                  f"{[f'{v:.3g}' for v in same0]}")
    return out


def tag_goldens(paths: dict[str, str], tmp: str) -> dict[str, np.ndarray]:
    """Per-patch tag probabilities (P, 50) of MTT_musicnn and MTT_vgg from ``musicnn.extractor``;
    also prints the TensorFlow tagging throughput (for docs/benchmarks.md)."""
    from musicnn.extractor import extractor

    out = {}
    for name, path in paths.items():
        for model in ("MTT_musicnn", "MTT_vgg"):
            taggram, tags, feats = extractor(path, model=model, input_length=3,
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
    return out


def _save(dest: Path, arrays: dict[str, np.ndarray]) -> None:
    dest.parent.mkdir(exist_ok=True)
    np.savez_compressed(dest, **arrays)
    print(f"wrote {dest} ({dest.stat().st_size} bytes)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--what", choices=("tags", "penultimate", "all"), default="all",
                        help="which golden file(s) to write (default: all)")
    args = parser.parse_args(argv)
    _require_tensorflow()
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_clips(tmp)
        if args.what in ("tags", "all"):
            _save(DATA / "musicnn_golden.npz", tag_goldens(paths, tmp))
        if args.what in ("penultimate", "all"):
            _save(DATA / "musicnn_penultimate_golden.npz", penultimate_goldens(paths))


if __name__ == "__main__":
    main()
