"""Training the attention highlighter on song-level targets, and judging highlights.

``hitrank highlighter train --config configs/highlighter/hit_score.yaml --labels L --out RUN``
decodes every labelled song once, keeps its whole-song log-mel in memory (about 0.5 MB per
3-minute song in float16), and trains :class:`.attention.AttentionHighlighter` to predict the
log-standardised hit score; the epoch with the lowest validation MSE is kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..corpus import check_training_labels, read_labels
from ..engines import get_engine
from ..errors import ConfigError, HitrankError, LabelsError
from ..features import FeatureParams, log_mel
from ..fileio import atomic_write_text, strict_json
from ..loop import EpochLoop, run_loop
from ..payload import save_payload
from ..runtime import pick_device, seed_everything
from ..targets import Target
from ..yamlconfig import build_config, check_seeds, load_mapping, parse_override, resolve_config
from .attention import CHECKPOINT_NAME, AttentionHighlighter, HighlighterTrainConfig, batch_chunks

log = logging.getLogger(__name__)


def load_highlighter_config(path: str | os.PathLike | None, overrides=()) -> HighlighterTrainConfig:
    data = {}
    if path:
        data = load_mapping(resolve_config(path))
    for item in overrides:
        keys, value = parse_override(item)
        if len(keys) != 1:  # the highlighter config is flat: a dotted key is a mistake
            raise ConfigError(f"--set {item!r}: the highlighter config has no sections; "
                              f"use one of {list(HighlighterTrainConfig.__dataclass_fields__)}")
        data[keys[0]] = value
    cfg = build_config(HighlighterTrainConfig, data)
    if cfg.target != "hit_score":
        raise ConfigError(f"target={cfg.target!r}; available: ['hit_score'] (the tag-vector target "
                          "needs the tag branch, issue #6)")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or not 0 < cfg.val_fraction < 1:
        raise ConfigError("epochs, batch_size >= 1, lr > 0 and 0 < val_fraction < 1 are required")
    check_seeds(seed=cfg.seed)
    return cfg


def song_mel(path: str, params: FeatureParams) -> np.ndarray:
    """Whole-song log-mel (n_mels, T) float16; AudioLoadError for a song that holds no sound
    (nothing to learn where its highlight is)."""
    torch.set_num_threads(1)
    y, duration = audio.load(path, params.sr)
    if audio.is_silent(y, params.sr, duration):
        raise audio.AudioLoadError(path, "audio is " + audio.silent_message(y, params.sr, duration)
                                   + ": nothing to learn a highlight from")
    return log_mel(y, params).numpy().astype(np.float16)


def _mel_job(args):
    path, params = args
    try:
        return song_mel(path, params), ""
    except audio.AudioLoadError as exc:
        return None, exc.reason


def train_highlighter(labels: str | os.PathLike, out: str | os.PathLike, cfg: HighlighterTrainConfig,
                      workers: int = 1, progress: bool = True) -> dict:
    """Train an attention highlighter on a labels CSV; writes ``OUT/highlighter.pt``.

    The highlighter learns the log of the hit scores (play counts, shares): scores <= 0 are
    refused before any audio is decoded, naming the songs. Rows the labels reader refuses and
    scores that are missing or not numbers are named in warnings and left out
    (``left_out``); files that cannot be decoded or hold no sound are left out too
    (``failures``: (song_id, path, reason)).
    """
    from tqdm import tqdm

    check_training_labels(labels)
    refs, rejected, problems = read_labels(labels)
    for line in [r.reason for r in rejected] + problems:
        log.warning("%s", line)
    refs = [r for r in refs if np.isfinite(r.hit_score)]
    low = [f"{r.song_id} ({r.hit_score:g})" for r in refs if r.hit_score <= 0]
    if low:
        raise LabelsError(f"{str(labels)!r}: the highlighter learns the log of the hit scores (play counts, "
                          f"shares), which needs scores > 0; {len(low)} song(s) have other scores: "
                          f"{', '.join(low[:5])}{' ...' if len(low) > 5 else ''}; correct or remove those rows")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(refs))
    if cfg.max_songs:
        order = order[: cfg.max_songs]
    refs = [refs[i] for i in order]
    params = FeatureParams()
    jobs = [(r.path, params) for r in refs]
    with get_engine("local", workers) as pool:
        results = list(tqdm(pool(_mel_job, jobs), total=len(jobs), desc="decode", unit="song",
                            disable=not progress))
    mels, scores, failed, ids, paths = [], [], [], [], []
    for r, (mel, reason) in zip(refs, results, strict=True):
        if mel is None:
            failed.append((r.song_id, r.path, reason))
        else:
            mels.append(torch.from_numpy(mel))
            scores.append(r.hit_score)
            ids.append(r.song_id)
            paths.append(str(Path(r.path).resolve()))
    if len(mels) < 10:
        gone = (f" ({len(rejected) + len(problems)} row(s) refused or without a usable score, {len(failed)} "
                "file(s) that could not be used; see the warnings above)" if rejected or problems or failed else "")
        raise HitrankError(f"{str(labels)!r}: only {len(mels)} usable labelled songs{gone}; the highlighter needs "
                           "at least 10")
    scores = np.array(scores)
    n_val = max(2, int(round(cfg.val_fraction * len(mels))))
    tr, va = np.arange(n_val, len(mels)), np.arange(n_val)
    target = Target.fit("log", scores[tr])
    z = torch.as_tensor(target.transform(scores), dtype=torch.float32)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model = AttentionHighlighter().to(device)
    allm = torch.cat([mels[i].float() for i in tr], dim=1)
    model.set_input_stats(allm.mean(dim=1).to(device), allm.std(dim=1).to(device))
    del allm
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def run(idx, train: bool):
        model.train(train)
        total = 0.0
        for i in range(0, len(idx), cfg.batch_size):
            b = idx[i: i + cfg.batch_size]
            x, mask = batch_chunks([mels[j] for j in b])
            with torch.set_grad_enabled(train):
                pred, _ = model(x.to(device), mask.to(device))
                loss = torch.mean((pred[:, 0] - z[b].to(device)) ** 2)
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
            total += loss.item() * len(b)
        return total / len(idx)

    def validate(epoch):
        val_loss = run(va, False)
        return val_loss, {"val_loss": val_loss}, None

    t0 = time.time()
    loop = EpochLoop(model, opt, epochs=cfg.epochs, mode="min", rng=rng)
    res = run_loop(loop, lambda epoch: {"train_loss": run(rng.permutation(tr), True)}, validate,
                   progress=lambda line: log.info("highlighter %s", line))
    # the songs whose hit scores supervised the highlighter: `cv` refuses to evaluate on them
    info = {"best_epoch": res.best_epoch, "val_loss": res.best_value, "n_train": len(tr),
            "n_val": len(va), "songs": sorted(ids), "paths": sorted(paths),
            "labels": str(Path(labels).absolute()),
            "labels_sha1": hashlib.sha1(Path(labels).read_bytes()).hexdigest()}
    save_payload(out / CHECKPOINT_NAME, "highlighter", {
        "kwargs": {}, "feature_params": params.to_dict(), "target": target.to_dict(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "info": info})
    summary = {**{k: v for k, v in info.items() if k != "songs"}, "seconds": round(time.time() - t0, 1),
               "failed": len(failed), "failures": [list(f) for f in failed],
               "left_out": [[r.song_id, r.reason] for r in rejected] + [["", p] for p in problems], "curves": [{k: c[k] for k in ("epoch", "train_loss", "val_loss")}
                                                 for c in res.curves]}
    atomic_write_text(out / "summary.json", strict_json(summary, indent=2))
    return summary


def chorus_hit(start: float, chorus_times: list, seconds: float = 30.0) -> bool:
    """Whether the window [start, start + seconds) covers at least half of some true chorus."""
    return any(min(e, start + seconds) - max(s, start) >= 0.5 * (e - s) for s, e in chorus_times)
