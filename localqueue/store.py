"""The Store protocol and the records it speaks in.

A store keeps messages for many named queues and implements the delivery
contract (docs/guarantees.md). The protocol is domain-level and batch-first
so that it maps onto one statement per operation on SQLite, PostgreSQL
(``FOR UPDATE SKIP LOCKED``) and Redis (Lua scripts) alike; docs/stores.md
shows that mapping. Payloads are opaque bytes: serialization belongs to the
queue, never to the store.

Time: every decision about leases and delays uses the store's own clock
(``store.clock``), so a store shared by many processes has one notion of now.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from localqueue.clock import Clock


class State(str, enum.Enum):
    """Where a message is in its life. Acked messages leave the store."""

    READY = "ready"  # claimable now
    DELAYED = "delayed"  # claimable once available_at has passed
    INFLIGHT = "inflight"  # leased to a worker until leased_until
    DEAD = "dead"  # dead letter, kept until requeued or purged

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ErrorInfo:
    """The latest failure of a message, kept across restarts."""

    type: str
    message: str
    traceback: str | None = None  # tail of the formatted traceback
    at: float | None = None  # when it happened (store clock)

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "at": self.at,
        }


@dataclass(frozen=True)
class NewMessage:
    """One message to enqueue."""

    payload: bytes
    delay: float = 0.0
    priority: int = 0
    dedupe_key: str | None = None


class MessageRecord(NamedTuple):
    """A message as the store holds it.

    ``available_at`` is when a ready or delayed message becomes claimable;
    for an inflight message it equals ``leased_until``. ``receipt`` is the
    fencing token of the current delivery and is None unless inflight.
    (A NamedTuple rather than a dataclass: records are made on every put
    and get, and tuples are several times cheaper to build.)
    """

    id: int
    queue: str
    payload: bytes
    state: State
    priority: int
    attempts: int
    created_at: float
    available_at: float
    leased_until: float | None = None
    leased_by: str | None = None
    receipt: str | None = None
    last_error: ErrorInfo | None = None
    failed_at: float | None = None
    dedupe_key: str | None = None
    # True only on a record returned by ``claim`` for a message that was
    # inflight under a lease that had expired (its holder crashed or
    # stalled): not for a fresh, released or requeued message. Optional for
    # stores; one that never sets it just never reports reclaims.
    reclaimed: bool = False


class Lease(NamedTuple):
    """Names one delivery: a message id and the receipt it was handed with."""

    id: int
    receipt: str


@dataclass(frozen=True)
class MessageFilter:
    """Narrows listings, requeues and purges. Empty fields do not filter.

    ``failed_after`` / ``older_than`` are absolute store-clock times /
    durations in seconds; age is measured from ``failed_at`` for dead
    letters and from ``created_at`` otherwise.
    """

    ids: Sequence[int] | None = None
    error_contains: str | None = None
    error_type: str | None = None
    min_attempts: int | None = None
    failed_after: float | None = None
    older_than: float | None = None


@dataclass(frozen=True)
class QueueStats:
    """Counts for one queue at one instant of the store clock."""

    queue: str
    ready: int = 0
    delayed: int = 0
    inflight: int = 0
    dead: int = 0
    oldest_ready_age: float | None = None  # seconds since the oldest ready message became available
    inflight_by_worker: Mapping[str, int] = field(default_factory=dict)
    # Workers that announced themselves on this queue and have not stopped
    # cleanly: worker id -> time of its last heartbeat (store clock).
    workers: Mapping[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.ready + self.delayed + self.inflight + self.dead

    def as_dict(self) -> dict[str, object]:
        return {
            "queue": self.queue,
            "ready": self.ready,
            "delayed": self.delayed,
            "inflight": self.inflight,
            "dead": self.dead,
            "total": self.total,
            "oldest_ready_age": self.oldest_ready_age,
            "inflight_by_worker": dict(self.inflight_by_worker),
            "workers": dict(self.workers),
        }


@runtime_checkable
class Store(Protocol):
    """What every store implements. All methods are safe to call from threads.

    Fenced operations (``ack``, ``release``, ``dead_letter``, ``extend``)
    act only on a delivery whose receipt is current and whose lease has not
    expired; they return the leases that were *not* current, and leave those
    messages unchanged.
    """

    clock: Clock
    url: str

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> list[MessageRecord]:
        """Add messages atomically (all or none) and return their records.

        A message whose ``dedupe_key`` is live in the queue (any state) is not
        added; the existing record is returned in its place.
        """
        ...

    def claim(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> list[MessageRecord]:
        """Lease up to ``limit`` claimable messages to ``worker_id``.

        Claimable: ready, or delayed/inflight whose time has passed. Which
        ones: the first ``limit`` in delivery order (higher priority first,
        then earliest ``available_at``, then lowest id); the returned list is
        sorted by priority, then id. Each claim adds one to ``attempts`` and
        issues a fresh receipt. A message whose lease expired after
        ``max_attempts`` deliveries is dead-lettered instead of handed out.
        """
        ...

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        """Remove the messages of current leases; return the stale leases."""
        ...

    def release(
        self, queue: str, lease: Lease, *, delay: float = 0.0, error: ErrorInfo | None = None
    ) -> bool:
        """Make a leased message claimable again after ``delay`` seconds.

        Returns False (and changes nothing) if the lease is not current.
        """
        ...

    def dead_letter(self, queue: str, lease: Lease, *, error: ErrorInfo | None = None) -> bool:
        """Move a leased message to the dead letters; False if the lease is stale."""
        ...

    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        """Set the lease to end ``seconds`` from now; the new end, or None if stale."""
        ...

    def requeue(
        self,
        queue: str,
        *,
        filter: MessageFilter | None = None,
        delay: float = 0.0,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        """Move matching dead letters back to ready with a fresh attempt budget.

        Returns the ids moved (or that would move, with ``dry_run``).
        """
        ...

    def get(self, queue: str, message_id: int) -> MessageRecord | None:
        """One message by id, or None."""
        ...

    def list_messages(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        """Messages in id order; page with ``after_id`` = last id seen."""
        ...

    def stats(self, queue: str) -> QueueStats:
        """Counts by state for one queue."""
        ...

    def queues(self) -> list[str]:
        """Names of queues that hold at least one message, sorted."""
        ...

    def purge(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> int:
        """Delete matching messages (all states if ``state`` is None); the count."""
        ...

    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        """Note that ``worker_id`` is alive on ``queue`` now (store clock).

        ``stopped=True`` removes the worker: it stopped cleanly. A worker that
        was killed keeps its last heartbeat, which is how operators spot it;
        entries silent for a week are dropped.
        """
        ...

    def wait(self, queue: str, timeout: float) -> None:
        """Block until a message may have become claimable, or ``timeout`` passes.

        Wakes on changes by any process and when the earliest delayed or
        leased message of ``queue`` comes due. Spurious wake-ups are allowed.
        """
        ...

    def check(self) -> list[str]:
        """Integrity problems found (empty when healthy)."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...


@runtime_checkable
class ReportsNewMessages(Protocol):
    """Optional: an enqueue that also says which messages it added.

    ``added[i]`` is False when ``records[i]`` is an existing message returned
    for its dedupe key (or a repeat of a key earlier in the same batch).
    Observability uses it to tell a dedupe hit from a new message exactly;
    for a store without it, localqueue compares creation times with the
    store clock instead, which a networked store's clock may blur.
    """

    def enqueue_reporting(
        self, queue: str, messages: Sequence[NewMessage]
    ) -> tuple[list[MessageRecord], list[bool]]: ...


@runtime_checkable
class ReportsClaimDeadLetters(Protocol):
    """Optional: a claim that also returns the messages it dead-lettered.

    A message whose lease expired on its last allowed attempt is
    dead-lettered by the next claim instead of being handed out (the
    contract). ``claim_reporting`` is ``claim`` plus those records (state
    DEAD, with their ``LeaseExpired`` error), so that observers can count
    them: nobody else ever sees that moment.
    """

    def claim_reporting(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> tuple[list[MessageRecord], list[MessageRecord]]: ...


def check_queue_name(queue: str) -> str:
    """Queue names are non-empty UTF-8 strings without control characters."""
    if not isinstance(queue, str) or not queue.strip():
        raise ValueError(f"queue name must be a non-empty string, got {queue!r}")
    if any(ord(ch) < 32 for ch in queue) or len(queue) > 200 or not _is_utf8(queue):
        raise ValueError(f"queue name must be printable and at most 200 characters, got {queue!r}")
    return queue


def check_dedupe_key(key: str | None) -> str | None:
    """Dedupe keys are None or non-empty UTF-8 strings without NUL."""
    if key is None:
        return None
    if not isinstance(key, str) or not key or "\x00" in key or not _is_utf8(key):
        raise ValueError(
            f"dedupe_key must be None or a non-empty text without NUL characters, got {key!r}"
        )
    return key


def check_message_id(value: object, argument: str = "message id") -> int:
    """Message ids are positive 64-bit integers."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise ValueError(f"{argument} must be a positive integer id, got {value!r}")
    return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def check_seconds(name: str, value: float, *, positive: bool = False) -> float:
    """Durations are finite numbers >= 0 (or > 0); the error names the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_priority(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"priority must be an integer, got {value!r}")
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"priority must fit in 32 bits, got {value!r}")
    return value
