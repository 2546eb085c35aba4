"""The records a store speaks in: states, messages, leases, filters, counts.

Plain values with no behaviour beyond formatting, shared by the protocol,
the queue and every store. Payloads are opaque bytes: serialization belongs
to the queue, never to the store.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


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


class NewMessage(NamedTuple):
    """One message to enqueue. (A NamedTuple, as MessageRecord: one is made
    on every put, and a frozen dataclass costs several times more to build.)"""

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


class ClaimResult(NamedTuple):
    """What one ``claim`` did: the deliveries it made and the dead letters it made.

    ``leased`` holds the records handed out, sorted by priority (highest
    first), then id (which ones were chosen follows delivery order:
    priority, then ``available_at``, then id). A message
    whose lease expired after its last allowed attempt is dead-lettered by
    the claim that finds it instead of being handed out (the contract);
    ``dead_lettered`` holds those records (state DEAD, with their
    ``LeaseExpired`` error) so observers can count a moment nobody else sees.
    """

    leased: list[MessageRecord]
    dead_lettered: list[MessageRecord]


class EnqueueResult(NamedTuple):
    """What one ``enqueue`` did: a record per message given, and whether it was added.

    ``added[i]`` is False when ``records[i]`` is an existing message returned
    for its dedupe key (or a repeat of a key earlier in the same batch).
    """

    records: list[MessageRecord]
    added: list[bool]
