"""``localqueue queue dead``, ``requeue-dead``, ``inspect`` and ``purge``: recovery."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import click

from localqueue.cli.common import open_queue
from localqueue.cli.output import DURATION, emit_json, human_age, json_option, table
from localqueue.message import Message
from localqueue.store import MessageFilter, State


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
                type=click.IntRange(min=0),
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


@click.command("dead")
@click.argument("queue")
@filter_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most N.")
@click.option("--summary", is_flag=True, help="Group by error type instead of listing.")
@json_option
def dead_command(
    queue: str,
    error_contains: str | None,
    min_attempts: int | None,
    failed_within: float | None,
    limit: int | None,
    summary: bool,
    as_json: bool,
) -> None:
    """Dead letters of QUEUE with payload, attempts and latest error."""
    q = open_queue(queue, warn_empty=True, existing=True)
    flt = _filter((), error_contains, min_attempts, failed_within, q.store.clock.now())
    records = q.store.list_messages(
        queue, state=State.DEAD, filter=flt, limit=None if summary else limit
    )
    messages = [Message(r._replace(receipt=None), q.serializer) for r in records]
    if summary:
        counts = Counter(m.last_error.type if m.last_error else "(no error)" for m in messages)
        if as_json:
            emit_json({"queue": queue, "dead": len(messages), "by_error_type": dict(counts)})
        else:
            click.echo(table(list(counts.most_common()), ["error type", "count"]))
        return
    if as_json:
        emit_json({"queue": queue, "messages": [m.as_dict() for m in messages]})
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
            f"{m.last_error.type}: {m.last_error.message}"[:70] if m.last_error else "-",
            _short(_value(m), 40),
        ]
        for m in messages
    ]
    click.echo(table(rows, ["id", "attempts", "failed", "latest error", "value"]))


@click.command("requeue-dead")
@click.argument("queue")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
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


@click.command("inspect")
@click.argument("queue")
@click.argument("message_id", required=False, type=click.IntRange(min=1))
@click.option(
    "--state",
    "state_name",
    type=click.Choice([s.value for s in State]),
    default=None,
    help="List messages in this state.",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--after", type=click.IntRange(min=0), default=None, help="Page: list ids after this one."
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


@click.command("purge")
@click.argument("queue")
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
