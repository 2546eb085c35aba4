"""Settle deliveries and claim the next ones, in one transaction where the store can.

A worker that acks a job and then claims the next pays two write
transactions per job; SQLite has one writer and PostgreSQL a commit per
transaction, so that second commit is most of the cost of a fast job.
``settle_and_claim`` applies settlements (ack, release or dead-letter, each
fenced by its lease's receipt, exactly as the single operations are) and
then claims, as one operation:

* a store that offers :class:`SupportsSettleAndClaim` does both in one
  transaction (SQLite: one ``BEGIN IMMEDIATE``; PostgreSQL: one round trip);
* any other store gets :func:`settle_then_claim`, the same calls one after
  the other. That is correct too: a crash between the two halves leaves the
  settlements made and nothing claimed, which loses nothing and hands
  nothing out twice.

The claim happens only if every settlement was current. A stale one (its
lease expired, or another delivery took over) is reported and nothing is
claimed, so that a caller who learns that it lost a lease is not also
holding new leases it did not expect; the current settlements in the same
call are applied either way.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from localqueue.store.protocol import Store
from localqueue.store.records import ClaimResult, ErrorInfo, Lease

__all__ = [
    "SettleAction",
    "SettleResult",
    "Settlement",
    "SupportsSettleAndClaim",
    "settle_and_claim",
    "settle_then_claim",
]


class SettleAction(enum.Enum):
    """How a delivery is settled: the three fenced ways to end a lease."""

    ACK = "ack"
    RELEASE = "release"
    DEAD_LETTER = "dead_letter"


class Settlement(NamedTuple):
    """One delivery to settle. ``delay`` is for RELEASE, ``error`` for
    RELEASE and DEAD_LETTER (as ``Store.release`` and ``Store.dead_letter``
    take them)."""

    lease: Lease
    action: SettleAction = SettleAction.ACK
    delay: float = 0.0
    error: ErrorInfo | None = None


class SettleResult(NamedTuple):
    """What ``settle_and_claim`` did: the leases that were stale (those
    settlements changed nothing), and the claim, empty when any was stale."""

    stale: list[Lease]
    claimed: ClaimResult


@runtime_checkable
class SupportsSettleAndClaim(Protocol):
    """A store that settles deliveries and claims the next in one transaction."""

    def settle_and_claim(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> SettleResult:
        """Apply the current settlements, then, if none was stale, claim as
        ``Store.claim`` does; all in one transaction."""
        ...


def settle_then_claim(
    store: Store,
    queue: str,
    settlements: Sequence[Settlement],
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    max_attempts: int | None = None,
) -> SettleResult:
    """The default for stores without the capability: the single operations in turn."""
    stale: list[Lease] = []
    acks = [s.lease for s in settlements if s.action is SettleAction.ACK]
    if acks:
        stale.extend(store.ack(queue, acks))
    for settlement in settlements:
        if settlement.action is SettleAction.RELEASE:
            done = store.release(
                queue, settlement.lease, delay=settlement.delay, error=settlement.error
            )
        elif settlement.action is SettleAction.DEAD_LETTER:
            done = store.dead_letter(queue, settlement.lease, error=settlement.error)
        else:
            continue
        if not done:
            stale.append(settlement.lease)
    if stale:
        return SettleResult(stale, ClaimResult([], []))
    claimed = store.claim(
        queue,
        worker_id=worker_id,
        limit=limit,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
    )
    return SettleResult([], claimed)


def settle_and_claim(
    store: Store,
    queue: str,
    settlements: Sequence[Settlement],
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    max_attempts: int | None = None,
) -> SettleResult:
    """One transaction where ``store`` offers it, else :func:`settle_then_claim`."""
    if isinstance(store, SupportsSettleAndClaim):
        return store.settle_and_claim(
            queue,
            settlements,
            worker_id=worker_id,
            limit=limit,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
        )
    return settle_then_claim(
        store,
        queue,
        settlements,
        worker_id=worker_id,
        limit=limit,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
    )
