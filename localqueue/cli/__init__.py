"""The ``localqueue`` command line (click). See docs/cli.md.

Public for plugins that add commands (``localqueue_cli_commands``):
:class:`CliState`, :func:`cli_state` and :func:`existing_store` give a
command the store the user chose with ``--store`` (or ``$LOCALQUEUE_STORE``);
:func:`build_cli` builds the whole command tree, for tests with click's
``CliRunner``.
"""

from localqueue.cli.app import USER_ERRORS, build_cli, main
from localqueue.cli.completion import complete_queue_names
from localqueue.cli.state import CliState, cli_state, existing_store

__all__ = [
    "USER_ERRORS",
    "CliState",
    "build_cli",
    "cli_state",
    "complete_queue_names",
    "existing_store",
    "main",
]
