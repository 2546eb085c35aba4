"""The built-in circuit breaker: after ``breaker_threshold`` consecutive
failures a worker stops fetching for ``breaker_cooldown`` seconds.

After the cooldown one job is let through (half-open): success closes the
breaker, failure opens it again for another cooldown. Failures here are jobs
released or dead-lettered; a lost lease is not the handler's fault and does
not count.

Opening and closing are each logged in one line on ``localqueue.worker`` and
sent as ``breaker_opened`` / ``breaker_closed`` events.
"""

from __future__ import annotations

import logging

from localqueue.hookspecs import hookimpl
from localqueue.observability import worker_events
from localqueue.observability.observers import listening
from localqueue.worker.hook_types import FetchGate, JobOutcome, Outcome

# The worker's logger: a breaker belongs to one worker, and operators
# already watch this logger for its warnings.
log = logging.getLogger("localqueue.worker")

FAILURES = "breaker.consecutive_failures"
OPEN_UNTIL = "breaker.open_until"


@hookimpl
def localqueue_fetch_delay(gate: FetchGate) -> float | None:
    if gate.worker.config.breaker_threshold is None:
        return None
    with gate.worker.lock:
        open_until = gate.worker.state.get(OPEN_UNTIL)
    if open_until is not None and gate.now < open_until:
        return float(open_until - gate.now)
    return None


@hookimpl
def localqueue_job_finished(outcome: JobOutcome) -> None:
    config = outcome.worker.config
    threshold, cooldown = config.breaker_threshold, config.breaker_cooldown
    if threshold is None or cooldown is None or outcome.outcome is Outcome.LEASE_LOST:
        return
    worker = outcome.worker
    state = worker.state
    opened_until: float | None = None
    with worker.lock:
        if outcome.succeeded:
            state[FAILURES] = 0
            closed = state.pop(OPEN_UNTIL, None) is not None
        else:
            closed = False
            failures = int(state.get(FAILURES, 0)) + 1
            state[FAILURES] = failures
            if failures >= threshold:
                # Open (or, after a failed half-open trial, re-open) the breaker.
                previous = state.get(OPEN_UNTIL)
                state[OPEN_UNTIL] = outcome.finished_at + cooldown
                # A job that was already running when the breaker opened and
                # fails meanwhile extends the cooldown: no new opening to tell.
                if previous is None or outcome.finished_at >= previous:
                    opened_until = outcome.finished_at + cooldown
    # Told outside the lock: observers and log handlers may be slow.
    if opened_until is not None:
        _tell_opened(outcome, failures, cooldown, opened_until)
    elif closed:
        _tell_closed(outcome)


def _tell_opened(outcome: JobOutcome, failures: int, cooldown: float, open_until: float) -> None:
    worker, message = outcome.worker, outcome.message
    log.warning(
        "circuit breaker of worker %s on queue %r opened after %d consecutive failures "
        "(latest: message %s); fetching nothing for %gs",
        worker.worker_id,
        worker.queue,
        failures,
        message.id,
        cooldown,
    )
    observers = listening()
    if observers:
        worker_events.breaker_opened(
            observers, worker.worker_id, message, failures, cooldown, open_until
        )


def _tell_closed(outcome: JobOutcome) -> None:
    worker, message = outcome.worker, outcome.message
    # At the level of the opening, so whoever saw the breaker open sees it close.
    log.warning(
        "circuit breaker of worker %s on queue %r closed: message %s succeeded; fetching again",
        worker.worker_id,
        worker.queue,
        message.id,
    )
    observers = listening()
    if observers:
        worker_events.breaker_closed(observers, worker.worker_id, message)


def is_open(state: dict[str, object], now: float) -> bool:
    """For tests and tools: whether a worker's breaker is open at ``now``."""
    open_until = state.get(OPEN_UNTIL)
    return isinstance(open_until, float) and now < open_until
