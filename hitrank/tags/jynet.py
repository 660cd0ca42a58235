"""PyTorch port of JYnet (Liu & Yang 2016), the multi-scale FCN MagnaTagATune tagger of Yu et al. (2018).

The weights are read straight from the authors' released Lasagne arrays
(``data/models/model.20160309_111546.npz`` of OckhamsRazor/HSP_CNN); Theano and Lasagne are
never needed. The golden test (``tests/test_jynet.py``) checks the port against outputs of the
original Theano model.

Pipeline of the original (``extract_feats.py``, ``make_ex_data.py``, ``standardize.py``,
``test_model.py``):

1. mono audio at 16 kHz;
2. six scales, n_fft = 512 ... 16384 (win_length = n_fft), hop 512: power STFT (periodic Hann,
   centred with **reflect** padding, the old librosa default), 128 Slaney mel bands 0-8 kHz,
   natural ``ln(1 + 10000 * S)``; the first 911 frames (one 29.1 s MTT clip), zero rows appended
   when shorter;
3. per scale, a StandardScaler refitted on the clip's own frames (``standardisation="clip"``,
   what ``run.sh`` does) or the released MTT standardisers (``"shipped"``);
4. per scale two (conv 8 frames + ReLU, max-pool 4) blocks, concatenated, three 1x1 convs
   (ReLU, ReLU, sigmoid) to 188 frame-level tag probabilities, a learned per-tag Gaussian
   smoothing over time, and the mean over time.

Conventions of the original that the port reproduces: Theano convolutions flip their filters
(layers 1 and 3 here), 'strictsamex' padding (4 frames before, 3 after), max pooling that keeps
the partial last window (ceil mode), and the Gaussian layer's exact alignment and attenuated
edges (it is not renormalised over the zero padding).
"""

from __future__ import annotations

import functools
import math
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import audio
from ..constants import TAGS
from ..errors import CheckpointError, HitrankError, ParameterError
from ..payload import check_finite, load_payload, model_state, save_payload

SR = 16000  # Hz, JYnet's analysis rate
N_FFTS = (512, 1024, 2048, 4096, 8192, 16384)  # samples, scale 0..5 (win_length = n_fft)
N_SCALES = len(N_FFTS)
HOP = 512  # samples between frames (32 ms)
N_MELS = 128  # Slaney mel bands, 0 Hz to SR / 2
LOG_SCALE = 10000.0  # features are ln(1 + LOG_SCALE * mel power)
N_FRAMES = 911  # frames kept per clip (one 29.1 s MagnaTagATune clip)
MAX_SAMPLES = (N_FRAMES - 1) * HOP + N_FFTS[-1] // 2  # samples the 911 frames of all scales read

N_FILTERS = 32  # channels of each scale's two conv layers
KERNEL = 8  # frames, time extent of the two conv layers
PAD_BEFORE, PAD_AFTER = 4, 3  # frames of zero padding ('strictsamex' for a kernel of 8)
POOL = 4  # frames, max-pool size and stride (ceil mode: the partial last window is kept)
N_HIDDEN = 512  # channels of the two hidden 1x1 convs
N_TAGS188 = 188  # JYnet outputs (tag_list.top188.txt order); the first 50 are the top 50
GAUSS_TAPS = 256  # samples of each tag's Gaussian filter, at offsets -128 ... 127 frames
GAUSS_PAD_BEFORE, GAUSS_PAD_AFTER = 128, 127  # frames of zero padding of the Gaussian layer
PROB_EPS = 1e-6  # test_model.py clips probabilities to [PROB_EPS, 1 - PROB_EPS]

MODEL_FILE = "data/models/model.20160309_111546.npz"
STANDARDISER_DIR = "data/standardizers/logmelspec10000.16000_{n_fft}_512_128.0"
TAGS188_FILE = "data/data.magnatagatune/tag_list.top188.txt"
RELEASE = "the hsp_cnn data of OckhamsRazor/HSP_CNN (a checkout of that repository works)"
STANDARDISATIONS = ("clip", "shipped")
# soxr_hq: hitrank.audio.resample. kaiser_best: resampy's filter, what librosa < 0.10 (the
# original) used; it rolls off from about 7.2 kHz (-3 dB at 7.2 kHz, -24 dB at 7.6 kHz) where
# soxr HQ is flat to 7.5 kHz, so the top mel bands of resampled audio differ between the two.
RESAMPLERS = ("soxr_hq", "kaiser_best")


class ScaleBranch(nn.Module):
    """One scale: conv (8 x 128) + ReLU, pool 4, conv (8 x 1) + ReLU, pool 4.

    Input ``(B, 1, T, 128)``; output ``(B, 32, ceil(ceil(T / 4) / 4), 1)``.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, N_FILTERS, (KERNEL, N_MELS))
        self.conv2 = nn.Conv2d(N_FILTERS, N_FILTERS, (KERNEL, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv1, self.conv2):
            x = F.relu(conv(F.pad(x, (0, 0, PAD_BEFORE, PAD_AFTER))))
            x = F.max_pool2d(x, (POOL, 1), (POOL, 1), ceil_mode=True)
        return x


class GaussianSmoothing(nn.Module):
    """Per-tag Gaussian smoothing over time (Lasagne ``GaussianScan1DLayer``), a depthwise conv.

    Tag ``c`` is filtered with ``g_c(x) = exp(-x^2 / (2 sigma_c^2)) / (sqrt(2 pi) sigma_c)`` at
    ``x = -128 ... 127``, ``sigma_c = exp(log_sigma[c])``, not renormalised, over the input
    zero-padded by 128 frames before and 127 after; with the original's filter flip,
    ``y[c, t] = sum_u f[c, u] g_c(u - t + 1)``. Input and output ``(B, C, T)``.
    """

    def __init__(self, channels: int = N_TAGS188):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.zeros(channels))

    def kernel(self) -> torch.Tensor:
        """The filters as sampled by the original, ``(C, 256)`` (offset -128 first)."""
        x = torch.arange(
            -GAUSS_PAD_BEFORE,
            GAUSS_TAPS - GAUSS_PAD_BEFORE,
            dtype=self.log_sigma.dtype,
            device=self.log_sigma.device,
        )
        sigma = self.log_sigma.exp()[:, None]
        return torch.exp(-x.square() / (2 * sigma.square())) / (math.sqrt(2 * math.pi) * sigma)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        # Theano's conv flips the filter; conv1d correlates, so the flip is applied here
        w = self.kernel().flip(1)[:, None, :]  # (C, 1, 256)
        return F.conv1d(F.pad(f, (GAUSS_PAD_BEFORE, GAUSS_PAD_AFTER)), w, groups=f.shape[1])


class JYNet(nn.Module):
    """JYnet: the multi-scale FCN with Gaussian smoothing (``build_fcn_gaussian_multiscale(6)``).

    Parameters
    ----------
    tags188 : sequence of 188 str, optional
        Output tag names (``tag_list.top188.txt``), kept on :attr:`tags188`; set by
        :meth:`from_release`.

    Input ``(B, 6, T, 128)`` standardised log-mels, scale 0 (n_fft 512) first; :meth:`forward`
    returns ``(B, 188)`` unclipped clip-level probabilities. The released standardisers are the
    buffers ``shipped_mean`` and ``shipped_std`` ``(6, 128)``, so ``state_dict()`` carries them.
    """

    def __init__(self, tags188: Sequence[str] | None = None):
        super().__init__()
        self.branches = nn.ModuleList([ScaleBranch() for _ in N_FFTS])
        self.fc1 = nn.Conv2d(N_SCALES * N_FILTERS, N_HIDDEN, 1)
        self.fc2 = nn.Conv2d(N_HIDDEN, N_HIDDEN, 1)
        self.out = nn.Conv2d(N_HIDDEN, N_TAGS188, 1)
        self.gauss = GaussianSmoothing(N_TAGS188)
        self.register_buffer("shipped_mean", torch.zeros(N_SCALES, N_MELS))
        self.register_buffer("shipped_std", torch.ones(N_SCALES, N_MELS))
        self.tags188 = tuple(tags188) if tags188 is not None else ()
        if self.tags188 and len(self.tags188) != N_TAGS188:
            raise ParameterError(f"tags188 has {len(self.tags188)} names; expected {N_TAGS188}")

    def forward_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level tag probabilities before and after the Gaussian layer, of the
        standardised six-scale log-mels ``x`` (B, 6, T, 128) that :meth:`hidden` reads.

        Returns
        -------
        frames, smoothed : torch.Tensor, shape (B, 188, T'), T' = ceil(ceil(T / 4) / 4) (57 for 911)
        """
        frames = torch.sigmoid(self.out(self.hidden(x)[..., None]))[..., 0]  # (B, 188, T')
        return frames, self.gauss(frames)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (the second 512-channel 1x1 conv + ReLU), frame by frame.

        Parameters
        ----------
        x : torch.Tensor, shape (B, 6, T, 128)
            Standardised log-mels of the six scales.

        Returns
        -------
        torch.Tensor, shape (B, 512, T'), T' = ceil(ceil(T / 4) / 4) (57 for 911)
            What the output 1x1 conv (512 -> 188, sigmoid) reads; one frame per 16 input
            frames (0.512 s).
        """
        if x.ndim != 4 or x.shape[1] != N_SCALES or x.shape[3] != N_MELS:
            raise ParameterError(
                f"JYNet expects input (B, {N_SCALES}, T, {N_MELS}), got {tuple(x.shape)}"
            )
        maps = [branch(x[:, s : s + 1]) for s, branch in enumerate(self.branches)]
        t_min = min(
            m.shape[2] for m in maps
        )  # Lasagne ConcatLayer(cropping): keep the first frames
        h = torch.cat([m[:, :, :t_min] for m in maps], dim=1)  # (B, 192, T', 1), channel 32 s + c
        return F.relu(self.fc2(F.relu(self.fc1(h))))[..., 0]  # dropout is the identity at test time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip-level tag probabilities ``(B, 188)`` (unclipped) of input ``(B, 6, T, 128)``."""
        return self.forward_frames(x)[1].mean(dim=2)

    def load_lasagne(self, arrays: Sequence[np.ndarray]) -> None:
        """Copy the released Lasagne parameters (``arr_0 ... arr_30`` in order) into this module.

        Theano convolutions flip their filters: the (8 x 128) and (8 x 1) kernels of layers 1
        and 3 are flipped here; the 1x1 kernels need no flip.
        """
        expected = 4 * N_SCALES + 7
        if len(arrays) != expected:
            raise CheckpointError(
                f"the JYnet release has {len(arrays)} arrays; expected {expected}"
            )
        params = []
        for s, branch in enumerate(self.branches):
            w1, b1, w2, b2 = arrays[4 * s : 4 * s + 4]
            params += [
                (branch.conv1.weight, w1, True),
                (branch.conv1.bias, b1, False),
                (branch.conv2.weight, w2, True),
                (branch.conv2.bias, b2, False),
            ]
        rest = arrays[4 * N_SCALES :]
        params += [
            (self.fc1.weight, rest[0], False),
            (self.fc1.bias, rest[1], False),
            (self.fc2.weight, rest[2], False),
            (self.fc2.bias, rest[3], False),
            (self.out.weight, rest[4], False),
            (self.out.bias, rest[5], False),
            (self.gauss.log_sigma, rest[6], False),
        ]
        with torch.no_grad():
            for param, arr, flip in params:
                if tuple(arr.shape) != tuple(param.shape):
                    raise CheckpointError(
                        f"JYnet array of shape {arr.shape} does not fit the "
                        f"parameter of shape {tuple(param.shape)}; not the "
                        "released model.20160309_111546.npz?"
                    )
                t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
                param.copy_(t.flip(2, 3) if flip else t)

    @classmethod
    def from_release(cls, folder: str | Path) -> JYNet:
        """JYnet with the released weights, standardisers and tag names, in eval mode (CPU).

        Parameters
        ----------
        folder : path
            The hsp_cnn data folder (or a checkout of OckhamsRazor/HSP_CNN) holding
            ``data/models/model.20160309_111546.npz``, ``data/standardizers/...`` and
            ``data/data.magnatagatune/tag_list.top188.txt``.

        Raises
        ------
        CheckpointError
            If a file is missing, truncated or damaged, does not hold what the release holds,
            or holds values that are not finite (or standard deviations <= 0).
        """
        folder = Path(folder)
        model = _release_file(folder, MODEL_FILE)
        tags_file = _release_file(folder, TAGS188_FILE)
        tags188 = [t for t in tags_file.read_text(encoding="utf-8").splitlines() if t.strip()]
        if len(tags188) != N_TAGS188:
            raise CheckpointError(
                f"{str(tags_file)!r}: {len(tags188)} tag names; expected "
                f"{N_TAGS188} (the released tag_list.top188.txt)"
            )
        net = cls(tags188)
        arrays = _load_npz(model)
        if not all(k.startswith("arr_") and k[4:].isdigit() for k in arrays):
            raise CheckpointError(
                f"{str(model)!r}: unexpected arrays {sorted(arrays)[:5]}; "
                "expected arr_0 ... arr_30 (Lasagne parameter order)"
            )
        for key, arr in arrays.items():
            _check_finite(arr, model, f"array {key}")
        net.load_lasagne([arrays[k] for k in sorted(arrays, key=lambda k: int(k[4:]))])
        means, stds = [], []
        for n_fft in N_FFTS:
            sub = STANDARDISER_DIR.format(n_fft=n_fft)
            for name, dest in (("mean.npy", means), ("std.npy", stds)):
                path = _release_file(folder, f"{sub}/{name}")
                arr = _load_npy(path)
                if arr.shape != (N_MELS,):
                    raise CheckpointError(f"{str(path)!r}: shape {arr.shape}; expected ({N_MELS},)")
                _check_finite(arr, path, name[:-4])
                if name == "std.npy" and not np.all(arr > 0):
                    raise CheckpointError(
                        f"{str(path)!r}: {int(np.sum(arr <= 0))} of {arr.size} standard deviations "
                        f"are <= 0 (min {arr.min():g}); expected > 0: the standardiser is damaged, "
                        f"get a fresh copy of {RELEASE}"
                    )
                dest.append(arr)
        with torch.no_grad():
            net.shipped_mean.copy_(torch.from_numpy(np.stack(means)))
            net.shipped_std.copy_(torch.from_numpy(np.stack(stds)))
        return net.eval()

    @property
    def top50(self) -> tuple[str, ...]:
        """Names of the first 50 outputs (JYnet's top-50 order)."""
        return self.tags188[: len(TAGS)]


def _release_file(folder: Path, rel: str) -> Path:
    path = folder / rel
    if not folder.is_dir():
        raise CheckpointError(
            f"{str(folder)!r}: JYnet release folder does not exist; pass the folder of {RELEASE}"
        )
    if not path.is_file():
        raise CheckpointError(
            f"{str(path)!r}: JYnet release file missing; pass the folder of "
            f"{RELEASE}, which holds {rel}"
        )
    return path


#: first bytes of a .npy file (numpy.lib.format)
NPY_MAGIC = b"\x93NUMPY"


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{str(path)!r}: {what}; get a fresh copy of {RELEASE}")


def _load_npy(path: Path) -> np.ndarray:
    """A release ``.npy`` array (never pickled objects); CheckpointError naming the file when
    it is not a numpy array file or is truncated."""
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise _damaged(path, "not a numpy array file (no .npy header)")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
        except ValueError as exc:
            raise _damaged(path, f"not a numpy array file ({exc})") from None
        if dtype.hasobject:
            raise _damaged(path, "holds Python objects (pickled data), not numbers")
        expected, found = math.prod(shape), (path.stat().st_size - f.tell()) // max(dtype.itemsize, 1)
    if found < expected:
        raise _damaged(path, f"truncated or damaged: expected {expected} values, found {found}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _damaged(path, f"truncated or damaged ({exc})") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a release ``.npz`` (no pickled objects); CheckpointError naming the file
    when it is not a valid archive (truncated, damaged, or another kind of file)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise _damaged(path, f"not a valid .npz archive, truncated or damaged ({exc})") from None


def _check_finite(arr: np.ndarray, path: Path, what: str) -> None:
    check_finite(arr, f"{str(path)!r}: {what}", f"the file is damaged; get a fresh copy of {RELEASE}")


# ----------------------------------------------------------------------------- front end


@functools.lru_cache(maxsize=16)
def _constants(n_fft: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    import librosa

    basis = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=N_MELS).astype(np.float32)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32, device=device)
    return torch.from_numpy(basis).to(device), window


def _reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """numpy ``np.pad(mode='reflect')`` along the last axis, also when ``pad >= n`` (repeated).

    torch's reflect padding needs ``pad < n``; old librosa padded with numpy, which mirrors
    repeatedly, so a short signal gets the same frames as in the original.
    """
    n = x.shape[-1]
    if pad < n:
        return F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    idx = torch.arange(-pad, n + pad, device=x.device)
    if n == 1:
        return x[..., idx * 0]
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return x[..., torch.where(idx < n, idx, period - idx)]


def log_mels(y16: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """Raw six-scale log-mels of one or a batch of 16 kHz signals, all frames.

    Parameters
    ----------
    y16 : array, shape (n,) or (B, n)
        Mono audio at 16 kHz, ``n >= 1``.
    device : torch device

    Returns
    -------
    torch.Tensor, shape (6, 1 + n // 512, 128) or (B, 6, 1 + n // 512, 128), float32
        ``ln(1 + 10000 * mel power)``.
    """
    x = torch.as_tensor(y16, dtype=torch.float32).to(device)
    squeeze = x.ndim == 1
    x = x[None] if squeeze else x
    if x.ndim != 2 or x.shape[1] == 0:
        raise ParameterError(
            f"JYnet front end expects (n,) or (B, n) audio with n >= 1, got shape {tuple(x.shape)}"
        )
    out = []
    for n_fft in N_FFTS:
        basis, window = _constants(n_fft, str(x.device))
        spec = torch.stft(
            _reflect_pad(x, n_fft // 2),
            n_fft,
            HOP,
            window=window,
            center=False,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, 1 + n_fft / 2, T)
        out.append(torch.log1p(LOG_SCALE * (basis @ power)).transpose(1, 2))
    feats = torch.stack(out, dim=1)  # (B, 6, T, 128)
    return feats[0] if squeeze else feats


def front_end(y16: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """JYnet's input of one clip before standardisation: the first 911 frames of each scale.

    Parameters
    ----------
    y16 : np.ndarray, shape (n,)
        Mono audio at 16 kHz (``n >= 1``; any length: short clips get zero rows appended).

    Returns
    -------
    np.ndarray, shape (6, 911, 128), float32
        ``ln(1 + 10000 * S)`` of the Slaney mel power (scale 0 = n_fft 512), zero rows
        (log domain) after the clip's ``1 + n // 512`` frames when these are fewer than 911.
    """
    y16 = np.asarray(y16, dtype=np.float32)
    if y16.ndim != 1:
        raise ParameterError(f"front_end expects mono audio (n,), got shape {y16.shape}")
    # frames past 911 are dropped: keep only the samples the last kept frame reads (its
    # window then never reaches the reflected end, so the frames are unchanged)
    y16 = y16[:MAX_SAMPLES]
    feats = log_mels(y16, device)[:, :N_FRAMES].cpu().numpy()
    if feats.shape[1] < N_FRAMES:
        feats = np.pad(feats, ((0, 0), (0, N_FRAMES - feats.shape[1]), (0, 0)))
    return np.ascontiguousarray(feats, dtype=np.float32)


# ------------------------------------------------------------------------ standardisation


def clip_stats(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-scale mean and scale of one clip, as a StandardScaler fitted on its frames.

    Parameters
    ----------
    raw : np.ndarray, shape (6, T, 128)

    Returns
    -------
    mean, scale : np.ndarray, shape (6, 128), float64
        Population std; 1 where a bin is constant (sklearn's test for a constant feature:
        a variance within the rounding error of its computation).
    """
    x = np.asarray(raw, dtype=np.float64)
    n = x.shape[1]
    mean = x.mean(axis=1)
    var = x.var(axis=1)
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def standardise(
    raw: np.ndarray, mode: str = "clip", net_or_stats: JYNet | tuple | None = None
) -> np.ndarray:
    """Standardise raw six-scale log-mels per scale and mel bin.

    Parameters
    ----------
    raw : np.ndarray, shape (6, T, 128)
        :func:`front_end` output.
    mode : {'clip', 'shipped'}
        ``clip``: a scaler refitted on this clip's frames, zero-padding rows included (what the
        released ``run.sh`` does); ``shipped``: the released MagnaTagATune standardisers.
    net_or_stats : JYNet or (mean, std) pair of (6, 128) arrays
        Where the shipped standardisers come from; needed for ``mode='shipped'`` only.

    Returns
    -------
    np.ndarray, shape (6, T, 128), float32
    """
    raw = np.asarray(raw)
    if raw.ndim != 3 or raw.shape[0] != N_SCALES or raw.shape[2] != N_MELS:
        raise ParameterError(
            f"standardise expects raw log-mels ({N_SCALES}, T, {N_MELS}), got shape {raw.shape}"
        )
    if mode == "clip":
        mean, scale = clip_stats(raw)
    elif mode == "shipped":
        if isinstance(net_or_stats, JYNet):
            mean = net_or_stats.shipped_mean.detach().cpu().double().numpy()
            scale = net_or_stats.shipped_std.detach().cpu().double().numpy()
        elif isinstance(net_or_stats, tuple | list) and len(net_or_stats) == 2:
            mean, scale = (np.asarray(a, dtype=np.float64) for a in net_or_stats)
        else:
            raise ParameterError(
                "standardise(mode='shipped') needs net_or_stats: the JYNet of "
                "JYNet.from_release or a (mean, std) pair of (6, 128) arrays"
            )
        if mean.shape != (N_SCALES, N_MELS) or scale.shape != (N_SCALES, N_MELS):
            raise ParameterError(
                f"shipped standardisers have shapes {mean.shape}, {scale.shape}; "
                f"expected ({N_SCALES}, {N_MELS})"
            )
    else:
        raise ParameterError(f"standardisation={mode!r}; expected one of {STANDARDISATIONS}")
    return ((raw - mean[:, None, :]) / scale[:, None, :]).astype(np.float32)


# ---------------------------------------------------------------------------------- tags


def top50_index(net: JYNet) -> np.ndarray:
    """Indices into the 188 outputs of hitrank's 50 :data:`~hitrank.tags.TAGS`, by name."""
    if not net.tags188:
        raise ParameterError("this JYNet has no tag names; build it with JYNet.from_release")
    pos = {name: i for i, name in enumerate(net.top50)}
    missing = [t for t in TAGS if t not in pos]
    if missing:
        raise CheckpointError(f"JYnet's top-50 tags lack {missing}; not the released tag list?")
    return np.array([pos[t] for t in TAGS])


def predict188(
    y16: np.ndarray, net: JYNet, standardisation: str = "clip", device: str | torch.device = "cpu"
) -> np.ndarray:
    """JYnet's 188 unclipped probabilities of one 16 kHz clip (its first 29.1 s), ``(188,)``.

    ``net`` is moved to ``device`` (in place, as ``nn.Module.to`` does).
    """
    x = standardise(front_end(y16, device), standardisation, net)
    net = net.to(device)
    with torch.no_grad():
        out = net(torch.from_numpy(x)[None].to(device))[0]
    return out.cpu().numpy()


def resample16(y: np.ndarray, sr: int, resampler: str = "soxr_hq") -> np.ndarray:
    """Resample mono audio ``(n,)`` at ``sr`` Hz to 16 kHz, ``(~ n * 16000 / sr,)`` float32.

    ``resampler='kaiser_best'`` reproduces the original's ``librosa.load(sr=16000)`` (resampy's
    kaiser_best filter, length fixed to ``ceil``) and needs the optional package resampy.
    """
    if resampler not in RESAMPLERS:
        raise ParameterError(f"resampler={resampler!r}; expected one of {RESAMPLERS}")
    if sr <= 0:
        raise ParameterError(f"sr={sr}; expected a positive sample rate in Hz")
    y = np.asarray(y, dtype=np.float32)
    if sr == SR:
        return y
    if resampler == "soxr_hq":
        return audio.resample(y, sr, SR)
    try:
        import resampy
    except ImportError:
        raise HitrankError(
            "resampler='kaiser_best' (the original's resampler) needs resampy, "
            "which is not installed: pip install resampy; or use "
            "resampler='soxr_hq'"
        ) from None
    n_out = math.ceil(len(y) * SR / sr)
    out = resampy.resample(y, sr, SR, filter="kaiser_best", axis=-1)
    out = out[:n_out] if len(out) >= n_out else np.pad(out, (0, n_out - len(out)))
    return np.ascontiguousarray(out, dtype=np.float32)


def tag_vector(
    y: np.ndarray,
    sr: int,
    net: JYNet,
    standardisation: str = "clip",
    device: str | torch.device = "cpu",
    resampler: str = "soxr_hq",
) -> np.ndarray:
    """Top-50 MagnaTagATune tags of one clip, in hitrank's :data:`~hitrank.tags.TAGS` order.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio at ``sr`` Hz; resampled to 16 kHz when ``sr != 16000``. Only the first 911
        frames (29.1 s) are seen, as in the original.
    sr : int
        Sample rate of ``y`` (Hz).
    net : JYNet
        From :meth:`JYNet.from_release` (or a converted checkpoint with tag names).
    standardisation : {'clip', 'shipped'}
        See :func:`standardise`; ``clip`` is what the released pipeline ran.
    device : torch device
    resampler : {'soxr_hq', 'kaiser_best'}
        See :func:`resample16`. On 44.1 kHz music the two change the top mel bands (7.2-8 kHz)
        and the tags by up to about 0.02 (``clip``) or 0.25 (``shipped``).

    Returns
    -------
    np.ndarray, shape (50,), float64
        Probabilities clipped to ``[1e-6, 1 - 1e-6]`` as ``test_model.py`` does.
    """
    idx = top50_index(net)
    y16 = resample16(y, sr, resampler)
    out = predict188(y16, net, standardisation, device).astype(np.float64)
    return np.clip(out[idx], PROB_EPS, 1 - PROB_EPS)


# ----------------------------------------------------------------------------- converted weights
def save_converted(net: JYNet, path: str | Path, info: dict) -> None:
    """Write ``net`` as a hitrank checkpoint (kind ``tagger``; plain tensors and types)."""
    save_payload(path, "tagger", {"model": "jynet", "kwargs": {"tags188": list(net.tags188)},
                                  "state_dict": model_state(net), "info": info})


@functools.lru_cache(maxsize=2)
def load_converted(path: str) -> JYNet:
    """JYnet from a converted checkpoint (:func:`save_converted`), eval mode, cached per path."""
    payload = load_payload(path, "tagger")
    if payload.get("model") != "jynet":
        raise CheckpointError(f"{path!r} holds the tagger {payload.get('model')!r}, not jynet")
    net = JYNet(**payload["kwargs"])
    net.load_state_dict(payload["state_dict"])
    return net.eval()


def song_tag_vector(y: np.ndarray, sr: int, net: JYNet, standardisation: str = "clip",
                    device: str | torch.device = "cpu", resampler: str = "kaiser_best") -> np.ndarray:
    """Tags of a whole song: :func:`tag_vector` of each 29.1 s clip (911 frames) of ``y``,
    averaged; a song no longer than one clip is :func:`tag_vector` itself. ``(50,)``."""
    clips = song_clips(resample16(y, sr, resampler))
    return np.mean([tag_vector(c, SR, net, standardisation, device, resampler) for c in clips], axis=0)


def song_clips(y16: np.ndarray) -> list[np.ndarray]:
    """A 16 kHz song cut into JYnet's 29.1 s clips (911 frames of 512 samples); a remainder
    of half a clip or less is dropped unless it is the whole song. List of ``(n_c,)`` arrays."""
    step = N_FRAMES * HOP
    clips = [y16[i: i + step] for i in range(0, max(1, len(y16) - HOP), step)]
    return [c for c in clips if len(c) > step // 2] or clips[:1]


#: units of JYnet's last hidden layer (:meth:`JYNet.hidden`), the size of :func:`penultimate`
EMBEDDING_DIM = N_HIDDEN


def penultimate(y: np.ndarray, sr: int, net: JYNet, standardisation: str = "clip",
                device: str | torch.device = "cpu", resampler: str = "soxr_hq") -> np.ndarray:
    """JYnet's embedding of a song: its last hidden layer averaged over time, per 29.1 s clip.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio at ``sr`` Hz (resampled to 16 kHz, :func:`resample16`), at least one sample.
    sr : int
        Sample rate of ``y`` (Hz).
    net : JYNet
        From :meth:`JYNet.from_release` or :func:`load_converted`.
    standardisation : {'clip', 'shipped'}
        See :func:`standardise` (as for the tags).
    device : torch device
    resampler : {'soxr_hq', 'kaiser_best'}
        See :func:`resample16`.

    Returns
    -------
    np.ndarray, shape (C, 512), float32
        One row per clip of :func:`song_clips` (C = 2 for a 60 s song): the mean over time of
        :meth:`JYNet.hidden` (the ReLU output of the second 512-channel 1x1 conv, just before the
        188 sigmoid outputs) over the frames whose receptive field starts inside the clip's
        audio (``ceil(ceil(f / 4) / 4)`` of the 57 frames, ``f = min(911, 1 + n_c // 512)``);
        the frames over the zero rows that pad a short clip to 911 are left out.
    """
    y16 = resample16(y, sr, resampler)
    if y16.ndim != 1 or len(y16) == 0:
        raise ParameterError(f"penultimate expects mono audio (n,) with n >= 1, got shape {y16.shape}")
    net = net.to(device)
    out = []
    for clip in song_clips(y16):
        x = standardise(front_end(clip, device), standardisation, net)
        n_frames = min(N_FRAMES, 1 + len(clip) // HOP)
        keep = math.ceil(math.ceil(n_frames / POOL) / POOL)
        with torch.no_grad():
            h = net.hidden(torch.from_numpy(x)[None].to(device))[0, :, :keep]
        out.append(h.mean(dim=1).cpu().numpy())
    return np.stack(out).astype(np.float32)
