"""The bank's engines: every member's forward pass in one lockstep computation, and the bank
that trains its members with them.

Engines (``engine=``, or the environment variable ``HITRANK_BANK_ENGINE``)
-------------------------------------------------------------------------
``loop``
    Each member's layers with its own torch ops on its own rows (the ops ``fit`` runs), in
    one lockstep graph: one backward pass, the members' optimiser steps, masks, batches and
    bookkeeping as in :mod:`hitrank.bank`. Bitwise identical to ``fit`` (float32 and bf16, any thread count:
    tests/test_bank.py). No batched kernels, so it saves only per-step Python overhead.
    The CPU default: measured as fast as the batched engines there (the CNN's convolutions
    are compute bound on CPU, batching them buys nothing) and the only exact one.
``grouped``
    Layout ``(B, K * C, T)``; every convolution is one grouped ``conv1d`` with ``groups=K``
    (the CNN is fully convolutional, so member k's channels only meet member k's weights);
    the tag DNNs run member by member (tiny). One member: bitwise ``fit``. Several: the
    grouped 1x1 convolutions (and, with more than one thread, the grouped weight gradients)
    round differently (~1e-6 relative per step), which Adagrad's per-element normalisation
    amplifies in weights with near-zero gradients: after a few epochs a member's losses
    differ from ``fit``'s by ~1e-7..1e-3 relative (tests/test_bank.py).
``bmm``
    Channels-last ``(K, B, T, C)``; every convolution and the tag DNN is one batched matrix
    product (``bmm``; kernel-4 convolutions over im2col windows, accumulated in one pass; the
    bias added in float32, the overlapping windows' gradients summed in float32, as a
    convolution does under bf16). Rounding as ``grouped``. The CUDA default, chosen by
    reasoning (no GPU could be measured): a bank's point on a GPU is to replace K small
    kernel launches per layer by one large one, strided-batched GEMM is cuBLAS's
    best-supported batched primitive and runs on bf16 tensor cores, while grouped
    convolutions with 32-256 channels per group are a weak spot of cuDNN's algorithm
    choice. ``engine='grouped'`` / ``'loop'`` measure the alternatives on a GPU.

A member here is a :class:`hitrank.bank.Member`: the trainer's own training of one job (its
batches, loss, optimiser step and validation record) with its network's parts
(:mod:`hitrank.bank.network`) and dropout stream; the engines replace only its forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..inference import PREDICT_BATCH
from ..models.layers import standardise
from ..runtime import autocast
from .network import Layer, check_bank, cnn_spec, dnn_spec, dropout


# ----------------------------------------------------------------------------- batched forward
def _pointwise(layer: Layer, h: torch.Tensor) -> torch.Tensor:
    """A LeakyReLU or max-pool bank operation on ``h`` (B, C, T)."""
    if layer.kind == "lrelu":
        return F.leaky_relu(h, layer.args[0])
    return F.max_pool1d(h, *layer.args)


def _padded(rows: list[torch.Tensor]) -> tuple[list[int], int, list[torch.Tensor]]:
    """Row counts, their maximum B, and each member's rows padded to B (with its first row;
    padded rows are computed and discarded, so they carry no gradient)."""
    n = [len(r) for r in rows]
    B = max(n)
    return n, B, [r if len(r) == B else torch.cat([r, r[:1].expand(B - len(r))]) for r in rows]


def _cnn_grouped(spec, members: list, rows: list[torch.Tensor], X: torch.Tensor,
                 train: bool) -> tuple[torch.Tensor, list[int]]:
    """Grouped-conv engine: scores ``(B, m)`` of every member's (padded) rows."""
    m = len(members)
    n, B, padded = _padded(rows)
    idx = torch.stack(padded, 1)  # (B, m)
    mean = torch.stack([mb.cnn.in_mean for mb in members])[:, :, None]  # (m, n_mels, 1)
    std = torch.stack([mb.cnn.in_std for mb in members])[:, :, None]
    x = standardise(X[idx], mean, std)  # (B, m, n_mels, T), as SimpleCNN.forward
    h = x.reshape(B, -1, x.shape[-1])
    conv = 0
    for layer in spec:
        if layer.kind == "conv":
            stride, padding, dilation, groups, has_bias = layer.args
            w = torch.cat([mb.convs[conv].weight for mb in members])
            b = torch.cat([mb.convs[conv].bias for mb in members]) if has_bias else None
            h = F.conv1d(h, w, b, stride, padding, dilation, groups * m)
            conv += 1
        elif layer.kind in ("lrelu", "pool"):
            h = _pointwise(layer, h)
        elif layer.kind == "drop" and train:
            C, L = h.shape[1] // m, h.shape[2]

            def noise(h=h, C=C, L=L, p=layer.args[0], byte=layer.args[1]):
                out = h.new_zeros(B, m, C, L, dtype=members[0].stream.dtype(h.dtype))
                for j, mb in enumerate(members):
                    out[: n[j], j] = mb.stream.noise((n[j], C, L), p, h.dtype, byte)
                return out.view(B, m * C, L)

            h = dropout(h, layer.args[0], noise, layer.args[1])
    return h.reshape(B, m, -1).float().mean(dim=2), n  # SimpleCNN: mean over channels and time


def _conv_channels_last(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Stride-1 unpadded conv of channels-last ``h`` (m, B, L, C) with weights ``w``
    (m, O, C, k) -> (m, B, L - k + 1, O): one batched GEMM over the ``C * k`` window entries
    (im2col for k > 1), so that every output is accumulated in one pass and rounded once,
    as a convolution is (also under bf16 autocast)."""
    m, B, L, C = h.shape
    n_out, k = w.shape[1], w.shape[3]
    Lo = L - k + 1
    if k == 1:
        flat, wt = h.reshape(m, B * L, C), w[..., 0].transpose(1, 2)  # (m, C, O)
    else:
        # float32 windows: the gradient of overlapping windows is summed in float32 (as a
        # convolution's input gradient is accumulated) even when the GEMM runs in bf16
        flat = h.float().unfold(2, k, 1).reshape(m, B * Lo, C * k)  # windows (m, B, Lo, C, k)
        wt = w.reshape(m, n_out, C * k).transpose(1, 2)  # (m, C * k, O), the same (C, k) order
    return _biased(torch.bmm(flat, wt), b).view(m, B, Lo, n_out)


def _biased(y: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``y`` (m, rows, O) plus the members' biases ``b`` (m, O); under reduced precision the
    bias is added in float32 and the sum rounded once, as in a convolution's epilogue."""
    if b is None:
        return y
    if y.dtype == b.dtype:
        return y + b[:, None, :]
    return (y.float() + b[:, None, :]).to(y.dtype)


def _cnn_bmm(spec, members: list, rows: list[torch.Tensor], X: torch.Tensor,
             train: bool) -> tuple[torch.Tensor, list[int]]:
    """Batched-matmul engine: scores ``(m, B)`` of every member's (padded) rows."""
    m = len(members)
    n, B, padded = _padded(rows)
    idx = torch.stack(padded, 0)  # (m, B)
    mean = torch.stack([mb.cnn.in_mean for mb in members])[:, None, :, None]  # (m, 1, n_mels, 1)
    std = torch.stack([mb.cnn.in_std for mb in members])[:, None, :, None]
    x = standardise(X[idx], mean, std)  # (m, B, n_mels, T)
    h = x.transpose(2, 3).contiguous()  # (m, B, T, n_mels)
    conv = 0
    for layer in spec:
        if layer.kind == "conv":
            w = torch.stack([mb.convs[conv].weight for mb in members])
            b = torch.stack([mb.convs[conv].bias for mb in members]) if layer.args[4] else None
            h = _conv_channels_last(h, w, b)
            conv += 1
        elif layer.kind == "lrelu":
            h = F.leaky_relu(h, layer.args[0])
        elif layer.kind == "pool":
            k = layer.args[0]
            L2 = h.shape[2] // k
            h = h[:, :, : L2 * k].reshape(m, B, L2, k, h.shape[3]).max(dim=3).values
        elif layer.kind == "drop" and train:
            L, C = h.shape[2], h.shape[3]

            def noise(h=h, C=C, L=L, p=layer.args[0], byte=layer.args[1]):
                out = h.new_zeros(m, B, L, C, dtype=members[0].stream.dtype(h.dtype))
                for j, mb in enumerate(members):  # drawn in the model's (n, C, L) order
                    out[j, : n[j]] = mb.stream.noise((n[j], C, L), p, h.dtype, byte).transpose(1, 2)
                return out

            h = dropout(h, layer.args[0], noise, layer.args[1])
    return h.reshape(m, B, -1).float().mean(dim=2), n


def _cnn_each(spec, mb, rows: torch.Tensor, X: torch.Tensor, train: bool) -> torch.Tensor:
    """Loop engine: one member's CNN on its own rows with the model's own torch ops, ``(n,)``."""
    cnn = mb.cnn
    h = standardise(X[rows], cnn.in_mean[:, None], cnn.in_std[:, None])
    conv = 0
    for layer in spec:
        if layer.kind == "conv":
            c = mb.convs[conv]
            h = F.conv1d(h, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)
            conv += 1
        elif layer.kind in ("lrelu", "pool"):
            h = _pointwise(layer, h)
        elif layer.kind == "drop" and train:
            h = dropout(h, layer.args[0],
                        lambda h=h, p=layer.args[0], b=layer.args[1]: mb.stream.noise(tuple(h.shape), p, h.dtype, b),
                        layer.args[1])
    return h.float().mean(dim=(1, 2))


def _dnn_each(spec, mb, t: torch.Tensor, train: bool) -> torch.Tensor:
    """One member's tag DNN, ``(n, 50) -> (n,)``, with torch's own ops (exactly as alone)."""
    lin = 0
    for layer in spec:
        if layer.kind == "linear":
            t = F.linear(t, mb.linears[lin].weight, mb.linears[lin].bias)
            lin += 1
        elif layer.kind == "lrelu":
            t = F.leaky_relu(t, layer.args[0])
        elif layer.kind == "drop" and train:
            t = dropout(t, layer.args[0],
                        lambda t=t, p=layer.args[0], b=layer.args[1]: mb.stream.noise(tuple(t.shape), p, t.dtype, b),
                        layer.args[1])
    return t.squeeze(-1)


def _dnn_bmm(spec, members: list, rows: list[torch.Tensor], T: torch.Tensor,
             train: bool) -> torch.Tensor:
    """The tag DNNs of ``members`` as batched matmuls: (m, B) scores of their padded rows."""
    n, B, padded = _padded(rows)
    t = T[torch.stack(padded, 0)].float()  # (m, B, n_tags)
    lin = 0
    for layer in spec:
        if layer.kind == "linear":
            w = torch.stack([mb.linears[lin].weight for mb in members]).transpose(1, 2)
            b = torch.stack([mb.linears[lin].bias for mb in members]) if layer.args[0] else None
            t = _biased(torch.bmm(t, w), b)
            lin += 1
        elif layer.kind == "lrelu":
            t = F.leaky_relu(t, layer.args[0])
        elif layer.kind == "drop" and train:

            def noise(t=t, p=layer.args[0], byte=layer.args[1]):
                out = t.new_zeros(t.shape, dtype=members[0].stream.dtype(t.dtype))
                for j, mb in enumerate(members):
                    out[j, : n[j]] = mb.stream.noise((n[j], t.shape[2]), p, t.dtype, byte)
                return out

            t = dropout(t, layer.args[0], noise, layer.args[1])
    return t.squeeze(-1)


def _forward(engine: str, spec, dnn_spec, members: list, rows: list[torch.Tensor],
             X: torch.Tensor, train: bool) -> list[torch.Tensor]:
    """Every member's scores of its rows, ``[(n_j,), ...]``, as its model would compute them
    (``forward``, which ``pair`` calls on the concatenated pair songs)."""
    if engine == "loop":
        scores = [_cnn_each(spec, mb, r, X, train) for mb, r in zip(members, rows, strict=True)]
    elif engine == "grouped":
        out, n = _cnn_grouped(spec, members, rows, X, train)
        scores = [out[: n[j], j] for j in range(len(members))]
    else:
        out, n = _cnn_bmm(spec, members, rows, X, train)
        scores = [out[j, : n[j]] for j in range(len(members))]
    tagged = [j for j, mb in enumerate(members) if mb.dnn is not None]
    if not tagged:
        return scores
    if engine != "bmm":
        tag = {j: _dnn_each(dnn_spec, members[j], members[j].tags[rows[j]].float(), train)
               for j in tagged}
    else:
        t_out = _dnn_bmm(dnn_spec, [members[j] for j in tagged], [rows[j] for j in tagged],
                         members[tagged[0]].tags, train)
        tag = {j: t_out[i, : len(rows[j])] for i, j in enumerate(tagged)}
    for j in tagged:  # TagFusion.forward: a * cnn + b * dnn
        a, b = members[j].fusion
        scores[j] = a * scores[j] + b * tag[j]
    return scores


# ----------------------------------------------------------------------------- one bank
class Bank:
    """Members trained in lockstep on one device: the trainer's batches, losses, optimiser
    steps and validation records of each member, with one forward and one backward pass per
    step for all of them.

    Parameters
    ----------
    X : (n, n_mels, n_frames) float16 features of all songs, on the device
    members : :class:`hitrank.bank.Member` objects of one config (the same network shapes)
    engine : loop | grouped | bmm
    """

    def __init__(self, X: torch.Tensor, members: list, engine: str):
        self.X, self.members, self.engine = X, members, engine
        check_bank(members, engine)
        self.spec = cnn_spec(members[0].cnn, engine)
        dnn = next((mb.dnn for mb in members if mb.dnn is not None), None)
        self.dnn_spec = dnn_spec(dnn) if dnn is not None else None
        self.amp = members[0].amp  # bf16 autocast exactly when fit uses it (one config)

    def step(self, active: list, s: int) -> None:
        """Step ``s`` of every member in ``active``: one forward, one backward, each member's
        own optimiser step."""
        with autocast(self.X.device, self.amp):
            outs = _forward(self.engine, self.spec, self.dnn_spec, active,
                            [mb.rows(s) for mb in active], self.X, True)
            losses = [mb.rows_loss(s, out) for mb, out in zip(active, outs, strict=True)]
        for mb in active:
            mb.opt.zero_grad(set_to_none=True)
        # d(sum)/d(loss_k) = 1: each member receives exactly the gradient of its own loss
        torch.stack(losses).sum().backward()
        for mb, loss in zip(active, losses, strict=True):
            mb.stepped(loss)

    @torch.no_grad()
    def predict(self, members: list) -> list[np.ndarray]:
        """Validation scores of each member, in chunks of PREDICT_BATCH songs (as ``predict``)."""
        dev = self.X.device
        chunks = [[torch.as_tensor(mb.job.val_idx[i: i + PREDICT_BATCH], device=dev)
                   for i in range(0, len(mb.job.val_idx), PREDICT_BATCH)] for mb in members]
        outs: list[list[torch.Tensor]] = [[] for _ in members]
        for mb in members:
            mb.model.eval()
        for c in range(max((len(ch) for ch in chunks), default=0)):
            act = [j for j, ch in enumerate(chunks) if c < len(ch)]
            with autocast(dev, self.amp):
                res = _forward(self.engine, self.spec, self.dnn_spec, [members[j] for j in act],
                               [chunks[j][c] for j in act], self.X, False)
            for j, r in zip(act, res, strict=True):
                outs[j].append(r.float().cpu())
        return [torch.cat(o).double().numpy() if o else np.zeros(0) for o in outs]

    def epoch(self) -> list:
        """One epoch of every member still training; returns those that go on."""
        running = [mb for mb in self.members if mb.next_epoch()]
        if not running:
            return []
        for s in range(max(len(mb.batches) for mb in running)):
            self.step([mb for mb in running if s < len(mb.batches)], s)
        preds = self.predict(running)
        return [mb for mb, pred in zip(running, preds, strict=True) if mb.end_epoch(pred)]
