"""``localqueue queue stats``, ``health`` and ``list``: watching queues."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import click

from localqueue.cli.common import open_queue
from localqueue.cli.output import DURATION, emit_json, human_age, json_option, table
from localqueue.cli.state import cli_state
from localqueue.store import QueueStats, State


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


@click.command("stats")
@click.argument("queue")
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", type=DURATION, default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")  # fmt: skip
@json_option
def stats_command(queue: str, watch: bool, interval: float, as_json: bool) -> None:
    """Counts of QUEUE: ready, delayed, inflight, dead, oldest ready age, inflight by worker."""
    q = open_queue(queue, warn_empty=True)
    if not watch:
        stats = q.stats()
        emit_json(stats.as_dict()) if as_json else click.echo(render_stats(stats))
        return
    if interval <= 0:
        raise click.UsageError("--interval must be > 0")
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


@click.command("health")
@click.argument("queue")
@click.option(
    "--stale-after",
    type=DURATION,
    default=60.0,
    show_default=True,
    help="A worker silent this long counts as stale.",
)
@click.option(
    "--max-dead",
    type=click.IntRange(min=0),
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
    type=click.IntRange(min=0),
    default=None,
    help="Unhealthy with more stale workers than this.",
)
@json_option  # fmt: skip
def health_command(
    queue: str,
    stale_after: float,
    max_dead: int | None,
    max_ready_age: float | None,
    max_stale_workers: int | None,
    as_json: bool,
) -> None:
    """Stats of QUEUE plus stale workers and a dead-letter summary; exit 1 if unhealthy."""
    q = open_queue(queue, warn_empty=True)
    stats = q.stats()
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
    healthy = all(ok for *_, ok in checks)
    if as_json:
        emit_json(
            {
                "healthy": healthy,
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
        click.echo(f"\nstale workers (silent > {stale_after:g}s): {', '.join(stale) or 'none'}")
        if errors:
            click.echo("\n" + table(list(errors.most_common()), ["dead letters by error", "count"]))
        for name, value, limit, ok in checks:
            click.echo(f"{'ok  ' if ok else 'FAIL'} {name} = {value:g} (limit {limit:g})")
        click.echo("healthy" if healthy else "UNHEALTHY")
    if not healthy:
        sys.exit(1)


@click.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Every queue in the store with its counts."""
    store = cli_state().store()
    rows = [store.stats(name) for name in store.queues()]
    if as_json:
        emit_json({"store": store.url, "queues": [s.as_dict() for s in rows]})
        return
    if not rows:
        click.echo(f"no queues hold messages in {store.url}")
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
