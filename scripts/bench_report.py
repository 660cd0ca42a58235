"""How a catalogue-sized HTML ranking report behaves in a real browser (issue #26, item 4).

Fabricates a ranking of ``--songs`` songs with every column (hit-potential and HL-30 curves,
percentiles, five neighbours, fit; ``tests/test_report.py:fabricate_catalogue``, no model
run), writes its report, and measures: the time to write it, the HTML file's size (total and
per song), the side folder of log-mel PNGs, and the wall time of headless Chromium to open
the report and dump its DOM (the first page, page 50, a search with a sort over every song)
and to render a whole page in a tall window (every lazy image of the page in view), run
under ``nice``. Optionally saves a screenshot of one page.

    python scripts/bench_report.py --songs 10000 [--screenshot docs/img/report_catalogue.png]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hitrank.report import PAGE_ROWS, write_ranking_report  # noqa: E402

try:  # the fabricated catalogue of the report's tests: a clone of the repository has them
    from tests.test_report import fabricate_catalogue  # noqa: E402
except ImportError as exc:  # an installed package without its tests
    raise SystemExit(f"scripts/bench_report.py needs the repository's tests/ folder and the test extras "
                     f"(pip install -e '.[dev]'): {exc}") from None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
TIMEOUT = 600  # s, one browser run at most


def browser(args: list[str], url: str) -> tuple[float, str]:
    """Wall time (s) and stdout of one headless Chromium run under ``nice``."""
    t0 = time.perf_counter()
    res = subprocess.run(["nice", "-n", "5", CHROMIUM, *FLAGS, *args, url], capture_output=True, text=True,
                         timeout=TIMEOUT)
    if res.returncode != 0:
        raise SystemExit(f"chromium failed ({res.returncode}): {res.stderr[-1000:]}")
    return time.perf_counter() - t0, res.stdout


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = list(folder.iterdir()) if folder.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--songs", type=int, default=10_000)
    ap.add_argument("--n-mels", type=int, default=48, help="mel bands of the fabricated store")
    ap.add_argument("--seconds", type=float, default=15.0, help="segment length of the fabricated store, s")
    ap.add_argument("--screenshot", type=Path, help="save a 1300x900 screenshot of page 2 here")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    args = ap.parse_args()
    if CHROMIUM is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        t0 = time.perf_counter()
        ranking = fabricate_catalogue(work / "cat", args.songs, n_mels=args.n_mels, seconds=args.seconds)
        print(f"fabricated {args.songs} songs in {time.perf_counter() - t0:.1f} s "
              f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
        out = work / "report.html"
        t0 = time.perf_counter()
        write_ranking_report(ranking, [], out, "runs/ab", store_dir=ranking.attrs["store"])
        print(f"write_ranking_report: {time.perf_counter() - t0:.1f} s")
        size = out.stat().st_size
        n_png, png_bytes = folder_bytes(work / "report_files")
        print(f"HTML file: {size / 2**20:.1f} MiB, {size / args.songs:.0f} bytes per song")
        print(f"side folder report_files/: {n_png} PNGs, {png_bytes / 2**20:.1f} MiB "
              f"({png_bytes / max(n_png, 1) / 1024:.1f} KiB each)")
        pages = -(-args.songs // PAGE_ROWS)
        for what, frag in [("open, first page", ""), (f"open at page {min(50, pages)}", f"#page={min(50, pages)}"),
                           ("open, search 'title 1' sorted by fit, page 3", "#q=title%201&sort=fit&dir=desc&page=3")]:
            seconds, dom = browser(["--dump-dom"], out.as_uri() + frag)
            rows = dom.count('<tr data-rank="')
            print(f"chromium --dump-dom, {what}: {seconds:.1f} s ({rows} rows in the DOM)")
        shot = work / "tall.png"
        seconds, _ = browser([f"--screenshot={shot}", "--window-size=1300,12000"], out.as_uri() + "#page=2")
        print(f"chromium --screenshot of a whole page (1300x12000 window, its {PAGE_ROWS} log-mel images): "
              f"{seconds:.1f} s")
        if args.screenshot:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            browser([f"--screenshot={args.screenshot}", "--window-size=1300,900"], out.as_uri() + "#page=2")
            print(f"screenshot: {args.screenshot} ({args.screenshot.stat().st_size / 1024:.0f} KiB)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
