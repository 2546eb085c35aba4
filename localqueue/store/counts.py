"""Counts at any backlog: the optional capabilities and the fallback every caller uses.

``Store.stats(queue)`` is all the protocol asks for, and a simple store
answers it by counting its messages. A store that keeps its counts (the
SQLite and PostgreSQL stores do, in the same transaction as the messages
they count) can answer for every queue at once at a cost that does not grow
with the backlog: that is :class:`SupportsAllStats`. One that keeps counts
can also be asked to count again and compare, or to rebuild them:
:class:`SupportsRecount`, behind ``localqueue store check [--repair]``.

Callers that want every queue's stats (``queue list``, a metrics exporter, a
dashboard) call :func:`all_stats`, which uses the capability when the store
has it and ``stats`` per queue otherwise, so a store that owes neither keeps
working unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from localqueue.store.protocol import Store
from localqueue.store.records import QueueStats


@dataclass(frozen=True)
class CountDifference:
    """One kept count that disagrees with a recount of the messages.

    ``kind`` names what is counted in the store's own terms (for the SQLite
    store: ``live`` (ready, delayed or inflight), ``dead`` or
    ``acked_archived``).
    """

    queue: str
    kind: str
    kept: int
    counted: int

    def __str__(self) -> str:
        return (
            f"queue {self.queue!r}: {self.kept} {self.kind} message(s) counted in the kept "
            f"counts, {self.counted} in the messages"
        )


@runtime_checkable
class SupportsAllStats(Protocol):
    def all_stats(self) -> list[QueueStats]:
        """Stats of every queue that holds a message, sorted by queue name.

        Equal to ``[self.stats(q) for q in self.queues()]`` taken at one
        instant of the store clock, at a cost that grows with the number of
        queues (and with the messages not yet due), not with the ready backlog.
        """
        ...


@runtime_checkable
class SupportsRecount(Protocol):
    def recount(self, *, repair: bool = False) -> list[CountDifference]:
        """Count every message and compare with the kept counts; the differences.

        With ``repair``, the kept counts are replaced by the recount in the
        same transaction, and the differences that were corrected are returned.
        Reads every message: meant for ``store check``, not for monitoring.
        """
        ...


def all_stats(store: Store) -> list[QueueStats]:
    """Every queue's stats, through the store's fast path when it has one."""
    if isinstance(store, SupportsAllStats):
        return store.all_stats()
    return [store.stats(queue) for queue in store.queues()]


def differences_as_problems(differences: Sequence[CountDifference]) -> list[str]:
    """``Store.check()`` lines for count differences, one each, saying how to fix them.

    A store that keeps counts appends these to its other problems, so
    ``localqueue store check`` reads the same on every such store.
    """
    return [
        f"counts: {difference}; run 'localqueue store check --repair' to rebuild them"
        for difference in differences
    ]
