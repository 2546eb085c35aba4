"""``localqueue queue dead``, ``requeue-dead``, ``inspect`` and ``purge``: recovery."""

from __future__ import annotations

import ast
import json
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import click

from localqueue.cli.common import open_queue
from localqueue.cli.completion import queue_argument
from localqueue.cli.output import (
    DURATION,
    MESSAGE_ID,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    emit_json,
    example,
    human_age,
    json_option,
    table,
)
from localqueue.message import Message
from localqueue.store import ErrorInfo, MessageFilter, State

# How `queue exec` records a failed command (cli/exec_handler.py): the error
# type CommandFailed and a message of the form "command exited with code N;
# stdout tail: '...'; stderr tail: '...'" (or "command timed out after 5s and
# was killed; ..."), the tails as Python string literals. Only that text is
# stored, so the dead letter views read it back from there.
COMMAND_FAILED = "CommandFailed"
_EXITED = re.compile(r"command exited with code (-?\d+);")
_TIMED_OUT = re.compile(r"command timed out after ([^ ;]+) and was killed;")
STDERR_CELL_WIDTH = 50


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _value(message: Message) -> Any:
    try:
        return message.value
    except Exception:
        return {"undecodable payload (bytes)": len(message.payload)}


def _filter(
    ids: tuple[int, ...] = (),
    error_contains: str | None = None,
    min_attempts: int | None = None,
    failed_within: float | None = None,
    now: float = 0.0,
) -> MessageFilter:
    return MessageFilter(
        ids=list(ids) or None,
        error_contains=error_contains,
        min_attempts=min_attempts,
        failed_after=None if failed_within is None else now - failed_within,
    )


def filter_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--error-contains",
                metavar="TEXT",
                help="Only those whose latest error contains TEXT (any case).",
            ),
            click.option(
                "--min-attempts",
                type=NON_NEGATIVE_INT,
                default=None,
                help="Only those delivered at least this often.",
            ),
            click.option(
                "--failed-within",
                type=DURATION,
                default=None,
                help="Only those that failed within this many seconds.",
            ),
        ]
    ):
        func = option(func)
    return func


@dataclass(frozen=True)
class CommandFailure:
    """A failed ``queue exec`` command, as read back from its stored error."""

    exit_code: int | None  # None when it was killed on timeout
    timed_out: bool
    stdout_tail: str
    stderr_tail: str


def command_failure(error: ErrorInfo | None) -> CommandFailure | None:
    """The failed command behind ``error``, or None for any other error (or
    a CommandFailed text that is not in the form exec records)."""
    if error is None or error.type != COMMAND_FAILED:
        return None
    text = error.message
    exited, timed_out = _EXITED.match(text), _TIMED_OUT.match(text)
    if exited is None and timed_out is None:
        return None
    stderr = _last_literal(text, "; stderr tail: ")
    if stderr is None:
        return None
    stdout = _last_literal(text[: stderr[0]], "; stdout tail: ")
    return CommandFailure(
        exit_code=int(exited.group(1)) if exited is not None else None,
        timed_out=timed_out is not None,
        stdout_tail=stdout[1] if stdout is not None else "",
        stderr_tail=stderr[1],
    )


def _last_literal(text: str, label: str) -> tuple[int, str] | None:
    """Where ``label`` starts and the string literal after it, up to the end
    of ``text``. Tried from the right: a label-like text inside an earlier
    tail is followed by more than one literal, so it does not parse."""
    at = text.rfind(label)
    while at != -1:
        try:
            value = ast.literal_eval(text[at + len(label) :])
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, str):
            return at, value
        at = text.rfind(label, 0, at)
    return None


def _error_cell(error: ErrorInfo | None, failure: CommandFailure | None) -> str | None:
    if error is None:
        return None
    if failure is not None:  # the tails have their own column, or are in --json
        what = f"exit code {failure.exit_code}" if failure.exit_code is not None else ""
        if failure.timed_out:
            match = _TIMED_OUT.match(error.message)
            what = f"timed out after {match.group(1)}" if match else "timed out"
        return f"{error.type}: {what}"
    return f"{error.type}: {error.message}"[:70]


def _stderr_cell(failure: CommandFailure | None) -> str | None:
    """The end of a failed command's stderr: its last non-blank line, whose
    end is kept when it is too long (that is where a message usually says why)."""
    if failure is None:
        return None
    lines = [line.strip() for line in failure.stderr_tail.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    if len(last) > STDERR_CELL_WIDTH:
        last = "..." + last[-(STDERR_CELL_WIDTH - 3) :]
    return last


def _exit_code_group(message: Message) -> str:
    failure = command_failure(message.last_error)
    if failure is None:
        return "none"
    return "timeout" if failure.exit_code is None else str(failure.exit_code)


@click.command("dead", epilog=example("localqueue queue dead thumbnails --summary --by exit-code"))
@queue_argument()
@filter_options
@click.option("--limit", type=POSITIVE_INT, default=None, help="Show at most N.")
@click.option("--summary", is_flag=True, help="Count by error type (or --by) instead of listing.")
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["error-type", "exit-code"]),
    default=None,
    help="With --summary: group by error type (default) or by exit code of failed exec commands.",
)
@json_option
def dead_command(
    queue: str,
    error_contains: str | None,
    min_attempts: int | None,
    failed_within: float | None,
    limit: int | None,
    summary: bool,
    group_by: str | None,
    as_json: bool,
) -> None:
    """Dead letters of QUEUE with payload, attempts and latest error."""
    if group_by is not None and not summary:
        raise click.UsageError("--by chooses how --summary groups; pass --summary too")
    q = open_queue(queue, warn_empty=True, existing=True)
    flt = _filter((), error_contains, min_attempts, failed_within, q.store.clock.now())
    records = q.store.list_messages(
        queue, state=State.DEAD, filter=flt, limit=None if summary else limit
    )
    messages = [Message(r._replace(receipt=None), q.serializer) for r in records]
    if summary:
        if group_by == "exit-code":
            counts = Counter(_exit_code_group(m) for m in messages)
            key, header = "by_exit_code", "exit code"
        else:
            counts = Counter(m.last_error.type if m.last_error else "(no error)" for m in messages)
            key, header = "by_error_type", "error type"
        if as_json:
            emit_json({"queue": queue, "dead": len(messages), key: dict(counts)})
        else:
            click.echo(table(list(counts.most_common()), [header, "count"]))
        return
    failures = [command_failure(m.last_error) for m in messages]
    if as_json:
        documents = [
            {**m.as_dict(), "command": None if f is None else asdict(f)}
            for m, f in zip(messages, failures, strict=True)
        ]
        emit_json({"queue": queue, "messages": documents})
        return
    if not messages:
        click.echo(f"no dead letters in {queue}")
        return
    now = q.store.clock.now()
    rows = [
        [
            m.id,
            m.attempts,
            human_age(now - m.failed_at) if m.failed_at else "-",
            _error_cell(m.last_error, f),
            _stderr_cell(f),
            _short(_value(m), 40),
        ]
        for m, f in zip(messages, failures, strict=True)
    ]
    headers = ["id", "attempts", "failed", "latest error", "stderr tail", "value"]
    if not any(f is not None for f in failures):
        # Only a queue worked by `queue exec` has command output to show.
        rows = [row[:4] + row[5:] for row in rows]
        headers = headers[:4] + headers[5:]
    click.echo(table(rows, headers))


@click.command(
    "requeue-dead",
    epilog=example("localqueue queue requeue-dead emails --error-contains timeout --dry-run"),
)
@queue_argument()
@click.argument("ids", nargs=-1, type=MESSAGE_ID)
@click.option("--all", "all_", is_flag=True, help="Requeue every dead letter of QUEUE.")
@filter_options
@click.option("--delay", type=DURATION, default=0.0, help="Make them ready after this long.")
@click.option("--dry-run", is_flag=True, help="List what would move; move nothing.")
@json_option
def requeue_dead_command(
    queue: str,
    ids: tuple[int, ...],
    all_: bool,
    error_contains: str | None,
    min_attempts: int | None,
    failed_within: float | None,
    delay: float,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Move dead letters of QUEUE back to ready with a fresh attempt budget.

    Name IDs, or pass --all, or filters (--error-contains, --min-attempts,
    --failed-within).
    """
    filtering = error_contains is not None or min_attempts is not None or failed_within is not None
    if not ids and not all_ and not filtering:
        raise click.UsageError(
            "name message IDs, or pass --all, or a filter such as --error-contains"
        )
    if all_ and ids:
        raise click.UsageError("pass IDs or --all, not both")
    # A store that does not exist holds no dead letters: say so, create nothing.
    q = open_queue(queue, must_exist=True, existing=True)
    flt = _filter(ids, error_contains, min_attempts, failed_within, q.store.clock.now())
    moved = q.store.requeue(queue, filter=flt, delay=delay, dry_run=dry_run)
    missing = sorted(set(ids) - set(moved))
    if as_json:
        emit_json({"queue": queue, "dry_run": dry_run, "ids": moved, "not_dead": missing})
    else:
        verb = "would requeue" if dry_run else "requeued"
        click.echo(
            f"{verb} {len(moved)} message(s)" + (f": {', '.join(map(str, moved))}" if moved else "")
        )
    if missing:
        why = "not dead letters of" if not filtering else "not dead letters matching the filters in"
        click.echo(f"Error: {why} {queue}: {', '.join(map(str, missing))}", err=True)
        sys.exit(1)


@click.command("inspect", epilog=example("localqueue queue inspect emails 42"))
@queue_argument()
@click.argument("message_id", required=False, type=MESSAGE_ID)
@click.option(
    "--state",
    "state_name",
    type=click.Choice([s.value for s in State]),
    default=None,
    help="List messages in this state.",
)
@click.option("--limit", type=POSITIVE_INT, default=50, show_default=True)
@click.option(
    "--after",
    type=NON_NEGATIVE_INT,
    default=None,
    help="Page: list ids after this one.",
)
@json_option  # fmt: skip
def inspect_command(
    queue: str,
    message_id: int | None,
    state_name: str | None,
    limit: int,
    after: int | None,
    as_json: bool,
) -> None:
    """One message of QUEUE in full (by ID), or a listing (optionally by --state)."""
    q = open_queue(queue, must_exist=True, existing=True)
    if message_id is not None:
        message = q.inspect(message_id)
        document = message.as_dict()
        if as_json:
            emit_json(document)
            return
        for key, value in document.items():
            if key == "last_error" and value:
                click.echo(f"{'last_error':<13} {value['type']}: {value['message']}")
                if value.get("traceback"):
                    click.echo("  " + value["traceback"].rstrip().replace("\n", "\n  "))
            else:
                shown = _short(value, 200) if key == "value" else value
                click.echo(f"{key:<13} {'-' if shown is None else shown}")
        return
    messages = q.messages(state_name, after_id=after or None, limit=limit)
    if as_json:
        emit_json({"queue": queue, "messages": [m.as_dict() for m in messages]})
        return
    rows = [[m.id, m.state.value, m.priority, m.attempts, _short(_value(m), 50)] for m in messages]
    click.echo(
        table(rows, ["id", "state", "priority", "attempts", "value"]) if rows else "no messages"
    )


@click.command(
    "purge", epilog=example("localqueue queue purge emails --state dead --older-than 30d --dry-run")
)
@queue_argument()
@click.option(
    "--state",
    "state_name",
    type=click.Choice([s.value for s in State]),
    default=None,
    help="Only messages in this state (default: all).",
)
@click.option(
    "--older-than",
    type=DURATION,
    default=None,
    help="Only messages older than this (dead letters: since they failed).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option  # fmt: skip
def purge_command(
    queue: str,
    state_name: str | None,
    older_than: float | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete messages of QUEUE. Preview with --dry-run; asks first unless --yes."""
    # Nothing to delete in a store that does not exist: a typo in a cron job
    # fails loudly instead of creating an empty store and "deleting 0" forever.
    q = open_queue(queue, warn_empty=True, existing=True)
    wanted = None if state_name is None else State(state_name)
    flt = MessageFilter(older_than=older_than) if older_than is not None else None
    count = q.store.purge(queue, state=wanted, filter=flt, dry_run=True)
    what = f"{count} {state_name or ''} message(s)".replace("  ", " ")
    if not dry_run and count:
        if not yes:
            if not stdin_is_terminal():
                raise click.UsageError(f"would delete {what} from {queue}; pass --yes to confirm")
            # Pin the confirmed set: messages added while the user reads the
            # prompt must not be deleted with the ones they agreed to.
            shown = [r.id for r in q.store.list_messages(queue, state=wanted, filter=flt)]
            click.confirm(f"Delete {what} from {queue}?", abort=True)
            flt = MessageFilter(ids=shown, older_than=older_than)
        count = q.store.purge(queue, state=wanted, filter=flt)
    if as_json:
        emit_json({"queue": queue, "dry_run": dry_run, "count": count})
    else:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {count} message(s) from {queue}")
