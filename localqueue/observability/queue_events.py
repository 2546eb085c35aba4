"""Builds the events of PersistentQueue operations (only when observers listen).

Kept beside queue.py rather than in it so the queue reads as the API it is;
every function here is called after the store has answered, with the
observers that :func:`localqueue.observability.observers.listening` returned.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from localqueue.message import Message
from localqueue.observability.events import (
    Acked,
    DeadLettered,
    Enqueued,
    Leased,
    LeaseExpired,
    LeaseExtended,
    Released,
    Requeued,
)
from localqueue.observability.observers import Observer, emit
from localqueue.store import ErrorInfo, MessageRecord, NewMessage


def enqueued(
    observers: tuple[Observer, ...],
    worker_id: str,
    new: Sequence[NewMessage],
    records: Sequence[MessageRecord],
    added: Sequence[bool],
) -> None:
    """One event per message given; ``added`` (from the store) tells a dedupe
    hit, an existing message returned for its key, from a new message."""
    at = time.time()
    for spec, record, was_added in zip(new, records, added, strict=True):
        event = Enqueued(
            record.queue,
            record.id,
            record.attempts,
            worker_id,
            at,
            spec.priority,
            spec.delay,
            not was_added,
        )
        emit(observers, event)


def leased(
    observers: tuple[Observer, ...],
    worker_id: str,
    lease_seconds: float,
    records: Iterable[MessageRecord],
) -> None:
    at = time.time()
    for r in records:
        if r.reclaimed:  # the delivery before this one ended by expiry
            emit(observers, LeaseExpired(r.queue, r.id, r.attempts - 1, worker_id, at, "claim"))
        until = r.leased_until if r.leased_until is not None else r.available_at
        # The store set the lease to end lease_seconds after its now: that is
        # when the delivery started, on the same clock as created_at.
        waited = max(0.0, until - lease_seconds - r.created_at)
        first = r.attempts == 1 and r.last_error is None and r.failed_at is None
        emit(
            observers,
            Leased(r.queue, r.id, r.attempts, worker_id, at, r.created_at, until, waited, first),
        )


def acked(observers: tuple[Observer, ...], worker_id: str, messages: Iterable[Message]) -> None:
    at = time.time()
    for m in messages:
        emit(observers, Acked(m.queue, m.id, m.attempts, worker_id, at))


def lease_expired(
    observers: tuple[Observer, ...], worker_id: str, messages: Iterable[Message], operation: str
) -> None:
    at = time.time()
    for m in messages:
        emit(observers, LeaseExpired(m.queue, m.id, m.attempts, worker_id, at, operation))


def dead_lettered_by_claim(
    observers: tuple[Observer, ...], worker_id: str, records: Iterable[MessageRecord]
) -> None:
    """A claim found these leases expired on their last attempt and made them
    dead letters: each lease expired (found by the claim), then died."""
    at = time.time()
    for r in records:
        emit(observers, LeaseExpired(r.queue, r.id, r.attempts, worker_id, at, "claim"))
        emit(observers, DeadLettered(r.queue, r.id, r.attempts, worker_id, at, r.last_error))


def released(
    observers: tuple[Observer, ...],
    worker_id: str,
    message: Message,
    delay: float,
    error: ErrorInfo | None,
) -> None:
    emit(
        observers,
        Released(message.queue, message.id, message.attempts, worker_id, time.time(), delay, error),
    )


def dead_lettered(
    observers: tuple[Observer, ...], worker_id: str, message: Message, error: ErrorInfo | None
) -> None:
    emit(
        observers,
        DeadLettered(message.queue, message.id, message.attempts, worker_id, time.time(), error),
    )


def extended(
    observers: tuple[Observer, ...], worker_id: str, message: Message, until: float
) -> None:
    emit(
        observers,
        LeaseExtended(message.queue, message.id, message.attempts, worker_id, time.time(), until),
    )


def requeued(
    observers: tuple[Observer, ...], queue: str, worker_id: str, ids: Iterable[int], delay: float
) -> None:
    at = time.time()
    for id_ in ids:
        emit(observers, Requeued(queue, id_, 0, worker_id, at, delay))
