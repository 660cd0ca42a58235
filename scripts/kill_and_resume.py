#!/usr/bin/env python
"""Kill a catalogue-sized `hitrank rank` mid-way, run it again, and check that it resumes.

Starts `hitrank rank FOLDER --model RUN --cache CACHE --out OUT` in a child process, kills it
(SIGKILL: no clean-up) once ``--kill-at`` songs are extracted, then runs the same command again
and reports how many songs the second run found already extracted, both wall times and the
rows of the final CSV.

    python scripts/kill_and_resume.py FOLDER RUN --work /tmp/resume --kill-at 3000
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from hitrank.store import FeatureStore


def extracted(cache: Path) -> int:
    """Songs of the store extracted so far (0 while it is being created)."""
    try:
        return int((FeatureStore.open(cache).manifest.status == "ok").sum())
    except Exception:  # the store is not there yet, or is being created
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--kill-at", type=int, default=3000, help="songs extracted before the kill")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    cache, out = args.work / "cache", args.work / "ranking.csv"
    cmd = [sys.executable, "-m", "hitrank", "rank", str(args.folder), "--model", str(args.run), "--cache", str(cache),
           "--out", str(out), "--nearest", "0"]
    t0 = time.time()
    proc = subprocess.Popen([*cmd, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and extracted(cache) < args.kill_at:
        time.sleep(2)
    if proc.poll() is not None:
        raise SystemExit(f"the rank ended (exit {proc.returncode}) before {args.kill_at} songs were extracted")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = time.time() - t0
    before = extracted(cache)
    t1 = time.time()
    res = subprocess.run([*cmd, "-v"], capture_output=True, text=True)
    second = time.time() - t1
    found = re.search(r"(\d+) of (\d+) songs already extracted; (\d+) to go", res.stderr)
    rows = len(pd.read_csv(out)) if out.exists() else 0
    print(f"killed after {first:.0f} s with {before} songs extracted; the second run (exit {res.returncode}) "
          f"took {second:.0f} s and said: {found.group(0) if found else 'no resume line'}; "
          f"the CSV has {rows} rows")


if __name__ == "__main__":
    main()
