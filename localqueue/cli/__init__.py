"""The ``localqueue`` command line (click). See docs/cli.md."""

from localqueue.cli.app import build_cli, main

__all__ = ["build_cli", "main"]
