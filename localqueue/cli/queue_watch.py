"""``localqueue queue stats``, ``health`` and ``list``: watching queues."""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter
from typing import Any

import click

from localqueue.cli.common import no_messages_text, open_queue
from localqueue.cli.completion import queue_argument
from localqueue.cli.output import (
    DURATION,
    NON_NEGATIVE_INT,
    Duration,
    emit_json,
    example,
    human_age,
    json_option,
    table,
)
from localqueue.cli.state import cli_state, existing_store
from localqueue.store import QueueStats, State, Store, all_stats, redact_url
from localqueue.store.capabilities import SupportsAckedRetention


def render_stats(stats: QueueStats) -> str:
    rows: list[list[Any]] = [
        ["ready", stats.ready],
        ["delayed", stats.delayed],
        ["inflight", stats.inflight],
        ["dead", stats.dead],
        ["oldest ready age", human_age(stats.oldest_ready_age)],
    ]
    text = table(rows, [f"queue {stats.queue}", ""])
    if stats.inflight_by_worker:
        workers = sorted(stats.inflight_by_worker.items())
        text += "\n\n" + table([[w, n] for w, n in workers], ["worker", "inflight"])
    return text


@click.command("stats", epilog=example("localqueue queue stats emails --watch --interval 5"))
@queue_argument()
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", type=Duration(minimum=0.1), default=2.0, show_default=True,
              help="Seconds between refreshes with --watch (at least 0.1).")  # fmt: skip
@json_option
def stats_command(queue: str, watch: bool, interval: float, as_json: bool) -> None:
    """Counts of QUEUE: ready, delayed, inflight, dead, oldest ready age, inflight by worker."""
    q = open_queue(queue, warn_empty=True, existing=True)
    if not watch:
        stats = q.stats()
        emit_json(stats.as_dict()) if as_json else click.echo(render_stats(stats))
        return
    in_place = sys.stdout.isatty() and not as_json
    try:
        while True:
            stats = q.stats()
            if as_json:
                emit_json({"time": time.time(), **stats.as_dict()})  # one object per line
            elif in_place:
                click.echo("\x1b[H\x1b[2J" + render_stats(stats))
            else:
                click.echo(render_stats(stats) + "\n")
            time.sleep(interval)
    except KeyboardInterrupt:
        return


# `queue health` exit codes: 0 healthy, 1 unhealthy, 2 usage error, and this
# one when the check itself failed (no such store, a store error, a bad URL,
# a queue name the store has never seen): "could not check", so a monitor can
# tell "the queue is bad" from "the check is broken".
HEALTH_NOT_CHECKED = 3


class NotChecked(Exception):
    """``queue health`` could not check the queue (exit code 3)."""


def queue_state(store: Store, queue: str, stats: QueueStats) -> str:
    """``active`` (holds messages), ``drained`` (holds none, but a worker is
    attached or acked retention keeps it) or ``unseen`` (nothing in the store
    knows the name: a typo, or a drained queue with no worker running)."""
    if stats.total:
        return "active"
    if stats.workers:
        return "drained"
    if isinstance(store, SupportsAckedRetention) and (
        store.keep_acked(queue) is not None or store.list_acked(queue, limit=1)
    ):
        return "drained"
    return "unseen"


@click.command(
    "health", epilog=example("localqueue queue health emails --max-dead 0 --max-ready-age 10m")
)
@queue_argument()
@click.option(
    "--stale-after",
    type=DURATION,
    default=60.0,
    show_default=True,
    help="A worker silent this long counts as stale.",
)
@click.option(
    "--max-dead",
    type=NON_NEGATIVE_INT,
    default=None,
    help="Unhealthy with more dead letters than this.",
)
@click.option(
    "--max-ready-age",
    type=DURATION,
    default=None,
    help="Unhealthy when the oldest ready message waited longer.",
)
@click.option(
    "--max-stale-workers",
    type=NON_NEGATIVE_INT,
    default=None,
    help="Unhealthy with more stale workers than this.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Check a queue that holds no messages and has no worker attached "
    "(else: exit 3, as a likely typo).",
)
@json_option  # fmt: skip
def health_command(
    queue: str,
    stale_after: float,
    max_dead: int | None,
    max_ready_age: float | None,
    max_stale_workers: int | None,
    allow_empty: bool,
    as_json: bool,
) -> None:
    """Stats of QUEUE plus stale workers and a dead-letter summary.

    Exit 0 healthy, 1 unhealthy, 3 could not check (no such store, a store
    error, or a queue the store does not know; see --allow-empty).
    """
    from localqueue.cli.app import USER_ERRORS  # the root imports this module

    not_checked: tuple[type[BaseException], ...] = (NotChecked, *USER_ERRORS)
    try:
        report = health_report(
            queue, stale_after, max_dead, max_ready_age, max_stale_workers, allow_empty
        )
    except not_checked as exc:
        if cli_state().debug:
            traceback.print_exc()
        message = (str(exc) or type(exc).__name__).splitlines()[0]
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{message}: {exc.filename}"
        if not isinstance(exc, NotChecked):
            message = f"could not check queue {queue!r}: {message}"
        if as_json:
            emit_json({"checked": False, "healthy": None, "error": message})
        click.echo(f"Error: {message}", err=True)
        sys.exit(HEALTH_NOT_CHECKED)
    stats, state, stale, errors, checks = report
    healthy = all(ok for *_, ok in checks)
    if as_json:
        emit_json(
            {
                "checked": True,
                "healthy": healthy,
                "queue_state": state,
                "stats": stats.as_dict(),
                "stale_workers": stale,
                "dead_by_error_type": dict(errors.most_common()),
                "checks": [
                    {"name": name, "value": value, "limit": limit, "ok": ok}
                    for name, value, limit, ok in checks
                ],
            }
        )
    else:
        click.echo(render_stats(stats))
        if state != "active":
            why = (
                f"{len(stats.workers)} worker(s) attached"
                if stats.workers
                else "acked retention keeps it"
                if state == "drained"
                else "no worker attached; checked because of --allow-empty"
            )
            click.echo(f"\nqueue {queue} holds no messages ({state}: {why})")
        click.echo(f"\nstale workers (silent > {stale_after:g}s): {', '.join(stale) or 'none'}")
        if errors:
            click.echo("\n" + table(list(errors.most_common()), ["dead letters by error", "count"]))
        for name, value, limit, ok in checks:
            click.echo(f"{'ok  ' if ok else 'FAIL'} {name} = {value:g} (limit {limit:g})")
        click.echo("healthy" if healthy else "UNHEALTHY")
    if not healthy:
        sys.exit(1)


def health_report(
    queue: str,
    stale_after: float,
    max_dead: int | None,
    max_ready_age: float | None,
    max_stale_workers: int | None,
    allow_empty: bool,
) -> tuple[QueueStats, str, list[str], Counter[str], list[tuple[str, float, float, bool]]]:
    """What ``queue health`` reports; raises when the queue cannot be checked."""
    q = open_queue(queue, existing=True)
    stats = q.stats()
    state = queue_state(q.store, queue, stats)
    if state == "unseen":
        text = no_messages_text(q.store, queue)
        if not allow_empty:
            raise NotChecked(
                f"cannot check: {text}; no worker is attached either (a typo?); "
                "pass --allow-empty if it may be drained with no worker running"
            )
        click.echo(f"note: {text}", err=True)
    now = q.store.clock.now()
    stale = sorted(w for w, seen in stats.workers.items() if now - seen > stale_after)
    errors = Counter(
        (m.last_error.type if m.last_error else "(no error)") for m in q.dead_letters()
    )
    checks: list[tuple[str, float, float, bool]] = []
    if max_dead is not None:
        checks.append(("dead", stats.dead, max_dead, stats.dead <= max_dead))
    if max_ready_age is not None:
        age = stats.oldest_ready_age or 0.0
        checks.append(("oldest_ready_age", age, max_ready_age, age <= max_ready_age))
    if max_stale_workers is not None:
        checks.append(
            ("stale_workers", len(stale), max_stale_workers, len(stale) <= max_stale_workers)
        )
    return stats, state, stale, errors, checks


@click.command("list", epilog=example("localqueue queue list --json"))
@json_option
def list_command(as_json: bool) -> None:
    """Every queue in the store with its counts."""
    store = existing_store()
    rows = all_stats(store)  # the store's one-call fast path where it has one
    if as_json:
        emit_json({"store": redact_url(store.url), "queues": [s.as_dict() for s in rows]})
        return
    if not rows:
        click.echo(f"no queues hold messages in {redact_url(store.url)}")
        return
    click.echo(
        table(
            [
                [s.queue, s.ready, s.delayed, s.inflight, s.dead, human_age(s.oldest_ready_age)]
                for s in rows
            ],
            [
                "queue",
                State.READY.value,
                State.DELAYED.value,
                State.INFLIGHT.value,
                State.DEAD.value,
                "oldest ready",
            ],
        )
    )
