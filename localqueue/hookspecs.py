"""Every hook localqueue calls, typed and documented.

Plugins implement these with ``@localqueue.hookimpl`` and are found through
the ``localqueue`` entry-point group (see docs/plugins.md). The built-in
stores and worker policies register through the very same hooks, so a
third-party plugin is a first-class citizen: nothing in the core
special-cases SQLite, memory or the built-in retry rules.

Hooks that *decide* are ``firstresult``: the first non-None answer wins, and
the built-in answer is registered ``trylast`` so any plugin can override it
(or wrap it, with ``@hookimpl(wrapper=True)``). Hooks that *observe* fan out
to every plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pluggy

__all__ = [
    "PROJECT_NAME",
    "StoreFactory",
    "StoreScheme",
    "hookimpl",
    "hookspec",
    "localqueue_call_handler",
    "localqueue_cli_commands",
    "localqueue_event",
    "localqueue_fetch_delay",
    "localqueue_job_finished",
    "localqueue_retry_decision",
    "localqueue_store_schemes",
]

if TYPE_CHECKING:
    import click

    from localqueue.clock import Clock
    from localqueue.observability.events import Event
    from localqueue.store import Store
    from localqueue.worker.hook_types import (
        Failure,
        FetchGate,
        HandlerCall,
        JobOutcome,
        RetryDecision,
    )

PROJECT_NAME = "localqueue"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class StoreFactory(Protocol):
    """Opens a store for a URL of the scheme it was registered under.

    ``clock`` is given only by tests and tools that need to control time; a
    store that keeps time on a server may refuse it with ValueError.
    """

    def __call__(self, url: str, *, clock: Clock | None = None) -> Store: ...


@dataclass(frozen=True)
class StoreScheme:
    """One URL scheme a plugin serves, e.g. ``sqlite`` for ``sqlite:///...``."""

    scheme: str
    factory: StoreFactory
    description: str = ""
    # Opens only a store that already exists, raising StoreNotFound (and
    # creating nothing) otherwise: for commands that inspect or copy from a
    # store, where a mistyped URL must not make a new, empty one. None: the
    # plugin cannot tell, and ``factory`` is used.
    open_existing: StoreFactory | None = None
    # Opens an existing store and changes nothing on opening it: no file or
    # schema is created and an older schema is not migrated. For maintenance
    # commands that must look before they act (``store info``, ``store
    # migrate --dry-run``). None: ``open_existing`` is used (a store that
    # migrates on open says so in its docs).
    open_as_found: StoreFactory | None = None


@hookspec
def localqueue_store_schemes() -> Sequence[StoreScheme]:  # type: ignore[empty-body]
    """Return the URL schemes this plugin provides stores for.

    Called once per process (the answer is cached), lazily, the first time
    a store URL is resolved; never at import. Every
    scheme must be claimed by exactly one plugin: a scheme two plugins
    return is an error naming both, so a user never gets a store by
    accident of load order. Scheme names are lower case.
    """


@hookspec(firstresult=True)
def localqueue_retry_decision(failure: Failure) -> RetryDecision | None:
    """Decide what happens to a message whose handler raised.

    Return ``RetryDecision.release(delay)`` to try again later or
    ``RetryDecision.dead_letter(reason)`` to give up; return None to leave
    the decision to the next plugin. The built-in policy (``trylast``)
    applies the worker config: ``give_up_on`` exceptions and exhausted
    budgets dead-letter, other failures release after the backoff or the
    release delay. A message on its last attempt that is released anyway
    becomes a dead letter (the store's budget rule), unless the config turns
    dead-lettering off.
    """


@hookspec
def localqueue_fetch_delay(gate: FetchGate) -> float | None:
    """Seconds the worker should wait before it fetches the next message.

    Every plugin is asked and the worker waits for the longest answer (None
    or 0 means "fetch now"): unlike a decision, every gate must hold, so
    pacing and a circuit breaker both get their say. Called before each
    fetch, in the handler thread; keep it fast. The built-in pacing
    (``min_interval``) and circuit breaker answer through this hook.
    """


@hookspec(firstresult=True)
def localqueue_call_handler(call: HandlerCall) -> object:
    """Run the user's handler for one message and return its result.

    The built-in implementation (``trylast``) simply returns
    ``call.call()``. Wrap it with ``@hookimpl(wrapper=True)`` to time,
    trace, rate-limit or retry in place; an exception that escapes counts
    as the job's failure and goes to ``localqueue_retry_decision``.
    """


@hookspec
def localqueue_job_finished(outcome: JobOutcome) -> None:
    """A delivery is over: acked, released, dead-lettered, or its lease lost.

    Observers fan out; one that raises is logged and never stops the worker.
    The built-in circuit breaker counts consecutive failures here.
    """


@hookspec
def localqueue_event(event: Event) -> None:
    """Observe one event from a queue or a worker (see localqueue.events).

    Called synchronously in the thread that caused the event (a put, a
    get, an ack, the heartbeat, a worker loop), once per event, so keep it
    fast: count, log, or hand off to a queue of your own. Observers fan
    out; one that raises is logged on ``localqueue.observers`` and never
    stops the put, the get or the worker. Events are only built while at
    least one plugin implements this hook.
    """


@hookspec
def localqueue_cli_commands(cli: click.Group) -> None:
    """Add commands to the ``localqueue`` command line.

    Called each time the CLI is built (once per invocation), with the root
    click group; add a command or a group with ``cli.add_command(...)``.
    The harness adds ``harness`` this way and metrics plugins add
    ``metrics``. Commands get the shared state (store URL, --debug) with
    ``click.get_current_context().find_object(localqueue.cli.app.CliState)``.
    """
