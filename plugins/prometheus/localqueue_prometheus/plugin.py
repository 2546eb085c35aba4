"""The plugin the ``localqueue`` entry point names: counts events, adds ``metrics``.

Every process that uses localqueue loads it, so prometheus_client is
imported on the first event (or command), not when the plugin loads: a
`localqueue queue stats` never pays for it.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client writes every value
to a file in that directory; if the directory is missing or not writable,
each event would fail. So the directory is checked once, when localqueue
looks for its observers: if it is unusable, the plugin says so in one
warning line and stays idle (counts nothing) in this process, and the
queue and the worker go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import click

from localqueue.hookspecs import hookimpl
from localqueue.observability.events import Event

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("localqueue.prometheus")

_record: Callable[[Event], None] | None = None
_unusable: bool | None = None  # the multiprocess directory, once checked


def multiproc_problem(*, writing: bool = True) -> str | None:
    """What is wrong with ``$PROMETHEUS_MULTIPROC_DIR``, or None if it is
    unset or a directory this process can use (write to, if ``writing``)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path is None:
        return None
    if not path or not os.path.isdir(path):
        return (
            f"{MULTIPROC_ENV} is {path!r}, which is not a directory; create it "
            "(empty) before starting workers and the exporter"
        )
    if writing and not os.access(path, os.W_OK | os.X_OK):
        return (
            f"{MULTIPROC_ENV} is {path!r}, which this process cannot write to; "
            "give every process that uses localqueue write access to it"
        )
    return None


def observer_idle() -> bool:
    """Idle (not an observer) while the multiprocess directory is unusable:
    checked once per process, and told once, in one line."""
    global _unusable
    if _unusable is None:
        problem = multiproc_problem()
        _unusable = problem is not None
        if problem is not None:
            log.warning("localqueue-prometheus counts nothing in this process: %s", problem)
    return _unusable


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
