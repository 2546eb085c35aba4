"""The ``localqueue`` command line (click). See docs/cli.md.

Public for plugins that add commands (``localqueue_cli_commands``):
:class:`CliState`, :func:`cli_state` and :func:`existing_store` give a
command the store the user chose with ``--store`` (or ``$LOCALQUEUE_STORE``);
:func:`complete_queue_names` completes a queue name on Tab (``shell_complete=``);
:data:`DURATION` reads a duration as every command does (``30``, ``500ms``,
``5m``, ``2h``, ``1d``; ``DURATION.convert(text, None, None)`` outside click);
:func:`build_cli` builds the whole command tree, for tests with click's
``CliRunner``.

The names are imported on first use: ``localqueue --version`` answers from
:func:`main` before click and the command tree are imported at all.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localqueue.cli.app import USER_ERRORS, build_cli
    from localqueue.cli.completion import complete_queue_names
    from localqueue.cli.output import DURATION
    from localqueue.cli.state import CliState, cli_state, existing_store

_LAZY = {
    "DURATION": "localqueue.cli.output",
    "USER_ERRORS": "localqueue.cli.app",
    "build_cli": "localqueue.cli.app",
    "complete_queue_names": "localqueue.cli.completion",
    "CliState": "localqueue.cli.state",
    "cli_state": "localqueue.cli.state",
    "existing_store": "localqueue.cli.state",
}


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``localqueue`` and ``python -m localqueue``)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if args == ["--version"]:
        # Asked often (scripts, bug reports): answered without importing the
        # command tree or loading a plugin.
        from localqueue import __version__

        print(f"localqueue, version {__version__}")
        sys.exit(0)
    from localqueue.cli.app import main as run

    run(args)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DURATION",
    "USER_ERRORS",
    "CliState",
    "build_cli",
    "cli_state",
    "complete_queue_names",
    "existing_store",
    "main",
]
