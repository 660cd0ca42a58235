#!/usr/bin/env python
"""Batch feature extraction (thin wrapper around ``hitrank extract``).

    python scripts/extract_features.py SOURCE --out STORE [--workers N]
"""

import sys

from hitrank.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
