"""The root ``localqueue`` command: global options, the store, and errors.

The CLI is built per call (``build_cli()``), so plugins that add commands
through ``localqueue_cli_commands`` are picked up without module reloads and
tests get a fresh command tree each time. Every failure a user can cause
ends as one line on stderr that says what to do, with exit code 1 (usage
errors: 2); ``--debug`` shows the traceback instead.

An installed plugin that fails to load does not take down ``--help``,
``--version`` or ``plugins`` (which lists it with its error): those are
built without it, after a one-line warning on stderr. Every other command
fails with the plugin's one-line error, as the library does: a queue must
not run without a store or policy plugin the user installed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from localqueue import __version__
from localqueue.cli.plugins_cmd import plugins_command
from localqueue.cli.queue_group import queue_group
from localqueue.cli.state import CliState
from localqueue.cli.store_commands import store_group
from localqueue.errors import LocalQueueError, PluginError
from localqueue.plugins import (
    DISABLE_ENV,
    get_plugin_manager,
    plugin_failures,
    record_failure,
)

# Errors a user can act on: reported in one line, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    LocalQueueError,
    ValueError,
    OSError,
    OverflowError,
)


class LocalQueueGroup(click.Group):
    """A group that turns user errors into one line and exit code 1, and
    refuses a second command of the same name (a plugin may add commands,
    never silently replace one)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Like click's, except that a usage error is one line too:
        ``Error: <what> (see 'localqueue queue add --help')``, exit code 2."""
        run_click: Any = super().main  # click's overloads do not cover *args
        if not kwargs.pop("standalone_mode", True):
            return run_click(*args, standalone_mode=False, **kwargs)
        try:
            code = run_click(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            # A group run without a command shows its help, as any click
            # program does; it is not an error to report in one line.
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "localqueue"
            message = exc.format_message()
            # The pointer to --help goes on its own line after a long message.
            joiner = "\n" if "\n" in message.strip() else " "
            click.echo(f"Error: {message.rstrip()}{joiner}(see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name in self.commands:
            raise PluginError(
                f"a plugin tried to add the command {name!r}, which already exists; "
                "uninstall it or set LOCALQUEUE_DISABLE_PLUGINS"
            )
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise  # a closed pipe (`| head`): click exits quietly
        except USER_ERRORS as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            message = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
                message = f"{message}: {exc.filename}"
            raise click.ClickException(message.splitlines()[0]) from exc


def build_cli(*, allow_plugin_failures: bool = False) -> click.Group:
    """A fresh command tree: built-in commands plus those of plugins.

    Raises ``PluginError`` if an installed plugin could not be loaded,
    unless ``allow_plugin_failures`` (then the tree lacks its commands).
    """

    @click.group(
        cls=LocalQueueGroup,
        context_settings={"help_option_names": ["-h", "--help"]},
        epilog='\b\nExample:\n  $ localqueue queue add emails --value \'{"to": "ann@example.com"}\''
        "\n  $ localqueue queue exec emails -- python send_email.py"
        "\n\nDocs: docs/cli.md. Shell completion: docs/cli.md#shell-completion.",
    )
    @click.option(
        "--store",
        "store_url",
        metavar="URL",
        help="Store URL (default: $LOCALQUEUE_STORE, else the SQLite file in the XDG data home).",
    )
    @click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
    @click.version_option(__version__, "--version", prog_name="localqueue")
    @click.pass_context
    def cli(ctx: click.Context, store_url: str | None, debug: bool) -> None:
        """Durable, at-least-once job queues: add work, run workers, watch and recover."""
        state = ctx.ensure_object(CliState)
        state.store_url = store_url
        state.debug = debug
        ctx.call_on_close(state.close)

    cli.add_command(queue_group())
    cli.add_command(store_group())
    cli.add_command(plugins_command)
    _add_plugin_commands(cli, allow_plugin_failures)
    return cli


def _add_plugin_commands(cli: click.Group, allow_failures: bool) -> None:
    """The plugins' ``localqueue_cli_commands``, as pluggy calls them (its
    order, ``tryfirst``/``trylast``, wrappers). Should one raise (a
    dependency its command module imports is missing, say), the call is
    made again one implementation at a time, in the same order, so the one
    that raises is named and recorded as a broken plugin and the others
    still add their commands: a broken plugin must not take down ``--help``,
    ``plugins`` and every other command with a traceback."""
    pm = get_plugin_manager(allow_failures=allow_failures)
    hook = pm.hook.localqueue_cli_commands
    built_in = dict(cli.commands)
    try:
        hook(cli=cli)
        return
    except Exception as first:
        failed = first
    # Start again from the built-in commands: the plugins called before the
    # failure have added theirs, and a command may be added only once.
    cli.commands = dict(built_in)
    recorded = False
    # pluggy calls the last registered (and tryfirst) implementations first.
    # Wrappers only make sense around pluggy's own call: left out here.
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        try:
            impl.function(cli=cli)
        except Exception as exc:
            name = impl.plugin_name
            record_failure(
                name,
                f"plugin {name!r} failed to add its commands: {type(exc).__name__}: {exc}; "
                f"fix or uninstall it, or set {DISABLE_ENV}={name} to skip it",
                exc,
            )
            recorded = True
    if not recorded:  # a wrapper raised: nothing here can say whose it was
        raise failed
    get_plugin_manager(allow_failures=allow_failures)  # raises now, unless tolerated


# The variable click's shell completion sets (prog name "localqueue").
COMPLETE_ENV = "_LOCALQUEUE_COMPLETE"

# Root options that take a value, so the value is not taken for a command.
_ROOT_OPTIONS_WITH_VALUE = ("--store",)


def _survives_broken_plugins(args: Sequence[str]) -> str | None:
    """Whether this command line only asks for help, the version or the
    plugin list, which must work with a broken plugin installed: ``"help"``
    (help or the version), ``"plugins"``, or None (any other). A misread
    is harmless: opening a store or running a worker still fails on the
    broken plugin, since those ask for the plugin manager without
    ``allow_failures``."""
    command = None
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            break
        if arg in ("-h", "--help", "--version"):
            return "help"
        if command is None:
            if arg in _ROOT_OPTIONS_WITH_VALUE:
                index += 1
            elif not arg.startswith("-"):
                command = arg
        index += 1
    if command is None:
        return "help"  # a group run without a command shows its help
    return "plugins" if command == "plugins" else None


def main(argv: Sequence[str] | None = None) -> None:
    """The command line (``localqueue.cli.main`` answers ``--version`` first)."""
    # Warnings from workers and stores (a lost lease, a stop signal) reach
    # the operator on stderr, one line each.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = list(argv) if argv is not None else sys.argv[1:]
    # Tab completion (click's _LOCALQUEUE_COMPLETE): whatever happens, nothing
    # may be printed into the user's shell but the completions themselves.
    completing = bool(os.environ.get(COMPLETE_ENV))
    tolerant = "help" if completing else _survives_broken_plugins(args)
    try:
        cli = build_cli(allow_plugin_failures=tolerant is not None)
        failures = plugin_failures() if tolerant is not None and not completing else []
    except USER_ERRORS as exc:  # e.g. a plugin that fails to load
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    # `localqueue plugins` lists the failures itself; help and the version
    # work without the broken plugin, after saying so once.
    for failure in failures if tolerant == "help" else []:
        click.echo(f"Warning: {failure['error']}", err=True)
    cli.main(args=args, prog_name="localqueue")
