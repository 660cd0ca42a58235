"""Developer only: run the ORIGINAL ret30 TensorFlow graph (Yu et al. 2018, the authors' released
KKBOX hit-score regressor) on a handful of inputs and save golden outputs to
tests/data/ret30_golden.npz (tests/test_ret30.py compares the PyTorch port with them).

Needs a throwaway virtual environment with TensorFlow, outside the repository (never a hitrank
dependency), and the authors' data (``shared/reference/hsp_cnn``, or a checkout of
OckhamsRazor/HSP_CNN given as the first argument):

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2"
    /tmp/tfenv/bin/python scripts/make_ret30_goldens.py [HSP_CNN_FOLDER]

The graph is loaded from ``ret30.mdl/model.ckpt.meta`` and restored from the checkpoint; x is
fed to ``Placeholder:0`` as NHWC (N, 128 mel, 323 frames, 1) raw power, the tags to
``Placeholder_4:0`` (N, 50) in JYnet's top-50 order (``tag_list.top50.txt``).

Inputs: the released test clip ``test_data/xte.npy`` (with its tags ``tgte.jynet.npy``), scaled
and circularly time-shifted copies of it (stored as a recipe, rebuilt from the same file by the
test, so no released data is copied), and synthetic raw-power mels with seeded random tags
(stored as float32; levels quantised to 1/16 decade so that the file compresses well).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO.parent / "shared" / "reference" / "hsp_cnn"
DEST = REPO / "tests" / "data" / "ret30_golden.npz"
SEED = 20180110

N_MELS, N_FRAMES = 128, 323
X_IN, TAGS_IN = "Placeholder:0", "Placeholder_4:0"
FETCH = {"cnn": "GlobalAveragePooling:0", "tag": "logits_tag/sub:0", "add": "add:0",
         "emb": "conv2d_5/sub:0"}
FUSION_CONSTS = ("mul/x:0", "mul_1/x:0")
EXPECTED_ADD = 0.632921517  # add:0 on the released test input, hsp_cnn.md section 2.6

# cases built from the released clip: (name, power scale, circular time shift in frames, tags)
XTE_CASES = [("xte", 1.0, 0, "tgte"), ("xte_x0.01", 0.01, 0, "tgte"),
             ("xte_x4_roll40", 4.0, 40, "random")]
LEVEL_STEP = 16  # synthetic levels are 10 ** (k / LEVEL_STEP), k integer


def _quantised_power(log10_power: np.ndarray) -> np.ndarray:
    return (10.0 ** (np.round(log10_power * LEVEL_STEP) / LEVEL_STEP)).astype(np.float32)


def synthetic_mels(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Raw-power mels (M, 128, 323) float32 across realistic levels (xte spans 3e-8 .. 7e3)."""
    names, mels = [], []
    mel = np.arange(N_MELS)[:, None] / (N_MELS - 1)
    frames = np.arange(N_FRAMES)[None, :]
    # iid log-uniform over twelve decades: the widest plausible spread, no structure
    names.append("loguniform")
    mels.append(_quantised_power(rng.uniform(-8.0, 4.0, (N_MELS, N_FRAMES))))
    # music-like: spectral tilt (bass strongest), a beat-rate loudness envelope, cell noise
    for name, top, tilt, pad in (("tilt_loud", 2.5, 7.0, 0), ("tilt_quiet_padded", 0.5, 5.0, 60)):
        beat = 0.8 * np.maximum(0.0, np.sin(2 * np.pi * frames / rng.uniform(4.0, 12.0)))
        log10 = top - tilt * mel + beat + rng.normal(0.0, 0.6, (N_MELS, N_FRAMES))
        x = _quantised_power(log10)
        if pad:  # a clip shorter than 30 s: zero-padded at the end, as mel_extract.py does
            x[:, -pad:] = 0.0
        names.append(name)
        mels.append(x)
    return names, np.stack(mels)


def random_tags(rng: np.random.Generator, n: int) -> np.ndarray:
    """Tag probabilities (n, 50) in (0, 1), mostly small as JYnet's are."""
    return np.clip(rng.beta(0.6, 3.0, (n, 50)), 1e-4, 1 - 1e-4).astype(np.float32)


TF_INSTALL = 'python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2"'


def run_graph(folder: Path, x: np.ndarray, tags: np.ndarray) -> dict:
    try:
        import tensorflow as tf
    except ImportError:  # never a hitrank dependency: a throwaway environment of its own
        sys.exit(f"make_ret30_goldens.py runs the original TensorFlow graph and needs TensorFlow, "
                 f"which is not installed here; make a throwaway environment: {TF_INSTALL}, then "
                 "run this script with /tmp/tfenv/bin/python")

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        saver = tf.compat.v1.train.import_meta_graph(str(folder / "ret30.mdl" / "model.ckpt.meta"))
        saver.restore(sess, str(folder / "ret30.mdl" / "model.ckpt"))
        names = list(FETCH.values()) + list(FUSION_CONSTS)
        out = sess.run(names, {X_IN: x[..., None], TAGS_IN: tags})
        print("tf", tf.__version__)
    res = dict(zip(FETCH, out[: len(FETCH)], strict=True))
    res["cnn"], res["tag"], res["add"] = (res[k].reshape(-1) for k in ("cnn", "tag", "add"))
    res["emb"] = res["emb"].reshape(len(x), -1)
    res["fusion_weights"] = np.array(out[len(FETCH):], dtype=np.float32)
    return res


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else DEFAULT_FOLDER
    rng = np.random.default_rng(SEED)
    xte = np.load(folder / "test_data" / "xte.npy")  # (1, 128, 323) float64
    tgte = np.load(folder / "test_data" / "tgte.jynet.npy")  # (1, 50) float64, JYnet order

    xs, ts, xte_tags = [], [], []
    for _, scale, shift, tags in XTE_CASES:
        xs.append(np.roll(xte[0] * scale, shift, axis=-1).astype(np.float32))
        row = tgte[0].astype(np.float32) if tags == "tgte" else random_tags(rng, 1)[0]
        ts.append(row)
        xte_tags.append(np.zeros(50, np.float32) if tags == "tgte" else row)  # never store tgte
    synth_names, x_synth = synthetic_mels(rng)
    tags_synth = random_tags(rng, len(x_synth))
    x = np.concatenate([np.stack(xs), x_synth])
    tags = np.concatenate([np.stack(ts), tags_synth])

    res = run_graph(folder, x, tags)
    assert abs(res["add"][0] - EXPECTED_ADD) < 1e-6, res["add"][0]
    names = [c[0] for c in XTE_CASES] + synth_names
    for i, name in enumerate(names):
        print(f"{name:18s} cnn {res['cnn'][i]: .8f}  tag {res['tag'][i]: .8f}  add {res['add'][i]: .9f}"
              f"  input {x[i].min():.3g}..{x[i].max():.3g}")
    print("fusion consts", res["fusion_weights"])

    DEST.parent.mkdir(exist_ok=True)
    np.savez_compressed(
        DEST, case=np.array(names),
        xte_scale=np.array([c[1] for c in XTE_CASES]), xte_shift=np.array([c[2] for c in XTE_CASES]),
        xte_use_tgte=np.array([c[3] == "tgte" for c in XTE_CASES]), xte_tags_jynet=np.stack(xte_tags),
        x_synth=x_synth, tags_synth_jynet=tags_synth,
        cnn=res["cnn"], tag=res["tag"], add=res["add"], emb=res["emb"].astype(np.float32),
        fusion_weights=res["fusion_weights"])
    print(f"wrote {DEST} ({DEST.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
