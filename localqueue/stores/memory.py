"""An in-process store: the reference semantics in plain Python.

``memory://`` gives a private store; ``memory://NAME`` a store shared by
every handle in the process that uses the same name (useful in tests and
examples that open a queue twice). Nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from localqueue.clock import Clock, SystemClock
from localqueue.errors import StoreError
from localqueue.hookspecs import StoreScheme, hookimpl
from localqueue.store import (
    ClaimResult,
    EnqueueResult,
    ErrorInfo,
    FinishedCounts,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    Settlement,
    SettleResult,
    State,
    batch_order,
    check_positive_int,
    delivery_order,
    settle_then_claim,
)
from localqueue.store.helpers import (
    DEAD,
    INFLIGHT,
    QUEUED,
    WORKER_FORGET_AFTER,
    derived_state,
    exhausted_error,
    matches,
    new_receipt,
    stored_state,
)

__all__ = [
    "MemoryStore",
    "localqueue_store_schemes",
    "open_memory_store",
]


@dataclass
class _Row:
    id: int
    queue: str
    payload: bytes
    stored: int
    priority: int
    attempts: int
    created_at: float
    available_at: float
    leased_by: str | None = None
    receipt: str | None = None
    last_error: ErrorInfo | None = None
    failed_at: float | None = None
    dedupe_key: str | None = None

    def record(self, now: float, reclaimed: bool = False) -> MessageRecord:
        state = derived_state(self.stored, self.available_at, now)
        inflight = state is State.INFLIGHT
        return MessageRecord(
            id=self.id,
            queue=self.queue,
            payload=self.payload,
            state=state,
            priority=self.priority,
            attempts=self.attempts,
            created_at=self.created_at,
            available_at=self.available_at,
            leased_until=self.available_at if inflight else None,
            leased_by=self.leased_by if inflight else None,
            receipt=self.receipt if inflight else None,
            last_error=self.last_error,
            failed_at=self.failed_at,
            dedupe_key=self.dedupe_key,
            reclaimed=reclaimed,
        )


ACKED, DEAD_LETTERED = 0, 1  # indexes into _Data.finished


class _Data:
    """The shared state behind one or more MemoryStore handles."""

    def __init__(self) -> None:
        self.rows: dict[int, _Row] = {}
        self.dedupe: dict[tuple[str, str], int] = {}
        self.next_id = 1
        self.changed = threading.Condition(threading.RLock())
        self.workers: dict[tuple[str, str], float] = {}
        # Running totals per queue: [acked, dead-lettered] (finished_counts).
        self.finished: dict[str, list[int]] = {}

    def tally(self, queue: str, kind: int) -> None:
        """Count one finished message of ``queue``: kind ACKED or DEAD_LETTERED."""
        self.finished.setdefault(queue, [0, 0])[kind] += 1


_named: dict[str, _Data] = {}
_named_lock = threading.Lock()


class MemoryStore:
    """Thread-safe, single-process store with the full delivery contract."""

    def __init__(self, url: str = "memory://", *, clock: Clock | None = None) -> None:
        self.url = url
        self.clock: Clock = clock or SystemClock()
        name = url.split("://", 1)[1] if "://" in url else ""
        if name:
            with _named_lock:
                self._data = _named.setdefault(name, _Data())
        else:
            self._data = _Data()
        self._closed = False

    # -- helpers -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.url} is closed; open a new one")

    def _queue_rows(self, queue: str) -> list[_Row]:
        return [row for row in self._data.rows.values() if row.queue == queue]

    def _current(self, queue: str, lease: Lease, now: float) -> _Row | None:
        row = self._data.rows.get(lease.id)
        if (
            row is None
            or row.queue != queue
            or row.stored != INFLIGHT
            or row.receipt != lease.receipt
            or row.available_at <= now
        ):
            return None
        return row

    def _delete(self, row: _Row) -> None:
        del self._data.rows[row.id]
        if row.dedupe_key is not None:
            self._data.dedupe.pop((row.queue, row.dedupe_key), None)

    def _notify(self) -> None:
        self._data.changed.notify_all()

    # -- protocol ----------------------------------------------------------

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        self._check_open()
        data = self._data
        with data.changed:
            now = self.clock.now()
            out: list[MessageRecord] = []
            added: list[bool] = []
            for msg in messages:
                if msg.dedupe_key is not None:
                    existing = data.dedupe.get((queue, msg.dedupe_key))
                    if existing is not None:
                        out.append(data.rows[existing].record(now))
                        added.append(False)
                        continue
                row = _Row(
                    id=data.next_id,
                    queue=queue,
                    payload=bytes(msg.payload),
                    stored=QUEUED,
                    priority=msg.priority,
                    attempts=0,
                    created_at=now,
                    available_at=now + msg.delay,
                    dedupe_key=msg.dedupe_key,
                )
                data.next_id += 1
                data.rows[row.id] = row
                if msg.dedupe_key is not None:
                    data.dedupe[(queue, msg.dedupe_key)] = row.id
                out.append(row.record(now))
                added.append(True)
            self._notify()
            return EnqueueResult(out, added)

    def claim(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> ClaimResult:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            due = [r for r in self._queue_rows(queue) if r.stored != DEAD and r.available_at <= now]
            due.sort(key=delivery_order)
            out: list[MessageRecord] = []
            dead: list[MessageRecord] = []
            for row in due:
                if len(out) >= limit:
                    break
                expired = row.stored == INFLIGHT
                if expired and max_attempts is not None and row.attempts >= max_attempts:
                    row.stored, row.failed_at = DEAD, now
                    row.receipt = row.leased_by = None
                    row.last_error = exhausted_error(row.attempts, now)
                    self._data.tally(queue, DEAD_LETTERED)
                    dead.append(row.record(now))
                    continue
                row.stored = INFLIGHT
                row.attempts += 1
                row.available_at = now + lease_seconds
                row.leased_by = worker_id
                row.receipt = new_receipt()
                out.append(row.record(now, reclaimed=expired))
            # The same order the SQLite store returns a batch in.
            out.sort(key=batch_order)
            return ClaimResult(out, dead)

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
        """The single operations under one hold of the (reentrant) lock: no
        other thread sees the settlements without the claim."""
        self._check_open()
        with self._data.changed:
            return settle_then_claim(
                self,
                queue,
                settlements,
                worker_id=worker_id,
                limit=limit,
                lease_seconds=lease_seconds,
                max_attempts=max_attempts,
            )

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            stale: list[Lease] = []
            for lease in leases:
                row = self._current(queue, lease, now)
                if row is None:
                    stale.append(lease)
                else:
                    self._delete(row)
                    self._data.tally(queue, ACKED)
            return stale

    def release(
        self, queue: str, lease: Lease, *, delay: float = 0.0, error: ErrorInfo | None = None
    ) -> bool:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            row = self._current(queue, lease, now)
            if row is None:
                return False
            row.stored, row.available_at = QUEUED, now + delay
            row.receipt = row.leased_by = None
            if error is not None:
                row.last_error = error
            self._notify()
            return True

    def dead_letter(self, queue: str, lease: Lease, *, error: ErrorInfo | None = None) -> bool:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            row = self._current(queue, lease, now)
            if row is None:
                return False
            row.stored, row.failed_at, row.available_at = DEAD, now, now
            row.receipt = row.leased_by = None
            if error is not None:
                row.last_error = error
            self._data.tally(queue, DEAD_LETTERED)
            return True

    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            row = self._current(queue, lease, now)
            if row is None:
                return None
            row.available_at = now + seconds
            return row.available_at

    def requeue(
        self,
        queue: str,
        *,
        filter: MessageFilter | None = None,
        delay: float = 0.0,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            chosen = [
                row
                for row in sorted(self._queue_rows(queue), key=lambda r: r.id)
                if row.stored == DEAD and matches(filter, row.record(now), now)
            ][: None if limit is None else check_positive_int("limit", limit)]
            if not dry_run:
                for row in chosen:
                    row.stored, row.attempts, row.available_at = QUEUED, 0, now + delay
                    row.failed_at = None
                self._notify()
            return [row.id for row in chosen]

    def get(self, queue: str, message_id: int) -> MessageRecord | None:
        self._check_open()
        with self._data.changed:
            row = self._data.rows.get(message_id)
            if row is None or row.queue != queue:
                return None
            return row.record(self.clock.now())

    def list_messages(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            out = []
            for row in sorted(self._queue_rows(queue), key=lambda r: r.id):
                if after_id is not None and row.id <= after_id:
                    continue
                record = row.record(now)
                if state is not None and record.state is not state:
                    continue
                if not matches(filter, record, now):
                    continue
                out.append(record)
                if limit is not None and len(out) >= limit:
                    break
            return out

    def finished_counts(self) -> list[FinishedCounts]:
        self._check_open()
        with self._data.changed:
            return [
                FinishedCounts(queue, acked, dead)
                for queue, (acked, dead) in sorted(self._data.finished.items())
            ]

    def stats(self, queue: str) -> QueueStats:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            counts = dict.fromkeys(State, 0)
            oldest: float | None = None
            by_worker: dict[str, int] = {}
            for row in self._queue_rows(queue):
                record = row.record(now)
                counts[record.state] += 1
                if record.state is State.READY:
                    oldest = row.available_at if oldest is None else min(oldest, row.available_at)
                elif record.state is State.INFLIGHT and record.leased_by is not None:
                    by_worker[record.leased_by] = by_worker.get(record.leased_by, 0) + 1
            return QueueStats(
                queue=queue,
                ready=counts[State.READY],
                delayed=counts[State.DELAYED],
                inflight=counts[State.INFLIGHT],
                dead=counts[State.DEAD],
                oldest_ready_age=None if oldest is None else max(0.0, now - oldest),
                inflight_by_worker=by_worker,
                workers={w: seen for (q, w), seen in self._data.workers.items() if q == queue},
            )

    def queues(self) -> list[str]:
        self._check_open()
        with self._data.changed:
            return sorted({row.queue for row in self._data.rows.values()})

    def purge(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> int:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            doomed = [
                row
                for row in self._queue_rows(queue)
                if (state is None or row.record(now).state is state)
                and matches(filter, row.record(now), now)
            ]
            if not dry_run:
                for row in doomed:
                    self._delete(row)
            return len(doomed)

    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        self._check_open()
        with self._data.changed:
            workers = self._data.workers
            if stopped:
                workers.pop((queue, worker_id), None)
                return
            now = self.clock.now()
            workers[(queue, worker_id)] = now
            for key, seen in list(workers.items()):
                if key[0] == queue and seen < now - WORKER_FORGET_AFTER:
                    del workers[key]

    def wait(self, queue: str, timeout: float) -> None:
        self._check_open()
        with self._data.changed:
            now = self.clock.now()
            upcoming = [
                r.available_at
                for r in self._queue_rows(queue)
                if r.stored != DEAD and r.available_at > now
            ]
            if any(r.stored != DEAD and r.available_at <= now for r in self._queue_rows(queue)):
                return
            if upcoming:
                timeout = min(timeout, max(0.0, min(upcoming) - now))
            if timeout > 0:
                # Condition.wait overflows on absurd timeouts; a day is plenty,
                # callers loop anyway.
                self._data.changed.wait(min(timeout, 86_400.0))

    def check(self) -> list[str]:
        problems = []
        with self._data.changed:
            for row in self._data.rows.values():
                if row.stored == INFLIGHT and row.receipt is None:
                    problems.append(f"message {row.id} is inflight without a receipt")
                if row.attempts < 0:
                    problems.append(f"message {row.id} has negative attempts")
        return problems

    # -- import (localqueue.store.copy.SupportsImport) -------------------------

    def import_conflicts(self, records: Sequence[MessageRecord]) -> list[str]:
        self._check_open()
        with self._data.changed:
            return import_conflicts(self._data, records)

    def import_messages(self, records: Sequence[MessageRecord]) -> None:
        self._check_open()
        with self._data.changed:
            problems = import_conflicts(self._data, records)
            if problems:
                raise StoreError(f"cannot import into {self.url}: {problems[0]}")
            for record in records:
                state = stored_state(record)
                self._data.rows[record.id] = _Row(
                    record.id, record.queue, record.payload, state, record.priority,
                    record.attempts, record.created_at, record.available_at,
                    record.leased_by if state == INFLIGHT else None,
                    new_receipt() if state == INFLIGHT else None,
                    record.last_error, record.failed_at, record.dedupe_key,
                )  # fmt: skip
                if record.dedupe_key is not None:
                    self._data.dedupe[(record.queue, record.dedupe_key)] = record.id
                self._data.next_id = max(self._data.next_id, record.id + 1)
            self._data.changed.notify_all()

    def close(self) -> None:
        self._closed = True


def import_conflicts(data: _Data, records: Sequence[MessageRecord]) -> list[str]:
    problems = []
    for record in records:
        if record.id in data.rows:
            problems.append(f"message id {record.id} exists")
        elif record.dedupe_key is not None and (record.queue, record.dedupe_key) in data.dedupe:
            problems.append(f"dedupe key {record.dedupe_key!r} is live in queue {record.queue!r}")
    return problems


def open_memory_store(url: str, *, clock: Clock | None = None) -> MemoryStore:
    return MemoryStore(url, clock=clock)


@hookimpl
def localqueue_store_schemes() -> list[StoreScheme]:
    return [
        StoreScheme(
            "memory",
            open_memory_store,
            "in-process store; memory://NAME is shared within the process",
        )
    ]
