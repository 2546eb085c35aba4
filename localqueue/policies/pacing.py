"""The built-in pacing policy: at least ``min_interval`` seconds between job
starts, per worker (each handler thread of a worker shares the pace)."""

from __future__ import annotations

from localqueue.hookspecs import hookimpl
from localqueue.worker.hook_types import FetchGate

STATE_KEY = "pacing.next_start"


@hookimpl
def localqueue_fetch_delay(gate: FetchGate) -> float | None:
    interval = gate.worker.config.min_interval
    if interval <= 0:
        return None
    worker = gate.worker
    with worker.lock:
        next_start = worker.state.get(STATE_KEY)
        if next_start is not None and gate.now < next_start:
            return float(next_start - gate.now)
        # Reserve this slot now, so concurrent handler threads space out too.
        worker.state[STATE_KEY] = gate.now + interval
        return None
