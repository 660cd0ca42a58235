"""Wall, user and kernel seconds of hitrank commands with and without its allocator setting.

hitrank's CLI and worker processes let glibc keep large freed blocks for reuse
(hitrank.runtime.keep_freed_memory); ``HITRANK_MALLOC=system`` leaves glibc's defaults. Each
command runs in a fresh process once per setting, the two alternating (``--repeats`` rounds,
the order swapped every round, after one untimed run that warms the file caches), so
both see the same machine; the script prints the seconds
of each and their ratio (system / kept).

    python scripts/bench_allocator.py ../shared/data/emotify_dev/audio --files 12

Commands timed: ``hitrank extract --embedding musicnn`` (song scope) and ``hitrank extract``
(the Mid-30 log-mel only) into a fresh store, ``hitrank tags`` (musicnn's 50 tags), and
``hitrank rank --model yu2018-kkbox`` when that model is imported (``hitrank pretrained import
../shared/reference/hsp_cnn``), both on the first ``--files`` audio files of FOLDER, one
worker.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hitrank.corpus import list_folder
from hitrank.runtime import MALLOC_VAR, models_dir


def timed(cmd: list[str], env: dict) -> tuple[float, float, float]:
    """(wall, user, kernel) seconds of one run of ``cmd`` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--files", type=int, default=12, help="audio files per command")
    ap.add_argument("--repeats", type=int, default=2, help="rounds (each runs both settings)")
    args = ap.parse_args()
    songs = list_folder(args.folder)[: args.files]
    if not songs:
        raise SystemExit(f"{args.folder}: no audio files")
    hitrank = [sys.executable, "-m", "hitrank"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i, s in enumerate(songs):
            (src / f"{i:04d}{Path(s.path).suffix}").symlink_to(Path(s.path).resolve())
        jobs = {"extract --embedding musicnn": lambda out: [*hitrank, "extract", str(src), "--out", out,
                                                            "--embedding", "musicnn", "--workers", "1"],
                "extract (Mid-30 log-mel)": lambda out: [*hitrank, "extract", str(src), "--out", out,
                                                         "--workers", "1"],
                "tags (musicnn)": lambda out: [*hitrank, "tags", *sorted(map(str, src.iterdir())), "--json"]}
        if (models_dir() / "yu2018-kkbox").is_dir():
            jobs["rank --model yu2018-kkbox"] = lambda out: [*hitrank, "rank", str(src), "--model", "yu2018-kkbox",
                                                             "--out", out + ".csv", "--workers", "1"]
        else:
            print("rank --model yu2018-kkbox skipped: not imported (hitrank pretrained import ../shared/reference/hsp_cnn)")
        settings = {"kept": {k: v for k, v in os.environ.items() if k != MALLOC_VAR},
                    "system": {**os.environ, MALLOC_VAR: "system"}}
        runs = itertools.count()  # a fresh output for every run
        print(f"{len(songs)} files, one worker; seconds summed over {args.repeats} round(s)")
        print(f"{'command':<30} {'setting':<7} {'wall':>7} {'user':>7} {'kernel':>7}")
        for name, make in jobs.items():
            total = {s: [0.0, 0.0, 0.0] for s in settings}
            timed(make(str(Path(tmp) / f"out{next(runs)}")), settings["kept"])  # caches, imports: untimed
            for r in range(args.repeats):
                for s in (("kept", "system") if r % 2 == 0 else ("system", "kept")):
                    res = timed(make(str(Path(tmp) / f"out{next(runs)}")), settings[s])
                    total[s] = [a + b for a, b in zip(total[s], res, strict=True)]
            for s, (wall, user, kernel) in total.items():
                print(f"{name:<30} {s:<7} {wall:7.1f} {user:7.1f} {kernel:7.1f}")
            print(f"{name:<30} wall ratio system / kept: {total['system'][0] / total['kept'][0]:.2f}x")


if __name__ == "__main__":
    main()
