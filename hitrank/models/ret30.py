"""The authors' released ret30 regressor (Yu et al. 2018; TF1 checkpoint, trained on KKBOX
"retention-30" listening data), converted to hitrank's own ``tag_fusion`` model.

ret30 is the simple CNN (:class:`~hitrank.models.cnn.SimpleCNN`, with the output LeakyReLU)
fused with the tag DNN (:class:`~hitrank.models.tagfusion.TagDNN`, also with an output
LeakyReLU); no new network class is needed. What is particular to it:

- the input is the **raw power** mel (sr 22050, n_fft 4096, hop 2048, 128 Slaney mels, no log,
  no standardisation), (B, 128, 323): the input statistics are mean 0 / std 1;
- the tag input is JYnet's top-50 tag probabilities; the converter permutes the rows of the
  first dense layer so that the model takes them in hitrank's :data:`~hitrank.tags.TAGS` order
  (:func:`jynet_to_tags` reorders a JYnet-order vector);
- the trained graph's output is ``0.3 * cnn + 0.7 * tag`` (``mu = 0.7``); the released script
  ``cnn.ret30.fc.py -ps`` (the one behind ``run.sh``) instead computes ``cnn + 0.5 * tag``;
- the output is a normalised retention ``y = -1 / log10(r)``: :func:`denorm` gives ``r``.

Facts: ``shared/reference/hsp_cnn.md`` section 2. The checkpoint is read with hitrank's own
TensorBundle reader (no TensorFlow) by :func:`hitrank.pretrained.convert_ret30`; this module
only maps the variables (models never read files); the Adagrad slot variables are ignored.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..constants import TAGS
from ..errors import CheckpointError, ParameterError
from .layers import standardise
from .registry import build

#: Folder of the checkpoint inside the authors' repository (OckhamsRazor/HSP_CNN).
CKPT_DIR = "ret30.mdl"
#: TensorBundle prefix inside :data:`CKPT_DIR` (``.index`` + ``.data-00000-of-00001``).
CKPT_PREFIX = "model.ckpt"
REPO_URL = "https://github.com/OckhamsRazor/HSP_CNN"

N_MELS = 128  # mel bins of the raw-power input
N_FRAMES = 323  # frames per clip: ceil(30 s * 22050 Hz / 2048 hop)
N_TAGS = 50

#: Fusion weights (cnn, tag): the trained graph's Consts ``mul/x``, ``mul_1/x`` (= mu 0.7), and
#: the released script's rebuilt sum (``cnn += wt * tag``, default ``-wt 0.5``).
FUSIONS = {"trained": (0.3, 0.7), "released_script": (1.0, 0.5)}

#: JYnet's top-50 tags in its output order (``data/data.magnatagatune/tag_list.top50.txt``):
#: the order of the checkpoint's dense1 rows, which is hitrank's TAGS with two names swapped
#: (tests/test_ret30.py checks this against the release file).
_SWAPPED = ("metal", "female voice")
JYNET_TAGS = tuple({_SWAPPED[0]: _SWAPPED[1], _SWAPPED[1]: _SWAPPED[0]}.get(t, t) for t in TAGS)
#: ``JYNET_INDEX[i]`` = position in JYNET_TAGS of ``TAGS[i]`` (matched by name).
JYNET_INDEX = np.array([JYNET_TAGS.index(t) for t in TAGS])

#: TF variables (kernel shape as stored) of the CNN's five convolutions and the DNN's four dense
#: layers, in network order. TF kernels are (kh, kw, in, out) with kh = mel, kw = time; the
#: first kernel spans the whole mel axis, so every conv is a Conv1d over time.
CONV_VARS = (("conv2d", (N_MELS, 4, 1, 32)), ("conv2d_1", (1, 4, 32, 64)),
             ("conv2d_2", (1, 1, 64, 256)), ("conv2d_3", (1, 1, 256, 256)),
             ("conv2d_4", (1, 1, 256, 1)))
DENSE_VARS = (("dense1", (N_TAGS, 100)), ("dense2", (100, 100)), ("dense3", (100, 30)),
              ("logits_tag", (30, 1)))


def ret30_kwargs(fusion: str = "trained") -> dict:
    """``hitrank.models.build("tag_fusion", **kwargs)`` kwargs of the ret30 network.

    Parameters
    ----------
    fusion : 'trained' (``0.3 * cnn + 0.7 * tag``, the graph's output ``add``) or
        'released_script' (``cnn + 0.5 * tag``, what the authors' run.sh prints)
    """
    if fusion not in FUSIONS:
        raise ParameterError(f"fusion={fusion!r}: use one of {sorted(FUSIONS)}")
    kwargs = {"base": "simple_cnn", "base_kwargs": {"output_activation": "leaky_relu"},
              "dnn_kwargs": {"output_activation": "leaky_relu"}}
    if fusion == "trained":
        kwargs["mu"] = FUSIONS["trained"][1]
    else:
        kwargs["weights"] = list(FUSIONS[fusion])
    return kwargs


def _tensor(tensors: dict, name: str, shape: tuple, source: str) -> torch.Tensor:
    if name not in tensors:
        raise CheckpointError(f"{str(source)!r}: variable {name!r} missing; not the ret30 checkpoint")
    value = tensors[name]
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(f"{str(source)!r}: variable {name!r} has shape {tuple(value.shape)}, "
                              f"ret30 has {tuple(shape)}")
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def ret30_state(tensors: dict, fusion: str = "trained", source: str = "ret30") -> dict:
    """Convert the released ret30 variables to a hitrank ``tag_fusion`` model.

    Parameters
    ----------
    tensors : TF variable name -> array, as :func:`hitrank.tags.bundle.read_bundle` reads the
        released checkpoint (the Adagrad slot variables may be there: they are ignored)
    fusion : 'trained' or 'released_script', see :func:`ret30_kwargs`
    source : name of the checkpoint, for error messages

    Returns
    -------
    dict with ``model`` ('tag_fusion'), ``kwargs`` (plain Python types) and ``state_dict``
    (name -> float32 tensor), so that ``build(d["model"], **d["kwargs"])`` followed by
    ``load_state_dict(d["state_dict"])`` gives the network. Its ``forward(x, tags)`` takes
    x (B, 128, 323) raw-power mel (the NHWC (B, 128, 323, 1) input of the TF graph without the
    channel axis) and tags (B, 50) in :data:`hitrank.constants.TAGS` order, and returns (B,)
    normalised retention (:func:`denorm` maps it to a retention rate).

    Raises
    ------
    CheckpointError
        when a variable is missing or has the wrong shape.
    """
    kwargs = ret30_kwargs(fusion)
    model = build("tag_fusion", **kwargs)
    state = {k: v.clone() for k, v in model.state_dict().items()}  # in_mean 0, in_std 1 kept
    convs = [f"base.{n}" for n, m in model.base.named_modules() if isinstance(m, nn.Conv1d)]
    denses = [f"dnn.{n}" for n, m in model.dnn.named_modules() if isinstance(m, nn.Linear)]

    filled = set()
    for dest, (var, shape) in zip(convs, CONV_VARS, strict=True):
        kernel = _tensor(tensors, f"{var}/kernel", shape, source)
        # (kh, kw, in, out) -> (out, in, kh, kw); kh is the mel axis (the Conv1d's channels
        # for the first layer, 1 elsewhere): fold it into `in`. TF conv is a cross-correlation
        # like PyTorch's: no flip.
        w = kernel.permute(3, 2, 0, 1)
        state[f"{dest}.weight"] = w.reshape(w.shape[0], w.shape[1] * w.shape[2], w.shape[3])
        state[f"{dest}.bias"] = _tensor(tensors, f"{var}/bias", (shape[3],), source)
        filled |= {f"{dest}.weight", f"{dest}.bias"}
    for i, (dest, (var, shape)) in enumerate(zip(denses, DENSE_VARS, strict=True)):
        kernel = _tensor(tensors, f"{var}/kernel", shape, source)
        if i == 0:  # rows in JYnet order -> rows in TAGS order
            kernel = kernel[torch.from_numpy(JYNET_INDEX)]
        state[f"{dest}.weight"] = kernel.T.contiguous()
        state[f"{dest}.bias"] = _tensor(tensors, f"{var}/bias", (shape[1],), source)
        filled |= {f"{dest}.weight", f"{dest}.bias"}
    missed = {n for n, _ in model.named_parameters()} - filled
    assert not missed, f"ret30 converter left parameters unset: {sorted(missed)}"
    return {"model": "tag_fusion", "kwargs": kwargs, "state_dict": state}


def jynet_to_tags(tags_jynet: np.ndarray) -> np.ndarray:
    """Reorder tag vectors from JYnet's order to hitrank's TAGS order.

    Parameters
    ----------
    tags_jynet : (..., 50) in :data:`JYNET_TAGS` order (e.g. the released ``tgte.jynet.npy``)

    Returns
    -------
    (..., 50), the same dtype, in :data:`hitrank.tags.TAGS` order
    """
    tags_jynet = np.asarray(tags_jynet)
    if tags_jynet.shape[-1:] != (N_TAGS,):
        raise ParameterError(f"tags shape {tags_jynet.shape}: expected (..., {N_TAGS})")
    return tags_jynet[..., JYNET_INDEX]


def denorm(y: np.ndarray) -> np.ndarray:
    """Normalised retention -> retention rate: ``10 ** (-1 / y)``, with ``y <= 0`` -> 0.

    The inverse of ``y = -1 / log10(r)`` for r in (0, 1); the released code sets y < 0 to 0,
    which maps to 0. ``y`` (...,) -> (...,) float64 in [0, 1).
    """
    y = np.asarray(y, dtype=np.float64)
    out = np.zeros_like(y)
    pos = y > 0
    out[pos] = 10.0 ** (-1.0 / y[pos])
    return out


#: channels of the CNN's last hidden layer (``conv2d_3`` + LeakyReLU), the size of :func:`penultimate`
EMBEDDING_DIM = 256


def penultimate(model: nn.Module, x: torch.Tensor, frames: bool = False) -> torch.Tensor:
    """The ret30 CNN's last hidden layer: the pretrained KKBOX embedding of a 30 s clip.

    Parameters
    ----------
    model : nn.Module
        The converted ret30 network (``tag_fusion``, :func:`ret30_state`; its audio branch is
        used, the tags are not) or its ``simple_cnn`` base.
    x : torch.Tensor, shape (B, 128, 323)
        Raw-power mel, as ``forward`` takes it (see :func:`ret30_state`).
    frames : bool
        Return the frame-level layer instead of its mean over time.

    Returns
    -------
    torch.Tensor, shape (B, 256), or (B, 256, 78) when ``frames``
        The LeakyReLU output of ``conv2d_3`` (the second 256-channel 1x1 conv), which the output
        layer ``conv2d_4`` (1x1, 256 -> 1, LeakyReLU: the per-frame ``emb``) reads; 78 frames
        four input frames (about 0.37 s) apart (two valid convs of width 4, each followed by
        a max-pool of 2); or the mean over them, as the graph's ``GlobalAveragePooling``
        averages ``emb``. Dropout is inactive in eval mode.
    """
    base = getattr(model, "base", model)
    net = getattr(base, "net", None)
    convs = [i for i, m in enumerate(net or ()) if isinstance(m, nn.Conv1d)]
    if not convs or net[convs[-1]].out_channels != 1 or not hasattr(base, "in_mean"):
        raise ParameterError(f"penultimate needs the ret30 network or its simple_cnn base, got "
                             f"{type(model).__name__}; load it with hitrank.pretrained.load_ret30")
    if x.ndim != 3 or x.shape[1] != base.in_mean.shape[0]:
        raise ParameterError(f"penultimate expects raw-power mels (B, {base.in_mean.shape[0]}, T), "
                             f"got shape {tuple(x.shape)}")
    h = net[: convs[-1]](standardise(x, base.in_mean[:, None], base.in_std[:, None]))
    return h if frames else h.mean(dim=2)
