"""Copying messages between stores, e.g. a SQLite backlog into PostgreSQL.

A store that can take messages *as they are* - same ids, states, attempt
counts, times, errors and dedupe keys - implements :class:`SupportsImport`,
an optional capability beside the Store protocol (like the maintenance
ones in :mod:`localqueue.store.capabilities`). :func:`copy_messages` reads the
source through the ordinary protocol (``queues`` and ``list_messages``), checks
the whole copy against the destination first, then imports in batches.

What a copy keeps and what it cannot: every field of every message in every
state, except the receipt of an inflight message - a receipt belongs to a
delivery made by the source store. An inflight message arrives inflight,
leased to the same worker until the same time, under a new receipt nobody
holds, so it is delivered again once that lease ends (at least once). A
lease that had already expired arrives as a ready message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from localqueue.errors import StoreError
from localqueue.store.capabilities import SupportsImport
from localqueue.store.protocol import Store
from localqueue.store.records import MessageRecord, State
from localqueue.store.url import redact_url

BATCH = 1000


@dataclass
class CopyReport:
    source: str
    destination: str
    dry_run: bool
    # queue -> state -> messages copied (or that would be, with dry_run)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(sum(states.values()) for states in self.counts.values())

    def as_dict(self) -> dict[str, object]:
        totals = {state.value: 0 for state in State}
        for states in self.counts.values():
            for name, n in states.items():
                totals[name] += n
        return {
            "source": self.source,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "queues": self.counts,
            "totals": totals,
            "total": self.total,
        }


def _batches(store: Store, queues: Sequence[str]) -> Iterator[list[MessageRecord]]:
    for queue in queues:
        after: int | None = None
        while True:
            page = store.list_messages(queue, after_id=after, limit=BATCH)
            if not page:
                break
            yield page
            after = page[-1].id


class CopyConflict(StoreError):
    """The destination already holds some of the messages being copied."""


def copy_messages(
    source: Store,
    destination: Store | None,
    *,
    queues: Sequence[str] | None = None,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
    destination_url: str = "",
) -> CopyReport:
    """Copy every message of ``queues`` (default: all) from ``source`` to ``destination``.

    Checks every message against the destination before copying any, and
    raises CopyConflict listing the first conflicts if there are any.
    ``progress`` is called with the number of messages copied so far. A dry
    run may pass ``destination=None`` for a store that does not exist yet
    (nothing can conflict with it), naming it by ``destination_url``.
    """
    if destination is None:
        if not dry_run:
            raise ValueError("a copy needs a destination store; only a dry run may omit it")
        report = CopyReport(source.url, destination_url, dry_run)
        for batch in _batches(source, list(queues) if queues else source.queues()):
            for record in batch:
                states = report.counts.setdefault(record.queue, {s.value: 0 for s in State})
                states[record.state.value] += 1
        return report
    if not isinstance(destination, SupportsImport):
        raise StoreError(
            f"store {redact_url(destination.url)!r} cannot take copied messages (it does not "
            "implement import_messages, the SupportsImport capability); copy into a store that does"
        )
    names = list(queues) if queues else source.queues()
    report = CopyReport(source.url, destination.url, dry_run)
    conflicts: list[str] = []
    for batch in _batches(source, names):
        for record in batch:
            states = report.counts.setdefault(record.queue, {s.value: 0 for s in State})
            states[record.state.value] += 1
        if len(conflicts) < 5:
            conflicts.extend(destination.import_conflicts(batch))
    if conflicts:
        shown = "; ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise CopyConflict(
            f"refusing to copy: the destination {redact_url(destination.url)} already holds "
            f"some of these messages ({shown}); copy into an empty store, or purge those "
            "queues there first"
        )
    if dry_run:
        return report
    copied = 0
    for batch in _batches(source, names):
        try:
            destination.import_messages(batch)
        except StoreError as exc:
            raise StoreError(
                f"{exc}; {copied} message(s) had been copied before this failure"
            ) from exc
        copied += len(batch)
        if progress is not None:
            progress(copied)
    return report
