"""hitrank's version (one place; the package, the CLI and run.json read it from here)."""

__version__ = "0.1.0"
