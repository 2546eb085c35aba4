"""``localqueue harness run``: the harness on the command line, added to the
localqueue CLI through the ``localqueue_cli_commands`` hook (the core CLI
never imports the harness).

Every ``localqueue`` command loads this module, so it imports only click
and the core at import time; hypothesis and the runner are imported when
``harness run`` runs.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from localqueue.cli import CliState
from localqueue.hookspecs import hookimpl
from localqueue.store import resolve_store_url

if TYPE_CHECKING:
    from localqueue_harness.runner import Report

# The multi-process run's time limit unless --deadline says otherwise (the
# same as localqueue_harness.runner.DEFAULT_DEADLINE, which is not imported
# here: this module must stay light).
DEFAULT_DEADLINE = 600
# The longest --deadline, a week (runner.MAX_DEADLINE, not imported either):
# no one waits on a check longer, and far beyond it the run's end no longer
# fits a timestamp (time_t).
MAX_DEADLINE = 7 * 86400


class DeadlineSeconds(click.FloatRange):
    """Seconds from 1 to ``MAX_DEADLINE``. ``nan`` compares false with
    both bounds, so FloatRange alone would let it through (and the run would
    fail at once, "finished in time")."""

    def __init__(self) -> None:
        super().__init__(min=1, max=MAX_DEADLINE)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


def _stateful(url: str, examples: int, seed: int) -> Report:
    from localqueue_harness.stateful_run import run_stateful

    return run_stateful(url, examples, seed)


@click.group(
    "harness",
    epilog="\b\nExample:\n  $ localqueue harness run --store sqlite:///tmp/check.db",
)
def harness_group() -> None:
    """Check a store against the delivery contract (localqueue-harness)."""


@harness_group.command(
    "run",
    epilog="\b\nExample:\n  $ localqueue harness run --store jsonfile:///tmp/contract.json"
    " --mode crash-recovery --kills 5",
)
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    default=None,
    help="Store to check (default: the global --store, then $LOCALQUEUE_STORE).",
)
@click.option(
    "--mode",
    type=click.Choice(["stateful", "throughput", "crash-recovery"]),
    default="stateful",
    show_default=True,
)
@click.option("--producers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--consumers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--messages", type=click.IntRange(min=1), default=4000, show_default=True)
@click.option(
    "--kills",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="SIGKILLs in crash-recovery mode.",
)
@click.option(
    "--examples",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="State-machine examples in stateful mode.",
)
@click.option(
    "--prefetch",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Throughput and crash-recovery: consumers lease this many at once and ack "
    "them with the next batch's claim, as a batch worker does.",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Reproduce an earlier run.")
@click.option(
    "--deadline",
    type=DeadlineSeconds(),
    default=DEFAULT_DEADLINE,
    show_default=True,
    metavar="SECONDS",
    help="Time limit of a throughput or crash-recovery run (at most a week); past it, "
    "every process of the run is killed and the run fails.",
)
@click.option(
    "--restart-cmd",
    metavar="CMD",
    default=None,
    help="Shell command run once mid-run (throughput, crash-recovery), e.g. one that "
    "restarts the store's server; it must exit 0 and the run must still lose nothing.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the JSON report here (default: ./localqueue-harness-MODE-SEED.json).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")  # fmt: skip
def run_command(
    store_url: str | None,
    mode: str,
    producers: int,
    consumers: int,
    messages: int,
    kills: int,
    examples: int,
    prefetch: int,
    seed: int | None,
    deadline: float,
    restart_cmd: str | None,
    report_path: str | None,
    as_json: bool,
) -> None:
    """Run the harness on the store given by --store / LOCALQUEUE_STORE.

    Exits 1 when any invariant fails (or the report cannot be written: the
    verdict is printed first), 130 on Ctrl-C, 143 on SIGTERM; no process of
    the run is left running.
    """
    ctx = click.get_current_context()
    if restart_cmd is not None and mode == "stateful":
        raise click.UsageError("--restart-cmd needs --mode throughput or crash-recovery")
    # The state machine runs in this process, where nothing could stop it
    # at a deadline: a limit it would ignore is refused rather than kept quiet.
    if mode == "stateful" and ctx.get_parameter_source("deadline") is ParameterSource.COMMANDLINE:
        raise click.UsageError("--deadline needs --mode throughput or crash-recovery")
    state = ctx.find_object(CliState)
    if store_url is not None:
        url = resolve_store_url(store_url)
    else:
        url = (state or CliState()).resolved_url
    seed = seed if seed is not None else random.randrange(2**31)
    # Every run leaves its report behind, named after its mode and seed;
    # a path it cannot be written to is refused before a run of minutes.
    path = Path(report_path or f"localqueue-harness-{mode}-{seed}.json")
    _check_report_path(path, given=report_path is not None)
    if mode == "stateful":
        report = _stateful(url, examples, seed)
    else:
        from localqueue_harness.process_group import Interrupted
        from localqueue_harness.runner import run

        with tempfile.TemporaryDirectory(prefix="localqueue-harness-") as tmp:
            try:
                report = run(
                    url,
                    mode=mode,
                    producers=producers,
                    consumers=consumers,
                    messages=messages,
                    kills=kills if mode == "crash-recovery" else 0,
                    seed=seed,
                    workdir=Path(tmp),
                    deadline=deadline,
                    restart_cmd=restart_cmd,
                    prefetch=prefetch,
                    progress=lambda line: click.echo(line, err=True),
                )
            except (Interrupted, KeyboardInterrupt) as exc:
                code = exc.exit_code if isinstance(exc, Interrupted) else 130
                click.echo(
                    f"harness run {exc or 'interrupted by SIGINT'}: every process of the run "
                    "was stopped; no report was written",
                    err=True,
                )
                sys.exit(code)
    document = report.as_dict()
    # The verdict first: a report that cannot be written after all (its
    # directory removed meanwhile, a full disk) must not hide it.
    click.echo(json.dumps(document) if as_json else report.summary())
    try:
        path.write_text(json.dumps(document, indent=2))
    except OSError as exc:
        raise click.ClickException(
            f"could not write the report to {path}: {exc.strerror or exc}"
        ) from exc
    click.echo(f"report: {path}", err=True)
    if not report.passed:
        sys.exit(1)


def _check_report_path(path: Path, *, given: bool) -> None:
    """Refuse (a usage error) a report path whose directory is missing or
    not writable, or a file there that cannot be written."""
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        problem = f"{directory} is not a directory"
    elif not directory.is_dir():
        problem = f"the directory {directory} does not exist"
    elif not os.access(directory, os.W_OK | os.X_OK):
        problem = f"the directory {directory} is not writable"
    elif path.exists() and not os.access(path, os.W_OK):
        problem = "the file is not writable"
    else:
        return
    message = f"cannot write the report to {path}: {problem}"
    if given:
        raise click.BadParameter(message, param_hint="'--report'")
    raise click.UsageError(f"{message}; give --report FILE")


@hookimpl
def localqueue_cli_commands(cli: click.Group) -> None:
    cli.add_command(harness_group)
