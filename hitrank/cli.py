"""Command line: ``hitrank COMMAND ...`` (argument parsing and printing only; no logic).

Exit codes: 0 everything worked; 1 the command ran but some inputs failed (listed at the end);
2 bad usage, config or input that stopped the command before any work; 130 interrupted
(Ctrl-C; re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .errors import HitrankError

log = logging.getLogger("hitrank")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _sub(subs, name, help_, examples, parents):
    return subs.add_parser(
        name, help=help_, description=help_, parents=parents,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="hitrank",
        description="Rank songs by how likely they are to be hits, from their audio.",
        epilog=__doc__.split("\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hitrank {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _sub(subs, "synth", "write a synthetic pop corpus (audio, labels.csv, truth.csv)",
             ["hitrank synth corpus/ --songs 500", "hitrank synth c/ --songs 20 --format mp3 --stereo"],
             [common])
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--songs", type=int, default=100, help="number of songs (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", default="wav", choices=["wav", "flac", "mp3", "ogg"])
    p.add_argument("--sr", type=int, default=44100, help="sample rate in Hz (default 44100)")
    p.add_argument("--stereo", action="store_true", help="write stereo files")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    p = _sub(subs, "extract", "extract Mid-30 log-mel features of a folder or labels CSV into a store",
             ["hitrank extract corpus/ --out store/", "hitrank extract corpus/labels.csv --out store/ --workers 2"],
             [common])
    p.add_argument("source", type=Path, help="folder of audio files (recursive) or labels CSV")
    p.add_argument("--out", type=Path, required=True, help="feature store folder")
    p.add_argument("--segment", default="mid30", choices=["mid30"], help="which 30 s (default mid30)")
    p.add_argument("--window", default="hamming", choices=["hamming", "hann"],
                   help="STFT window (paper: hamming; the authors' code: hann)")
    p.add_argument("--log", default="db", choices=["db", "log1p", "none"], help="log scaling (default db)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--allow-outside", action="store_true",
                   help="let a labels CSV point at files outside its folder")
    return parser


def _setup_logging(args) -> None:
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def cmd_synth(args) -> int:
    from .synth import synthesize

    truth = synthesize(args.out, args.songs, seed=args.seed, fmt=args.format, sr=args.sr,
                       stereo=args.stereo, workers=args.workers, progress=_progress(args))
    print(f"wrote {len(truth)} songs to {args.out}/audio, labels in {args.out / 'labels.csv'}, "
          f"generative facts in {args.out / 'truth.csv'}")
    return EXIT_OK


def _print_failures(failures, what="songs") -> None:
    if failures:
        print(f"{len(failures)} {what} failed:", file=sys.stderr)
        for _sid, path, reason in failures:
            print(f"  {path!r}: {reason}", file=sys.stderr)


def cmd_extract(args) -> int:
    from .extract import extract
    from .features import FeatureParams

    params = FeatureParams(window=args.window, log=args.log, segment=args.segment)
    rep = extract(args.source, args.out, params, workers=args.workers, progress=_progress(args),
                  allow_outside=args.allow_outside)
    _print_failures(rep.failures)
    print(f"{rep.ok} extracted, {rep.skipped} already done, {rep.failed} failed "
          f"-> {rep.store} (manifest.csv, mel_{params.segment}.npy)")
    return EXIT_PARTIAL if rep.failed else EXIT_OK


COMMANDS = {"synth": cmd_synth, "extract": cmd_extract}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(args)
    try:
        return COMMANDS[args.command](args)
    except HitrankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; work done so far is saved; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def _json_dump(obj) -> str:
    return json.dumps(obj, indent=None, allow_nan=False)


if __name__ == "__main__":
    sys.exit(main())
