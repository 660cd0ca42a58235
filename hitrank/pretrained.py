"""The authors' released models as ordinary hitrank models (``hitrank pretrained import``).

Yu, Yang, Hung & Chen released (github.com/OckhamsRazor/HSP_CNN, Apache-2.0) the hit-score
regressor they trained on KKBOX listening data, "ret30" (the simple CNN + the tag DNN, a TF1
checkpoint), and the JYnet MagnaTagATune tagger it reads (Liu & Yang 2016, ISC, a Lasagne
``.npz``). :func:`import_release` converts both, without TensorFlow or Theano, into hitrank
checkpoints under ``$HITRANK_CACHE/models/``:

* ``jynet/jynet.pt`` -- the tagger (kind ``tagger``), used by ``--tagger jynet``;
* ``yu2018-kkbox/`` -- a run folder (run.json, model.pt) ranking with ret30 on the Mid-30
  segment: raw power mel (Hann window, no log, 128 x 323) + JYnet tags of the same 30 s; on
  audio of 30 s or longer the mel frames follow the released extractor (the centre 323 frames
  of the whole song's mel, ``mel_crop='centre'``, :func:`hitrank.segments.centre_mel`);
* ``yu2018-kkbox-hl30/`` -- the same model on hitrank's HL-30 segment (training-free
  fallback highlighter; the released pipeline used the authors' own highlighter);

each with ``provenance.json`` (source files and their SHA-1, licences, options) and the
licence text. Then ``hitrank rank FOLDER --model yu2018-kkbox`` ranks any folder, and
``hitrank train|cv --init yu2018-kkbox`` starts a model from the released weights
(:func:`hitrank.checkpoint.init_weights`).

Score: ``score`` is ret30's output y on its training scale ``-1/log10(r)``;
``predicted_hit_score`` is ``r = 10^(-1/y)`` (y <= 0 gives 0), the predicted retention-30
popularity the model was trained on (see the README for what it was and was not tested on).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from . import segments
from .checkpoint import save_checkpoint
from .errors import CheckpointError, HitrankError
from .fileio import atomic_write_text
from .models import build
from .models.ret30 import CKPT_DIR, CKPT_PREFIX, CONV_VARS, DENSE_VARS, REPO_URL, ret30_state
from .payload import check_finite
from .runinfo import write_run_info
from .runtime import models_dir
from .schema import Config
from .tags import jynet, jynet_checkpoint
from .tags.bundle import read_bundle
from .targets import Target
from .yamlconfig import build_config

log = logging.getLogger(__name__)

KKBOX_MODELS = {"yu2018-kkbox": "mid30", "yu2018-kkbox-hl30": "hl30"}  # name -> segment method
#: the released extractor's frame crop, per segment method: the centre frames of the whole
#: song's mel (HL-30 cuts exactly 30 s, whose 323 frames are all kept: nothing to crop)
KKBOX_MEL_CROP = {"mid30": "centre", "hl30": ""}
SOURCE = "https://github.com/OckhamsRazor/HSP_CNN"
LICENCES = {"ret30": "Apache-2.0 (the HSP_CNN repository, LICENSE)",
            "jynet": "ISC (JYnet, Liu & Yang 2016, distributed in the HSP_CNN repository)"}
RET30_TARGET = "neg_inv_log10"  # the released training target -1/log10(r), r in (0, 1)
FUSIONS = ("trained", "released_script")
PAPER = "Yu, Yang, Hung & Chen (2018), arXiv:1710.10814"


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _sources(folder: Path, rels) -> dict:
    return {rel: _sha1(folder / rel) for rel in rels if (folder / rel).is_file()}


def ret30_prefix(folder: str | os.PathLike) -> Path:
    """``<folder>/ret30.mdl/model.ckpt``; ``folder`` may also be ret30.mdl itself."""
    folder = Path(folder)
    for ckpt_dir in (folder / CKPT_DIR, folder):
        prefix = ckpt_dir / CKPT_PREFIX
        if Path(str(prefix) + ".index").is_file():
            break
    else:
        prefix = folder / CKPT_DIR / CKPT_PREFIX
    for suffix in (".index", ".data-00000-of-00001"):
        path = Path(str(prefix) + suffix)
        if not path.is_file():
            raise CheckpointError(
                f"{str(path)!r}: ret30 checkpoint file missing; pass the folder that holds "
                f"{CKPT_DIR}/ (shared/reference/hsp_cnn, or a clone of {REPO_URL})")
    return prefix


def convert_ret30(folder: str | os.PathLike, fusion: str = "trained") -> dict:
    """Read the released ret30 checkpoint under ``folder`` (``ret30.mdl/`` inside it, or the
    folder itself) and convert it (:func:`hitrank.models.ret30.ret30_state`).

    Raises
    ------
    CheckpointError
        When a file is missing, truncated or damaged, or a weight ret30 uses is not finite.
    """
    prefix = ret30_prefix(folder)
    tensors = read_bundle(prefix)
    data = str(prefix) + ".data-00000-of-00001"
    for name in (f"{var}/{part}" for var, _ in CONV_VARS + DENSE_VARS for part in ("kernel", "bias")):
        if name in tensors:  # the Adagrad slots, which ret30 does not use, are not checked
            check_finite(tensors[name], f"{data!r}: tensor {name!r}",
                         f"the checkpoint is damaged: get a fresh copy of {REPO_URL}")
    return ret30_state(tensors, fusion, str(prefix))


def load_ret30(folder: str | os.PathLike, fusion: str = "trained") -> torch.nn.Module:
    """The converted ret30 network, in eval mode (see :func:`convert_ret30`)."""
    d = convert_ret30(folder, fusion)
    model = build(d["model"], **d["kwargs"])
    model.load_state_dict(d["state_dict"])
    return model.eval()


def kkbox_config(segment: str, fusion: str) -> dict:
    """The resolved config a converted ret30 run records (the features it needs)."""
    data = {"name": f"yu2018_kkbox_{segment}",
            "features": {"segment": segment, "window": "hann", "log": "none", "tags": True,
                         "tag_scope": "segment"},
            "tags": {"mu": [0.7 if fusion == "trained" else 0.5], "tagger": "jynet"},
            "train": {"target": RET30_TARGET}}
    return build_config(Config, data).to_dict()


def import_release(path: str | os.PathLike, force: bool = False, fusion: str = "trained",
                   standardisation: str = "clip") -> list[Path]:
    """Convert the released ret30 and JYnet weights found under ``path`` into hitrank models.

    Parameters
    ----------
    path : a checkout of the authors' repository, or a folder with its ``ret30.mdl/`` and
        ``data/`` (``../shared/reference/hsp_cnn``)
    force : replace models imported before
    fusion : ``trained`` (the trained graph, 0.3 cnn + 0.7 tag; default) or
        ``released_script`` (the released inference script's cnn + 0.5 tag)
    standardisation : JYnet's input standardisation in the KKBOX models: ``clip`` (refitted
        on each clip, what the released pipeline ran; default) or ``shipped`` (the shipped MTT
        standardisers)

    Returns
    -------
    The folders written (the JYnet folder and the KKBOX run folders).
    """
    if fusion not in FUSIONS:
        raise HitrankError(f"fusion={fusion!r}; expected one of {FUSIONS}")
    if standardisation not in jynet.STANDARDISATIONS:
        raise HitrankError(f"standardisation={standardisation!r}; expected one of {jynet.STANDARDISATIONS}")
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{str(folder)!r}: not a folder; pass a checkout of {SOURCE} or a folder "
                              "holding its ret30.mdl/ and data/")
    net = jynet.JYNet.from_release(folder)  # checks every JYnet file before anything is written
    ret30 = convert_ret30(folder, fusion=fusion)  # a folder that is not the release is named first
    targets = [jynet_checkpoint().parent] + [models_dir() / n for n in KKBOX_MODELS]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise HitrankError(f"already imported: {', '.join(map(str, existing))}; pass --force to replace")
    licence = folder / "LICENSE"
    jfiles = [jynet.MODEL_FILE, jynet.TAGS188_FILE] + [
        f"{jynet.STANDARDISER_DIR.format(n_fft=n)}/{f}" for n in jynet.N_FFTS for f in ("mean.npy", "std.npy")]
    rfiles = [f"ret30.mdl/model.ckpt.{ext}" for ext in ("index", "data-00000-of-00001", "meta")]
    written = []
    jdir = jynet_checkpoint().parent
    if jdir.exists():
        shutil.rmtree(jdir)
    jdir.mkdir(parents=True)
    jinfo = {"model": "JYnet (Liu & Yang 2016): multi-scale FCN MagnaTagATune tagger",
             "source": SOURCE, "licence": LICENCES["jynet"], "files": _sources(folder, jfiles),
             "imported_from": str(folder.absolute())}
    jynet.save_converted(net, jynet_checkpoint(), jinfo)
    atomic_write_text(jdir / "provenance.json", json.dumps(jinfo, indent=2))
    if licence.is_file():
        shutil.copyfile(licence, jdir / "LICENSE")
    written.append(jdir)
    tagger = "jynet" if standardisation == "clip" else "jynet-mtt-std"
    model = build(ret30["model"], **ret30["kwargs"])
    model.load_state_dict(ret30["state_dict"])
    for name, segment in KKBOX_MODELS.items():
        out = models_dir() / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        params = segments.params_for(segment, None, window="hann", log="none", tags="segment",
                                     tagger=tagger, mel_crop=KKBOX_MEL_CROP[segment])
        cfg = kkbox_config(segment, fusion)
        cfg["tags"]["tagger"] = tagger
        info = {"model": "ret30: the simple CNN + tag DNN of " + PAPER + ", trained on KKBOX "
                         "listening data (retention-30 popularity)",
                "source": SOURCE, "licence": LICENCES["ret30"], "tagger_licence": LICENCES["jynet"],
                "fusion": fusion, "jynet_standardisation": standardisation, "segment": segment,
                "mel_crop": params.mel_crop,
                "files": _sources(folder, rfiles), "imported_from": str(folder.absolute()),
                "score": "y on the training scale -1/log10(r); predicted_hit_score = 10^(-1/y), "
                         "the predicted retention-30 share r (0 when y <= 0)"}
        save_checkpoint(out / "model.pt", [(1.0, ret30["model"], ret30["kwargs"], model)],
                        Target(RET30_TARGET), cfg, params.to_dict(), info)
        write_run_info(out, "spectrogram", "import", name=name, pretrained=True)
        atomic_write_text(out / "provenance.json", json.dumps(info, indent=2))
        if licence.is_file():
            shutil.copyfile(licence, out / "LICENSE")
        written.append(out)
    log.info("imported %s", ", ".join(map(str, written)))
    return written
