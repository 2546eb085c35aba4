"""The built-in ``event_log`` plugin: one JSON object per event, as a log record.

Off by default, and then it costs nothing (it tells the observer host it is
idle). Switched on by ``LOCALQUEUE_LOG_EVENTS=1`` (read when the first
event could be sent, and again whenever plugins change), by ``--log-events``
on the worker commands, or by :func:`enable` in code.

Records go to the ``localqueue.events`` logger at INFO, with the event
object in ``record.localqueue_event``, so an application routes them like
any other log. If that logger has no handler of its own when the plugin is
switched on, one is added that writes the bare JSON line to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from localqueue.hookspecs import hookimpl
from localqueue.observability import observers
from localqueue.observability.events import Event

__all__ = [
    "ENV",
    "LOGGER_NAME",
    "disable",
    "enable",
    "enabled",
]

ENV = "LOCALQUEUE_LOG_EVENTS"
LOGGER_NAME = "localqueue.events"

log = logging.getLogger(LOGGER_NAME)

_enabled = False


def _env_on() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def enable() -> None:
    """Switch the event log on for this process (``--log-events`` does this)."""
    global _enabled
    _enabled = True
    _ensure_output()
    observers.invalidate()


def disable() -> None:
    """Switch it off again (unless ``LOCALQUEUE_LOG_EVENTS`` is set)."""
    global _enabled
    _enabled = False
    observers.invalidate()


def enabled() -> bool:
    return _enabled or _env_on()


def observer_idle() -> bool:
    """Read by the observer host: while off, this plugin is not called at all."""
    if not enabled():
        return True
    _ensure_output()
    return False


def _ensure_output() -> None:
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False  # the line is on stderr already; do not print it twice


@hookimpl
def localqueue_event(event: Event) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(
            json.dumps(event.as_dict(), separators=(",", ":"), default=str),
            extra={"localqueue_event": event},
        )
