"""``localqueue queue exec`` and ``process``: run a worker from the command line."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from localqueue.cli.common import open_queue
from localqueue.cli.completion import queue_argument
from localqueue.cli.exec_handler import RunningCommands, make_exec_handler
from localqueue.cli.output import (
    DURATION,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    Duration,
    emit_json,
    example,
    json_option,
)
from localqueue.observability import event_log
from localqueue.spec import (
    DEFAULT_HEARTBEAT_FRACTION,
    MAX_PREFETCH,
    MIN_HEARTBEAT_INTERVAL,
    Backoff,
)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_BACKOFF_MAX = 300.0


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# The worker extends a lease every third of it, and no more often than
# MIN_HEARTBEAT_INTERVAL: a shorter lease is refused as a usage error.
LEASE_TIMEOUT = Duration(minimum=round(MIN_HEARTBEAT_INTERVAL / DEFAULT_HEARTBEAT_FRACTION, 6))


# Each handler thread holds a store connection (3 files for SQLite) and an
# exec command's pipes: far beyond this the process runs out of file
# descriptors, and fails with a misleading store error instead of at once.
MAX_CONCURRENCY = 1024


def worker_options(func: F) -> F:
    """The worker policy flags shared by exec and process."""
    options = [
        click.option("--max-tries", type=POSITIVE_INT, default=4, show_default=True,
                     help="Deliveries per message before it is exhausted."),
        click.option("--release-delay", type=DURATION, default=0.0,
                     help="Wait this long before a failed message is tried again."),
        click.option("--backoff", type=DURATION, default=None,
                     help="Exponential backoff: first retry delay, doubling each retry."),
        click.option("--backoff-max", type=DURATION, default=DEFAULT_BACKOFF_MAX, show_default=True,
                     help="Cap of the backoff delay."),
        click.option("--min-interval", type=DURATION, default=0.0,
                     help="At least this long between job starts."),
        click.option("--breaker-threshold", type=POSITIVE_INT, default=None,
                     help="Pause after this many consecutive failures."),
        click.option("--breaker-cooldown", type=DURATION, default=None,
                     help="How long the breaker pauses fetching."),
        click.option("--dead-letter-on-failure/--no-dead-letter-on-failure", default=True,
                     show_default=True,
                     help="Dead-letter exhausted messages, or keep retrying them slowly."),
        click.option("--lease-timeout", type=LEASE_TIMEOUT, default=30.0, show_default=True,
                     help="Seconds a message stays leased (extended while the job runs)."),
        click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), default=1,
                     show_default=True, help="Handler threads in this worker."),
        click.option("--prefetch", type=click.IntRange(1, MAX_PREFETCH), default=1,
                     show_default=True,
                     help="Messages leased at once, acked together with the next batch's claim."),
        click.option("--max-jobs", type=NON_NEGATIVE_INT, default=None,
                     help="Stop after this many jobs."),
        click.option("--until-empty", is_flag=True,
                     help="Stop once no message is ready (delayed ones do not count)."),
        click.option("--worker-id", default=None,
                     help="Name recorded on leases and heartbeats (default host:pid:n)."),
        click.option("--log-events", is_flag=True,
                     help="Log every queue and worker event as one JSON line on stderr."),
        json_option,
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _run(
    queue: str,
    handler: Callable[..., Any],
    options: dict[str, Any],
    on_abort: Callable[[], object] | None = None,
) -> None:
    if (options["breaker_threshold"] is None) != (options["breaker_cooldown"] is None):
        raise click.UsageError("--breaker-threshold and --breaker-cooldown go together")
    if options["backoff"] is None and options["backoff_max"] != DEFAULT_BACKOFF_MAX:
        raise click.UsageError("--backoff-max needs --backoff")
    if options["log_events"]:
        event_log.enable()
    # Imported here, not at the top: every command loads this module, and
    # only the worker commands need the worker.
    from localqueue.worker import persistent_worker

    q = open_queue(queue, warn_empty=True)
    backoff = None
    if options["backoff"] is not None:
        backoff = Backoff(
            initial=options["backoff"],
            multiplier=2.0,
            max=max(options["backoff_max"], options["backoff"]),
        )
    try:
        worker = persistent_worker(
            q,
            worker_id=options["worker_id"],
            max_retries=options["max_tries"] - 1,
            release_delay=options["release_delay"],
            backoff=backoff,
            min_interval=options["min_interval"],
            breaker_threshold=options["breaker_threshold"],
            breaker_cooldown=options["breaker_cooldown"],
            dead_letter_on_failure=options["dead_letter_on_failure"],
            lease_timeout=options["lease_timeout"],
            concurrency=options["concurrency"],
            prefetch=options["prefetch"],
        )(handler)
    except ValueError as exc:
        # The worker's settings refused a combination of options (a lease too
        # short for its heartbeat, say): a usage error, like an out-of-range value.
        raise click.UsageError(str(exc)) from None
    aborted = True
    with contextlib.ExitStack() as stack:
        if options["as_json"]:
            # Keep stdout for the JSON document: anything the handler writes to
            # stdout, even from C code or a subprocess, goes to stderr.
            stack.enter_context(_stdout_to_stderr())
        try:
            summary = worker.run(max_jobs=options["max_jobs"], until_empty=options["until_empty"])
            aborted = summary.aborted
        finally:
            if aborted and on_abort is not None:
                on_abort()  # jobs left to their leases must not keep running
    if options["as_json"]:
        emit_json({"queue": queue, "worker_id": worker.worker_id, **summary.as_dict()})
    else:
        click.echo(
            f"{worker.worker_id}: processed {summary.processed}, acked {summary.acked}, "
            f"released {summary.released}, dead {summary.dead}, lease lost {summary.lease_lost}"
            + (" (stopped at once)" if summary.aborted else ""),
            err=True,
        )


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True},
    epilog=example(
        "localqueue queue exec thumbnails --timeout 5m --max-tries 3 -- python make_thumbnail.py"
    ),
)
@queue_argument()
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@click.option("--timeout", type=DURATION, default=None, help="Kill the command after this long.")
@worker_options
def exec_command(
    queue: str, command: tuple[str, ...], timeout: float | None, **options: Any
) -> None:
    """Run CMD for every message of QUEUE: the value as JSON on its stdin.

    Write the command after `--`: localqueue queue exec QUEUE -- CMD [ARGS...].
    Exit 0 acks the message; any other exit is a failure for the retry policy.
    The command sees LOCALQUEUE_QUEUE, LOCALQUEUE_MESSAGE_ID and
    LOCALQUEUE_ATTEMPT; its output passes through (to stderr with --json).
    """
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise click.UsageError("missing command: localqueue queue exec QUEUE -- CMD [ARGS...]")
    if os.sep not in argv[0]:
        if shutil.which(argv[0]) is None:
            raise click.UsageError(f"command not found: {argv[0]!r} (not on PATH)")
    elif not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
        raise click.UsageError(f"command not found or not executable: {argv[0]!r}")
    if timeout is not None and timeout <= 0:
        raise click.UsageError("--timeout must be > 0")
    running = RunningCommands()
    handler = make_exec_handler(argv, timeout, stdout_to_stderr=options["as_json"], running=running)
    _run(queue, handler, options, on_abort=running.kill_all)


@click.command(
    "process", epilog=example("localqueue queue process emails mailer.tasks:send --concurrency 4")
)
@queue_argument()
@click.argument("handler", metavar="MODULE:FUNCTION")
@worker_options
def process_command(queue: str, handler: str, **options: Any) -> None:
    """Run the Python function MODULE:FUNCTION for every message of QUEUE.

    The function gets the message value (and the Message, if it takes a second
    argument); returning acks, raising is a failure for the retry policy.
    """
    module_name, _, function_name = handler.partition(":")
    if not module_name or not function_name:
        raise click.UsageError(f"handler must look like module:function, got {handler!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the current directory imports
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing
        raise click.ClickException(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise click.ClickException(f"{module_name!r} has no function {function_name!r}")
    _run(queue, function, options)
