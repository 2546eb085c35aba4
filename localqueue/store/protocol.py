"""The Store protocol: what every store implements.

A store keeps messages for many named queues and implements the delivery
contract (docs/guarantees.md). The protocol is domain-level and batch-first
so that it maps onto one statement per operation on SQLite, PostgreSQL
(``FOR UPDATE SKIP LOCKED``) and Redis (Lua scripts) alike; docs/stores.md
shows that mapping.

Time: every decision about leases and delays uses the store's own clock
(``store.clock``), so a store shared by many processes has one notion of now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from localqueue.clock import Clock
from localqueue.store.records import (
    ClaimResult,
    EnqueueResult,
    ErrorInfo,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    State,
)


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

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        """Add messages atomically (all or none); a record for each, and which were added.

        A message whose ``dedupe_key`` is live in the queue (any state) is not
        added: the existing record is returned in its place with ``added``
        False, and so is a repeat of a key used earlier in the same batch.
        ``records`` has one entry per message, in the order given.
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
    ) -> ClaimResult:
        """Lease up to ``limit`` claimable messages to ``worker_id``.

        Claimable: ready, or delayed/inflight whose time has passed. Which
        ones: the first ``limit`` in delivery order (higher priority first,
        then earliest ``available_at``, then lowest id); ``leased`` is sorted
        by priority (highest first), then id. Each claim adds one to
        ``attempts`` and issues a fresh receipt; a record taken over from an
        expired lease has ``reclaimed`` True. A message whose lease expired
        after ``max_attempts`` deliveries is dead-lettered instead of handed
        out, and returned in ``dead_lettered``.
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
