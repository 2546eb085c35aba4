"""The plugin the ``localqueue`` entry point names: counts events, adds ``metrics``.

Every process that uses localqueue loads it, so prometheus_client is
imported on the first event (or command), not when the plugin loads: a
`localqueue queue stats` never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from localqueue.events import Event
from localqueue.hookspecs import hookimpl

_record: Callable[[Event], None] | None = None


@hookimpl
def localqueue_event(event: Event) -> None:
    global _record
    if _record is None:
        from localqueue_prometheus.metrics import record

        _record = record
    _record(event)


@hookimpl
def localqueue_cli_commands(cli: click.Group) -> None:
    from localqueue_prometheus.cli import metrics_group

    cli.add_command(metrics_group)
