"""``localqueue queue prune``, ``retention`` and ``acked``: how long messages are kept.

``prune`` is meant for cron: it never asks, and prints what it removed (or,
with ``--dry-run``, would remove). Dead letters age from when they failed;
archived acked messages from when they were acked. ``prune --dry-run`` only
looks: it opens a SQLite file as the ``store`` commands do, without creating
or migrating it, so a preview never changes the file.
"""

from __future__ import annotations

from typing import Any

import click

from localqueue.cli.common import open_queue
from localqueue.cli.completion import queue_argument
from localqueue.cli.output import (
    DURATION,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    emit_json,
    example,
    human_age,
    json_option,
    table,
)
from localqueue.cli.queue_recover import _short
from localqueue.cli.state import cli_state, existing_store
from localqueue.cli.store_commands import maintenance_store
from localqueue.queue import PersistentQueue
from localqueue.store import MessageFilter, State, Store, check_queue_name, redact_url
from localqueue.store.capabilities import SupportsAckedRetention


def retention_store(store: Store) -> SupportsAckedRetention:
    if not isinstance(store, SupportsAckedRetention):
        raise click.ClickException(
            f"store {redact_url(store.url)!r} does not support acked retention"
        )
    return store


def note_if_unknown(store: Store, queue: str) -> None:
    """The note ``open_queue(..., warn_empty=True)`` gives for a name that is likely a typo.

    A queue with retention set or with archived acks is known here even when
    it holds no live message: those are exactly what these commands manage.
    """
    if queue in store.queues():
        return
    if isinstance(store, SupportsAckedRetention) and (
        store.keep_acked(queue) is not None or store.list_acked(queue, limit=1)
    ):
        return
    known = ", ".join(store.queues()) or "none"
    click.echo(
        f"note: queue {queue!r} holds no messages in {redact_url(store.url)}; "
        f"queues with messages: {known}",
        err=True,
    )


@click.command(
    "prune",
    epilog=example("localqueue queue prune emails --dead-older-than 30d --acked-older-than 7d"),
)
@queue_argument()
@click.option(
    "--dead-older-than",
    type=DURATION,
    default=None,
    help="Delete dead letters that failed at least this long ago.",
)
@click.option(
    "--acked-older-than",
    type=DURATION,
    default=None,
    help="Delete archived acked messages acked at least this long ago.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
def prune_command(
    queue: str,
    dead_older_than: float | None,
    acked_older_than: float | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Apply retention to QUEUE: delete old dead letters and old archived acks. Never asks."""
    if dead_older_than is None and acked_older_than is None:
        raise click.UsageError("give --dead-older-than, --acked-older-than or both")
    check_queue_name(queue)
    # A preview only looks: it must not migrate an older file as queue work
    # does. Neither creates a store: pruning a mistyped path or schema (in a
    # cron job, say) is an error, not a new empty store.
    store = maintenance_store() if dry_run else existing_store()
    if acked_older_than is not None:
        retention = retention_store(store)  # before deleting anything
    note_if_unknown(store, queue)
    result: dict[str, object] = {"queue": queue, "dry_run": dry_run}
    if dead_older_than is not None:
        flt = MessageFilter(older_than=dead_older_than)
        result["dead"] = store.purge(queue, state=State.DEAD, filter=flt, dry_run=dry_run)
    if acked_older_than is not None:
        result["acked"] = retention.prune_acked(queue, older_than=acked_older_than, dry_run=dry_run)
    if as_json:
        emit_json(result)
        return
    verb = "would delete" if dry_run else "deleted"
    parts = []
    if "dead" in result:
        parts.append(
            f"{result['dead']} dead letter(s) older than {duration_text(dead_older_than or 0)}"
        )
    if "acked" in result:
        parts.append(
            f"{result['acked']} archived acked message(s) older than "
            f"{duration_text(acked_older_than or 0)}"
        )
    click.echo(f"{verb} {' and '.join(parts)} from {queue}")


class KeepAcked(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A duration, or ``off`` (0): checked while the options are parsed, so a
    bad value is a usage error naming the option before any store is opened."""

    name = "seconds|off"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        return 0.0 if text == "off" else DURATION.convert(text, param, ctx)


@click.command("retention", epilog=example("localqueue queue retention emails --keep-acked 7d"))
@queue_argument()
@click.option(
    "--keep-acked",
    type=KeepAcked(),
    metavar="SECONDS|off",
    default=None,
    help="Archive acked messages for this long (e.g. 7d); 0 or 'off' stops archiving.",
)
@json_option
def retention_command(queue: str, keep_acked: float | None, as_json: bool) -> None:
    """Show or set how long QUEUE keeps acked messages for audit."""
    check_queue_name(queue)
    # Showing the setting only reads: a mistyped store must not be created.
    opened = cli_state().store() if keep_acked is not None else existing_store()
    store = retention_store(opened)
    note_if_unknown(opened, queue)
    if keep_acked is not None:
        store.set_keep_acked(queue, keep_acked or None)
    current = store.keep_acked(queue)
    if as_json:
        emit_json({"queue": queue, "keep_acked": current})
    elif current is None:
        click.echo(f"{queue}: acked messages are deleted (no retention)")
    else:
        click.echo(
            f"{queue}: acked messages are archived; prune those older than "
            f"{duration_text(current)} with 'localqueue queue prune {queue} "
            f"--acked-older-than {duration_text(current)}'"
        )


@click.command("acked", epilog=example("localqueue queue acked emails --limit 20"))
@queue_argument()
@click.option("--after", type=NON_NEGATIVE_INT, default=0, help="Only ids above this.")
@click.option("--limit", type=POSITIVE_INT, default=50, show_default=True)
@json_option
def acked_command(queue: str, after: int, limit: int, as_json: bool) -> None:
    """List archived acked messages of QUEUE (a queue with --keep-acked retention)."""
    q = open_queue(queue, existing=True)
    records = retention_store(q.store).list_acked(queue, after_id=after or None, limit=limit)
    if as_json:
        emit_json(
            {
                "queue": queue,
                "messages": [
                    {
                        "id": r.id,
                        "value": decoded(q, r.payload),
                        "priority": r.priority,
                        "attempts": r.attempts,
                        "created_at": r.created_at,
                        "acked_at": r.acked_at,
                        "acked_by": r.acked_by,
                        "dedupe_key": r.dedupe_key,
                    }
                    for r in records
                ],
            }
        )
        return
    now = q.store.clock.now()
    rows = [
        [
            r.id,
            r.attempts,
            r.acked_by,
            human_age(now - r.acked_at),
            _short(decoded(q, r.payload), 40),
        ]
        for r in records
    ]
    headers = ["id", "attempts", "acked_by", "acked_ago", "value"]
    click.echo(table(rows, headers) if rows else "no messages")


def duration_text(seconds: float) -> str:
    """The shortest exact spelling in the units the CLI accepts: 7d, 2h, 90s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def decoded(q: PersistentQueue, payload: bytes) -> Any:
    try:
        return q.serializer.loads(payload)
    except Exception:
        return {"undecodable payload (bytes)": len(payload)}
