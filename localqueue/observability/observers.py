"""Hands events to the ``localqueue_event`` observers, cheaply and safely.

The queue and the worker ask :func:`listening` before they build an event:
it returns the observers (a cached tuple, recomputed only when plugins are
registered or unregistered), so with none installed a put pays one function
call and no allocation. :func:`emit` calls each observer on its own, so a
broken one is logged and never stops a put, a get or a worker, and never
silences the others.

Observability must never make a queue operation fail or change its result,
and the queue asks :func:`listening` after the store has committed: so it
never raises. Plugins that cannot be loaded mean no observers; an
``observer_idle()`` that raises means that observer is not idle. Both are
logged on one line, and the answer is cached like any other, so a broken
plugin costs nothing more on later operations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pluggy

from localqueue import plugins
from localqueue.observability.events import Event

__all__ = [
    "IDLE_ATTRIBUTE",
    "Observer",
    "invalidate",
]

log = logging.getLogger("localqueue.observers")

Observer = tuple[str, Callable[..., object]]  # (plugin name, its localqueue_event)

# A plugin that is installed but switched off (the built-in event log
# without --log-events) tells so through this attribute, and is left out,
# so that it costs nothing while off.
IDLE_ATTRIBUTE = "observer_idle"

# A failing observer would log on every event (thousands a second): its
# first failure is logged with the traceback, later ones once a minute with
# a count.
REPEAT_LOG_INTERVAL = 60.0

_monotonic = time.monotonic  # a name of its own, so tests can move it
_observers: tuple[Observer, ...] | None = None
_generation = 0  # bumped by invalidate(), so a stale recomputation is not kept
# plugin (or "listening ..." for a problem finding observers) -> (last logged, failures since)
_failures: dict[str, tuple[float, int]] = {}
_failures_lock = threading.Lock()


def _compute(pm: pluggy.PluginManager) -> tuple[Observer, ...]:
    found: list[Observer] = []
    # pluggy calls the newest registered first; keep that order.
    for impl in reversed(pm.hook.localqueue_event.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue  # nothing to wrap: an event has no result
        idle = getattr(impl.plugin, IDLE_ATTRIBUTE, None)
        if callable(idle):
            try:
                if idle():
                    continue
            except Exception as exc:
                _log_problem(
                    f"listening {impl.plugin_name}.{IDLE_ATTRIBUTE}",
                    "observer %r: %s() raised %s: %s; it is treated as not idle",
                    impl.plugin_name,
                    IDLE_ATTRIBUTE,
                    type(exc).__name__,
                    exc,
                )
        found.append((impl.plugin_name, impl.function))
    return tuple(found)


def listening() -> tuple[Observer, ...]:
    """The active observers; empty when nobody listens (the common case).

    Never raises (see the module's docstring)."""
    observers = _observers
    if observers is None:
        observers = refresh()
    return observers


def refresh() -> tuple[Observer, ...]:
    """Recompute the observers now. Never raises."""
    global _observers
    try:
        # Built first, so that the registrations of the build itself do not
        # count as plugins coming and going during the computation.
        pm = plugins.get_plugin_manager()
    except Exception as exc:
        _log_problem(
            "listening plugins",
            "no event observers: the plugins could not be loaded (%s: %s)",
            type(exc).__name__,
            exc,
        )
        # Kept until plugins are reset, so that every later operation does
        # not try (and fail) to load them again.
        _observers = ()
        return ()
    generation = _generation
    try:
        observers = _compute(pm)
    except Exception as exc:  # a hook implementation pluggy cannot list
        _log_problem(
            "listening observers",
            "no event observers: they could not be listed (%s: %s)",
            type(exc).__name__,
            exc,
        )
        observers = ()
    if generation == _generation:  # no plugin came or went meanwhile
        _observers = observers
    return observers


def invalidate() -> None:
    """Forget the observers (plugins changed); the next :func:`listening` recomputes them."""
    global _observers, _generation
    _generation += 1
    _observers = None


def emit(observers: tuple[Observer, ...], event: Event) -> None:
    """Give ``event`` to every observer; one that raises is logged and skipped."""
    for name, function in observers:
        try:
            function(event=event)
        except Exception:
            _log_failure(name, event)


def _log_problem(key: str, message: str, *args: object) -> None:
    """One line on the ``localqueue.observers`` logger: the first time for
    ``key``, then at most once a minute with a count of the repeats."""
    now = _monotonic()
    with _failures_lock:
        last, since = _failures.get(key, (None, 0))
        if last is not None and now - last < REPEAT_LOG_INTERVAL:
            _failures[key] = (last, since + 1)
            return
        _failures[key] = (now, 0)
    if last is None:
        log.warning(message, *args)
    else:
        log.warning(message + " (%d more times in the last minute)", *args, since + 1)


def _log_failure(name: str, event: Event) -> None:
    now = _monotonic()
    with _failures_lock:
        last, since = _failures.get(name, (None, 0))
        if last is not None and now - last < REPEAT_LOG_INTERVAL:
            _failures[name] = (last, since + 1)
            return
        _failures[name] = (now, 0)
    if last is None:
        log.exception(
            "observer %r raised on a %s event; it is skipped for this event and localqueue goes on",
            name,
            event.kind,
        )
    else:
        log.warning(
            "observer %r raised again (%d more failures in the last minute, latest on a %s event)",
            name,
            since + 1,
            event.kind,
        )


plugins.on_change(invalidate)
