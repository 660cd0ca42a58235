"""The ``hitrank`` command (``python -m hitrank``): the CLI, imported inside :func:`run` so
that Ctrl-C while Python is still importing it stops with the CLI's one line (exit 130)
rather than a traceback."""

import signal
import sys


def run() -> int:
    """Import and run :func:`hitrank.cli.main`; the exit status."""
    try:
        from .cli import EXIT_INTERRUPTED, main
    except KeyboardInterrupt:  # the CLI's EXIT_INTERRUPTED is not imported yet: the shell's 128 + SIGINT
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    try:
        return main()
    except KeyboardInterrupt:  # between the CLI's own handlers (e.g. while its logging starts)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(run())
