"""Observability events: what the queue and the worker tell observers.

Every event is a small frozen record handed to the ``localqueue_event``
hook (docs/observability.md). They are built only when an observer is
installed, so a process with none pays for nothing but one check.

Common fields: ``queue``; ``message_id`` and ``attempt`` (the delivery
number, 0 before the first delivery) when the event is about one message;
``worker_id`` (the leasing worker, or the producing queue's ``host:pid``
for puts); ``at``, when this process saw it (``time.time()``, so that
building an event never asks a networked store for its clock). Times
inside the record (``created_at``, ``leased_until``) are store-clock times.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from localqueue.store import ErrorInfo

__all__ = [
    "EVENT_TYPES",
    "Acked",
    "BreakerClosed",
    "BreakerOpened",
    "DeadLettered",
    "Enqueued",
    "Event",
    "HandlerFinished",
    "LeaseExpired",
    "LeaseExtended",
    "Leased",
    "Released",
    "Requeued",
    "WorkerStarted",
    "WorkerStopped",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Fields every event has; ``kind`` names the event type in logs."""

    kind: ClassVar[str] = "event"

    queue: str
    message_id: int | None
    attempt: int | None
    worker_id: str | None
    at: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"event": kind, ...fields}``; errors become dicts."""
        out: dict[str, Any] = {"event": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.as_dict() if isinstance(value, ErrorInfo) else value
        return out


@dataclass(frozen=True, slots=True)
class Enqueued(Event):
    """``put``/``put_many`` stored a message (``deduplicated``: an existing
    message with the same dedupe key was returned instead; nothing was added)."""

    kind: ClassVar[str] = "enqueued"

    priority: int = 0
    delay: float = 0.0
    deduplicated: bool = False


@dataclass(frozen=True, slots=True)
class Leased(Event):
    """``get`` handed out a delivery. ``waited`` is seconds from the put to
    this lease (store clock), including any delay and earlier attempts.
    ``first``: this is the message's first delivery ever (attempt 1, and it
    has no recorded error: a requeued dead letter starts again at attempt 1
    but keeps its latest error)."""

    kind: ClassVar[str] = "leased"

    created_at: float = 0.0
    leased_until: float = 0.0
    waited: float = 0.0
    first: bool = False


@dataclass(frozen=True, slots=True)
class Acked(Event):
    """A delivery was acknowledged: the message left the store."""

    kind: ClassVar[str] = "acked"


@dataclass(frozen=True, slots=True)
class Released(Event):
    """A delivery was given back for another attempt after ``delay`` seconds
    (``error``: the failure kept as its latest error, if one was given)."""

    kind: ClassVar[str] = "released"

    delay: float = 0.0
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class DeadLettered(Event):
    """A delivery became a dead letter: given up on, or released on its last attempt."""

    kind: ClassVar[str] = "dead_lettered"

    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Requeued(Event):
    """A dead letter went back to ready with a fresh attempt budget (``attempt`` is 0)."""

    kind: ClassVar[str] = "requeued"

    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class LeaseExpired(Event):
    """A delivery's lease expired, and someone found out.

    With ``operation`` ``ack``, ``release``, ``dead_letter`` or ``extend``:
    its holder, still alive, found the lease gone when it tried that
    operation; ``worker_id`` is that holder. With ``operation`` ``claim``: a
    ``get`` took the message over from the expired lease (its holder crashed
    or stalled; the store said so through ``MessageRecord.reclaimed``);
    ``worker_id`` is the worker that took it over, and a ``leased`` event for
    the new delivery follows - or, when that was the message's last allowed
    attempt, a ``dead_lettered`` event (the claim made it a dead letter;
    every store reports those in ``ClaimResult.dead_lettered``). ``attempt``
    is the delivery whose lease expired.
    """

    kind: ClassVar[str] = "lease_expired"

    operation: str = ""


@dataclass(frozen=True, slots=True)
class LeaseExtended(Event):
    """A lease was extended (by the worker's heartbeat or ``extend_lease``)."""

    kind: ClassVar[str] = "lease_extended"

    leased_until: float = 0.0


@dataclass(frozen=True, slots=True)
class WorkerStarted(Event):
    """A worker's ``run()`` began (``message_id`` and ``attempt`` are None)."""

    kind: ClassVar[str] = "worker_started"

    concurrency: int = 1


@dataclass(frozen=True, slots=True)
class WorkerStopped(Event):
    """A worker's ``run()`` ended, with what it did (its ``WorkerSummary``)."""

    kind: ClassVar[str] = "worker_stopped"

    processed: int = 0
    acked: int = 0
    released: int = 0
    dead: int = 0
    lease_lost: int = 0
    aborted: bool = False


@dataclass(frozen=True, slots=True)
class HandlerFinished(Event):
    """The handler returned or raised for one delivery, and the worker recorded
    the result. ``duration`` is the handler's run time in seconds (monotonic
    clock), without the ack, release or dead letter that followed;
    ``outcome`` is ``acked``, ``released``, ``dead`` or ``lease_lost``;
    ``error_type`` the exception's class name when it raised."""

    kind: ClassVar[str] = "handler_finished"

    duration: float = 0.0
    outcome: str = ""
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class BreakerOpened(Event):
    """A worker's circuit breaker opened: ``failures`` consecutive failures
    (at least its threshold; more when a half-open trial failed) stop its
    fetching for ``cooldown`` seconds, until ``open_until`` (store clock).
    ``message_id`` and ``attempt`` are the delivery whose failure
    opened it."""

    kind: ClassVar[str] = "breaker_opened"

    failures: int = 0
    cooldown: float = 0.0
    open_until: float = 0.0


@dataclass(frozen=True, slots=True)
class BreakerClosed(Event):
    """A worker's open (or half-open) circuit breaker closed: a job succeeded,
    and fetching goes on as normal. ``message_id`` and ``attempt`` are that
    delivery."""

    kind: ClassVar[str] = "breaker_closed"


EVENT_TYPES: tuple[type[Event], ...] = (
    Enqueued,
    Leased,
    Acked,
    Released,
    DeadLettered,
    Requeued,
    LeaseExpired,
    LeaseExtended,
    WorkerStarted,
    WorkerStopped,
    HandlerFinished,
    BreakerOpened,
    BreakerClosed,
)
