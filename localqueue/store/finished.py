"""Finished counts: how many messages each queue has acked and dead-lettered, ever.

Counts of waiting messages (:mod:`localqueue.store.counts`) say how deep a
queue is, not how fast it drains: a queue that takes 100 new messages a
minute and finishes 100 stays level either way. Throughput needs a tally of
what finished. A store that keeps one offers :class:`SupportsFinishedCounts`:
running totals per queue that only grow, updated in the transaction that
acks or dead-letters, so the difference between two readings is exactly
what finished in between. A reader (the web dashboard, a metrics exporter)
samples them and divides by the time; a store without the capability is
simply not asked, and the reader says it cannot show throughput.

What counts: an ack of a current lease (alone, in ``ack_many`` or in a
settle-and-claim) is *acked*; a dead-letter of a current lease, or a
message whose lease expired on its last attempt and was dead-lettered by a
claim, is *dead-lettered*. A purge, a requeue, retention and count repairs
never change either total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class FinishedCounts:
    """Running totals for one queue since the store began keeping them."""

    queue: str
    acked: int = 0
    dead_lettered: int = 0


@runtime_checkable
class SupportsFinishedCounts(Protocol):
    def finished_counts(self) -> list[FinishedCounts]:
        """The totals of every queue that has finished a message, sorted by queue name.

        Totals never decrease (they survive reopening the store and the
        queue emptying); a queue that never finished one may be left out.
        The cost grows with the number of queues, not with the messages.
        """
        ...


def finished_by_queue(store: object) -> dict[str, FinishedCounts] | None:
    """The store's finished counts by queue, or None when it keeps none."""
    if not isinstance(store, SupportsFinishedCounts):
        return None
    return {counts.queue: counts for counts in store.finished_counts()}
