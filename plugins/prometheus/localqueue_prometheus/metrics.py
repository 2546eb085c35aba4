"""The event-driven metrics: counters and histograms, one set per process.

They live in prometheus_client's default registry, so an application that
already serves it (``prometheus_client.start_http_server``) exports them
with no extra code. With ``PROMETHEUS_MULTIPROC_DIR`` set (before the
process starts), prometheus_client keeps every value in a file of that
directory instead, and ``localqueue metrics serve`` adds up the files of
every process, so the counters of many worker processes are one number.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from localqueue.observability.events import (
    Acked,
    DeadLettered,
    Enqueued,
    Event,
    HandlerFinished,
    Leased,
    LeaseExpired,
    Released,
)

# Handlers from a few milliseconds to minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Waits from "picked up at once" to "sat there for an hour".
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)

ENQUEUED = Counter(
    "localqueue_enqueued", "Messages added by put/put_many (dedupe hits excluded).", ["queue"]
)
ACKED = Counter("localqueue_acked", "Deliveries acknowledged.", ["queue"])
RELEASED = Counter("localqueue_released", "Deliveries released for another attempt.", ["queue"])
DEAD_LETTERED = Counter(
    "localqueue_dead_lettered",
    "Deliveries made dead letters by a worker or a client (the store's own "
    'dead-lettering of expired last attempts is in localqueue_messages{state="dead"}).',
    ["queue"],
)
LEASE_EXPIRED = Counter(
    "localqueue_lease_expired",
    "Expired leases: found by their live holder (heartbeat, ack or release refused; "
    'found_by="holder"), or taken over by a get (found_by="claim").',
    ["queue", "found_by"],
)
HANDLER_DURATION = Histogram(
    "localqueue_handler_duration_seconds",
    "Seconds a worker's handler ran, by how the job ended.",
    ["queue", "outcome"],
    buckets=DURATION_BUCKETS,
)
TIME_TO_START = Histogram(
    "localqueue_time_to_start_seconds",
    "Seconds from put to the first delivery (any delay included; a requeued "
    "dead letter is not counted again).",
    ["queue"],
    buckets=WAIT_BUCKETS,
)

ALL = (ENQUEUED, ACKED, RELEASED, DEAD_LETTERED, LEASE_EXPIRED, HANDLER_DURATION, TIME_TO_START)


def record(event: Event) -> None:
    """Count one event. Kinds without a metric are ignored."""
    if isinstance(event, Leased):
        if event.first:
            TIME_TO_START.labels(event.queue).observe(event.waited)
    elif isinstance(event, Acked):
        ACKED.labels(event.queue).inc()
    elif isinstance(event, HandlerFinished):
        HANDLER_DURATION.labels(event.queue, event.outcome).observe(event.duration)
    elif isinstance(event, Enqueued):
        if not event.deduplicated:
            ENQUEUED.labels(event.queue).inc()
    elif isinstance(event, Released):
        RELEASED.labels(event.queue).inc()
    elif isinstance(event, DeadLettered):
        DEAD_LETTERED.labels(event.queue).inc()
    elif isinstance(event, LeaseExpired):
        LEASE_EXPIRED.labels(event.queue, "claim" if event.operation == "claim" else "holder").inc()
