"""An experiment for the hit-potential curve: train the simple CNN on whole songs so that the
best window's score is what it learns (multiple-instance learning), then rank with
``scripts/eval_curve.py``. Not part of the package: docs/ranking.md reports what it measured.

The packaged curve config (``curve/c_simple_cnn_hl30_contrast``) trains on each song's HL-30
segment (and a contrast window); the maximum of its curve then over-rates windows it never
trained on. Here each training song's whole log-mel goes through the fully convolutional CNN
once, every 30 s window (hop 12 frames) is scored from the per-frame scores, and the loss is a
sum of the terms named by ``--loss`` (joined with ``+``):

* ``max``: squared error of the song's best window score against its standardised log hit
  score (``lse<tau>`` instead: a soft maximum, ``tau * logsumexp(s / tau) - tau * log(n)``);
* ``seg``: squared error of the HL-30 segment's score (the packaged config's rating term);
* ``con``: the within-song hinge ``relu(0.5 - (f(segment) - f(contrast window)))`` with the
  ``median`` contrast window of :func:`hitrank.thumbnail.window.contrast_window`.

Folds: song ``i`` tests in fold ``i % folds``, the next fold validates (early stopping on the
``max`` term's validation error, patience 8, learning rate x0.9 on a worse epoch; Adagrad 5e-3,
16 songs a step, bfloat16 autocast on the CPU), the rest trains. The checkpoints are written in
hitrank's format into ``--out`` (config and run record copied from ``--template``), so::

    python scripts/curve_mil_experiment.py --labels demo/corpus/labels.csv \\
        --store STORE_OF_THE_CONTRAST_RUN --template runs/contrast --out runs/mil --loss max+seg+con
    python scripts/eval_curve.py --out eval_mil --model runs/mil --test-folder fresh/

where ``runs/contrast`` is ``hitrank cv --config curve/c_simple_cnn_hl30_contrast`` on the
same labels (its ``run.json`` names ``STORE``: the HL-30 store with each song's highlighter
curve). Memory: every training song's whole log-mel (float16) is held at once (600 songs of
about 200 s: 0.3 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hitrank import audio
from hitrank.config import feature_params, load_config
from hitrank.features import log_mel
from hitrank.models.registry import build
from hitrank.payload import model_state, save_payload
from hitrank.targets import Target
from hitrank.thumbnail.window import contrast_window

HOP = 12  # frames between scored windows: a multiple of the CNN's frame stride (4)
MARGIN = 0.5  # the within-song hinge's margin, standard units
PATIENCE = 8


def window_scores(model, X: torch.Tensor, lens: list[int], n_frames: int):
    """Scores of every 30 s window of a batch of whole songs from one pass.

    X : (B, n_mels, L) log-mels padded to the longest; lens : (B,) frames of each song.
    Returns the window scores (B, W), which windows lie inside each song (B, W) bool, and the
    cumulative per-frame scores (B, L' + 1) with the per-window output count, for
    :func:`score_at`.
    """
    fs = model.frame_scores(X)
    n_out = model.frame_scores(X[:1, :, :n_frames]).shape[1]
    c = torch.cat([fs.new_zeros(fs.shape[0], 1), fs.cumsum(1)], 1)
    offs = torch.arange((X.shape[-1] - n_frames) // HOP + 1) * (HOP // model.frame_stride)
    s = (c[:, offs + n_out] - c[:, offs]) / n_out
    valid = offs[None, :] * model.frame_stride + n_frames <= torch.as_tensor(lens)[:, None]
    return s, valid, c, n_out


def score_at(model, c: torch.Tensor, n_out: int, starts: np.ndarray) -> torch.Tensor:
    """The score of the window starting at frame ``starts[b]`` of song ``b`` (multiples of the
    frame stride), from :func:`window_scores`' cumulative per-frame scores."""
    o = torch.clamp(torch.as_tensor(starts // model.frame_stride), max=c.shape[1] - 1 - n_out)
    rows = torch.arange(c.shape[0])
    return (c[rows, o + n_out] - c[rows, o]) / n_out


def pooled(s: torch.Tensor, valid: torch.Tensor, how: str) -> torch.Tensor:
    s = s.masked_fill(~valid, -1e9)
    if how.startswith("lse"):
        tau = float(how[3:])
        return tau * torch.logsumexp(s / tau, 1) - tau * torch.log(valid.sum(1).float())
    return s.max(1).values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--store", type=Path, required=True, help="HL-30 store: seg_start and curve per song")
    ap.add_argument("--template", type=Path, required=True, help="a cv run of the packaged curve config")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--loss", default="max+seg+con")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    terms = args.loss.split("+")
    torch.set_num_threads(2)
    cfg = load_config("curve/c_simple_cnn_hl30_contrast")
    params = feature_params(cfg)
    n_frames = params.n_frames
    lab = pd.read_csv(args.labels)
    t0 = time.time()
    mels = [log_mel(audio.load(args.labels.parent / p, params.sr)[0], params).to(torch.float16)
            for p in lab.path]
    print(f"{len(mels)} whole-song log-mels in {time.time() - t0:.0f} s", flush=True)
    man = pd.read_csv(args.store / "manifest.csv").set_index("song_id")
    per_second = params.sr / params.hop_length
    seg_f, con_f = [], []
    for sid in lab.song_id:
        r = man.loc[sid]
        c = contrast_window(np.array(json.loads(r.curve)), r.duration, r.seg_start, 30.0, "median")
        seg_f.append(int(round(r.seg_start * per_second / 4)) * 4)
        con_f.append(int(round(c * per_second / 4)) * 4 if c != r.seg_start else -1)
    seg_f, con_f = np.array(seg_f), np.array(con_f)
    y = lab.hit_score.to_numpy(float)
    fold_of = np.arange(len(y)) % args.folds
    template = torch.load(next(args.template.glob("fold_*.pt")), weights_only=True)
    args.out.mkdir(parents=True, exist_ok=True)

    def batches(idx, size, rng):
        idx = np.array(sorted(idx, key=lambda i: mels[i].shape[1]))  # little padding
        chunks = [idx[i: i + size] for i in range(0, len(idx), size)]
        rng.shuffle(chunks)
        return chunks

    def stack(ids):
        X = torch.zeros(len(ids), params.n_mels, max(mels[i].shape[1] for i in ids))
        for k, i in enumerate(ids):
            X[k, :, : mels[i].shape[1]] = mels[i].float()
        return X, [mels[i].shape[1] for i in ids]

    for f in range(args.folds):
        te, va = np.flatnonzero(fold_of == f), np.flatnonzero(fold_of == (f + 1) % args.folds)
        tr = np.setdiff1d(np.arange(len(y)), np.concatenate([te, va]))
        target = Target.fit("log", y[tr])
        z = torch.as_tensor(target.transform(y), dtype=torch.float32)
        torch.manual_seed(f)
        rng = np.random.default_rng(f)
        model = build("simple_cnn")
        frames = torch.cat([mels[i].float() for i in tr], 1)
        model.set_input_stats(frames.mean(1), frames.std(1))
        del frames
        opt = torch.optim.Adagrad(model.parameters(), lr=5e-3)
        best, best_state, bad = np.inf, None, 0
        for ep in range(args.epochs):
            model.train()
            for ids in batches(tr, 16, rng):
                X, lens = stack(ids)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    s, valid, c, n_out = window_scores(model, X, lens, n_frames)
                loss = 0.0
                if terms[0].startswith(("max", "lse")):
                    loss = loss + ((pooled(s, valid, terms[0]) - z[ids]) ** 2).mean()
                fseg = score_at(model, c, n_out, seg_f[ids])
                if "seg" in terms:
                    loss = loss + ((fseg - z[ids]) ** 2).mean()
                has = con_f[ids] >= 0
                if "con" in terms and has.any():
                    fcon = score_at(model, c[torch.as_tensor(has)], n_out, con_f[ids][has])
                    loss = loss + torch.relu(MARGIN - (fseg[torch.as_tensor(has)] - fcon)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            err = 0.0
            with torch.no_grad():
                for ids in batches(va, 32, rng):
                    X, lens = stack(ids)
                    s, valid, _, _ = window_scores(model, X, lens, n_frames)
                    err += float(((pooled(s, valid, terms[0] if terms[0] != "seg" else "max") - z[ids]) ** 2).sum())
            err /= len(va)
            if err < best:
                best, bad = err, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                for g in opt.param_groups:
                    g["lr"] *= 0.9
            print(f"fold {f} epoch {ep} validation {err:.3f} ({time.time() - t0:.0f} s)", flush=True)
            if bad >= PATIENCE:
                break
        model.load_state_dict(best_state)
        payload = {k: v for k, v in template.items() if k not in ("format", "kind")}
        payload["members"] = [{**template["members"][0], "state_dict": model_state(model)}]
        payload["target"], payload["info"] = target.to_dict(), {"fold": f, "loss": args.loss}
        save_payload(args.out / f"fold_{f:02d}.pt", "spectrogram", payload)
    for name in ("config.yaml", "run.json", "summary.json"):
        shutil.copy(args.template / name, args.out / name)
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
