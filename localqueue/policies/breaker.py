"""The built-in circuit breaker: after ``breaker_threshold`` consecutive
failures a worker stops fetching for ``breaker_cooldown`` seconds.

After the cooldown one job is let through (half-open): success closes the
breaker, failure opens it again for another cooldown. Failures here are jobs
released or dead-lettered; a lost lease is not the handler's fault and does
not count.
"""

from __future__ import annotations

from localqueue.hookspecs import hookimpl
from localqueue.worker.hook_types import FetchGate, JobOutcome, Outcome

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
    state = outcome.worker.state
    with outcome.worker.lock:
        if outcome.succeeded:
            state[FAILURES] = 0
            state.pop(OPEN_UNTIL, None)
            return
        failures = int(state.get(FAILURES, 0)) + 1
        state[FAILURES] = failures
        if failures >= threshold:
            # Open (or, after a failed half-open trial, re-open) the breaker.
            state[OPEN_UNTIL] = outcome.finished_at + cooldown


def is_open(state: dict[str, object], now: float) -> bool:
    """For tests and tools: whether a worker's breaker is open at ``now``."""
    open_until = state.get(OPEN_UNTIL)
    return isinstance(open_until, float) and now < open_until
