"""Seconds per file of `hitrank extract --embedding NAME --embedding-scope SCOPE`, side by side.

Each network and scope extracts the same files into a fresh store in one process (one worker,
one thread), so decoding, resampling, the network's front end and the store writes are all
counted; the first file of each run (weights loading) is timed apart.

    python scripts/bench_embeddings.py ../shared/data/emotify_dev/audio --files 12
    python scripts/bench_embeddings.py FOLDER --nets musicnn,jynet,ret30 --scopes song,segment

jynet and ret30 need `hitrank pretrained import ../shared/reference/hsp_cnn` first (into
$HITRANK_CACHE); networks whose weights are missing are skipped with the reason.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from hitrank import embeddings
from hitrank.corpus import list_folder
from hitrank.errors import HitrankError
from hitrank.extract import extract
from hitrank.segments import params_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--files", type=int, default=12, help="files timed per run (after the first)")
    ap.add_argument("--nets", default=",".join(embeddings.EMBEDDINGS))
    ap.add_argument("--scopes", default="song,segment")
    args = ap.parse_args()
    torch.set_num_threads(1)
    songs = list_folder(args.folder)[: args.files + 1]
    if len(songs) < 2:
        raise SystemExit(f"{args.folder}: need at least 2 audio files")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i, s in enumerate(songs):
            (src / f"{i:04d}{Path(s.path).suffix}").symlink_to(s.path)
        first = sorted(src.iterdir())[:1]
        rest = Path(tmp) / "rest"
        rest.mkdir()
        for p in sorted(src.iterdir())[1:]:
            (rest / p.name).symlink_to(p.resolve())
        one = Path(tmp) / "one"
        one.mkdir()
        (one / first[0].name).symlink_to(first[0].resolve())
        print(f"{len(songs) - 1} files timed (+1 warm-up), one worker, one thread")
        print(f"{'network':<12} {'scope':<8} {'s/file':>8} {'first file s':>13}")
        for net in args.nets.split(","):
            try:
                embeddings.get(net).check()
            except HitrankError as exc:
                print(f"{net:<12} skipped: {exc}")
                continue
            for scope in args.scopes.split(","):
                params = embeddings.with_embedding(params_for("mid30"), net, scope)
                store = Path(tmp) / f"st_{net}_{scope}"
                t0 = time.perf_counter()
                extract(one, store, params, progress=False)
                t1 = time.perf_counter()
                rep = extract(rest, store, params, progress=False)
                t2 = time.perf_counter()
                shutil.rmtree(store)
                print(f"{net:<12} {scope:<8} {(t2 - t1) / max(rep.new, 1):>8.2f} {t1 - t0:>13.2f}"
                      + (f"  ({rep.failed} failed)" if rep.failed else ""))


if __name__ == "__main__":
    main()
