"""JsonFileStore: the delivery contract over one JSON file (``jsonfile://``).

A teaching store: every operation is a read-modify-write of the whole file
under an exclusive lock (see :mod:`localqueue_jsonstore.jsonfile`), so each
method below is the contract written out in plain Python, with no query
language in between. It is O(n) per operation in the number of messages in
the file (about 15 ms per put with 1,000 messages in it): fine for a small
queue, wrong for a busy one (use SQLite or PostgreSQL there).

It imports only public localqueue names (``localqueue.store``), as any
third-party store must.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from localqueue.store import (
    DEAD,
    INFLIGHT,
    QUEUED,
    WORKER_FORGET_AFTER,
    ClaimResult,
    Clock,
    EnqueueResult,
    ErrorInfo,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    State,
    StoreCorruptError,
    StoreError,
    SystemClock,
    batch_order,
    check_dedupe_key,
    check_positive_int,
    check_priority,
    check_queue_name,
    check_seconds,
    delivery_order,
    derived_state,
    exhausted_error,
    matches,
    new_receipt,
    stored_state,
)
from localqueue_jsonstore.jsonfile import Document, JsonFile, Row

DEFAULT_BUSY_TIMEOUT = 10.0
# wait() polls the file for a new version from FIRST_POLL, doubling up to
# MAX_POLL: another process's put is seen within about 5 ms, and an idle
# waiter costs about 200 stat() calls a second.
FIRST_POLL = 0.0005
MAX_POLL = 0.005


def record(row: Row, now: float, *, reclaimed: bool = False) -> MessageRecord:
    """A row as the protocol shows it at ``now``.

    The user-visible state comes from the kit's :func:`derived_state`, so
    ready/delayed/inflight mean exactly what they mean in every other store.
    Lease fields are shown only while the lease runs.
    """
    state = derived_state(row.stored, row.available_at, now)
    leased = state is State.INFLIGHT
    return MessageRecord(
        id=row.id,
        queue=row.queue,
        payload=row.payload,
        state=state,
        priority=row.priority,
        attempts=row.attempts,
        created_at=row.created_at,
        available_at=row.available_at,
        leased_until=row.available_at if leased else None,
        leased_by=row.leased_by if leased else None,
        receipt=row.receipt if leased else None,
        last_error=row.last_error,
        failed_at=row.failed_at,
        dedupe_key=row.dedupe_key,
        reclaimed=reclaimed,
    )


def current(doc: Document, queue: str, lease: Lease, now: float) -> Row | None:
    """The row a lease names, if the lease is still held: the fence.

    Held means: the message exists in this queue, is stored inflight, still
    carries this receipt, and its lease ends strictly after ``now``. At
    exactly ``leased_until`` the lease is over (and the message claimable),
    as in every built-in store.
    """
    row = doc.rows.get(lease.id)
    if (
        row is None
        or row.queue != queue
        or row.stored != INFLIGHT
        or row.receipt != lease.receipt
        or not row.available_at > now
    ):
        return None
    return row


def _checked(message: NewMessage) -> NewMessage:
    """Bad arguments are ValueError, before anything is written."""
    if not isinstance(message.payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"payload must be bytes, got {type(message.payload).__name__}")
    return NewMessage(
        bytes(message.payload),
        check_seconds("delay", message.delay),
        check_priority(message.priority),
        check_dedupe_key(message.dedupe_key),
    )


class JsonFileStore:
    """Every queue in one JSON file, shared by the threads and processes of a machine.

    ``clock`` decides every lease and delay (the machine's wall clock by
    default; tests inject a ``ManualClock``). ``create=False`` opens only a
    file that already holds a store, and raises ``StoreNotFound`` otherwise,
    creating nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        create: bool = True,
    ) -> None:
        # resolve(): one file, whatever the working directory, and a
        # symlink is followed once here rather than replaced by a write.
        self.path = Path(path).expanduser().resolve()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.url = f"jsonfile://{quote(str(self.path))}"
        busy = check_seconds("busy_timeout", busy_timeout, positive=True)
        self._file = JsonFile(self.path, busy_timeout=busy, create=create)
        self._closed = False

    def _open_file(self) -> JsonFile:
        if self._closed:
            raise StoreError(f"store {self.url} is closed; open it again")
        return self._file

    # -- adding and taking ---------------------------------------------------

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        check_queue_name(queue)
        news = [_checked(m) for m in messages]
        if not news:
            return EnqueueResult([], [])
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            live = {
                r.dedupe_key: r
                for r in doc.rows.values()
                if r.queue == queue and r.dedupe_key is not None
            }
            records: list[MessageRecord] = []
            added: list[bool] = []
            for new in news:
                existing = live.get(new.dedupe_key) if new.dedupe_key is not None else None
                if existing is not None:  # the key is live, in any state: no new message
                    records.append(record(existing, now))
                    added.append(False)
                    continue
                row = Row(
                    id=doc.next_id,
                    queue=queue,
                    payload=new.payload,
                    stored=QUEUED,
                    priority=new.priority,
                    attempts=0,
                    created_at=now,
                    available_at=now + new.delay,
                    dedupe_key=new.dedupe_key,
                )
                doc.next_id += 1
                doc.rows[row.id] = row
                if new.dedupe_key is not None:
                    live[new.dedupe_key] = row  # a repeat later in the batch finds it
                records.append(record(row, now))
                added.append(True)
            doc.changed = True
        return EnqueueResult(records, added)

    def claim(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> ClaimResult:
        check_queue_name(queue)
        check_positive_int("limit", limit)
        check_seconds("lease_seconds", lease_seconds, positive=True)
        if max_attempts is not None:
            check_positive_int("max_attempts", max_attempts)
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            due = [
                r
                for r in doc.rows.values()
                if r.queue == queue and r.stored != DEAD and r.available_at <= now
            ]
            # Which messages: the head of the queue in delivery order.
            due.sort(key=delivery_order)
            leased: list[MessageRecord] = []
            dead: list[MessageRecord] = []
            for row in due:
                if len(leased) == limit:
                    break
                expired = row.stored == INFLIGHT  # due and inflight: its lease ran out
                if expired and max_attempts is not None and row.attempts >= max_attempts:
                    # Its last attempt ended without an answer: a dead letter,
                    # reported to the caller, and the batch goes on filling.
                    row.stored, row.available_at, row.failed_at = DEAD, now, now
                    row.leased_by = row.receipt = None
                    row.last_error = exhausted_error(row.attempts, now)
                    dead.append(record(row, now))
                    continue
                row.stored = INFLIGHT
                row.attempts += 1
                row.available_at = now + lease_seconds
                row.leased_by = worker_id
                row.receipt = new_receipt()
                leased.append(record(row, now, reclaimed=expired))
            doc.changed = bool(leased or dead)
        # The order of the returned batch: priority (highest first), then id.
        leased.sort(key=batch_order)
        return ClaimResult(leased, dead)

    # -- answering a delivery (fenced) ------------------------------------------

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        if not leases:
            return []
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            stale: list[Lease] = []
            for lease in leases:  # in order: a repeated lease finds its message gone
                row = current(doc, queue, lease, now)
                if row is None:
                    stale.append(lease)
                else:
                    del doc.rows[row.id]
                    doc.changed = True
        return stale

    def release(
        self, queue: str, lease: Lease, *, delay: float = 0.0, error: ErrorInfo | None = None
    ) -> bool:
        check_seconds("delay", delay)
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            row = current(doc, queue, lease, now)
            if row is None:
                return False  # stale: nothing written
            row.stored, row.available_at = QUEUED, now + delay
            row.leased_by = row.receipt = None
            if error is not None:
                row.last_error = error
            doc.changed = True
        return True

    def dead_letter(self, queue: str, lease: Lease, *, error: ErrorInfo | None = None) -> bool:
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            row = current(doc, queue, lease, now)
            if row is None:
                return False
            row.stored, row.available_at, row.failed_at = DEAD, now, now
            row.leased_by = row.receipt = None
            if error is not None:
                row.last_error = error
            doc.changed = True
        return True

    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        check_seconds("seconds", seconds, positive=True)
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            row = current(doc, queue, lease, now)
            if row is None:
                return None
            row.available_at = now + seconds
            doc.changed = True
            return row.available_at

    # -- operator work -------------------------------------------------------------

    def requeue(
        self,
        queue: str,
        *,
        filter: MessageFilter | None = None,
        delay: float = 0.0,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        check_seconds("delay", delay)
        if limit is not None:
            check_positive_int("limit", limit)
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            dead = [
                row
                for _, row in sorted(doc.rows.items())
                if row.queue == queue and row.stored == DEAD
            ]
            chosen = [row for row in dead if matches(filter, record(row, now), now)][:limit]
            if not dry_run:
                for row in chosen:  # a fresh attempt budget; the last error stays visible
                    row.stored, row.attempts, row.available_at = QUEUED, 0, now + delay
                    row.failed_at = None
                doc.changed = bool(chosen)
        return [row.id for row in chosen]

    def purge(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> int:
        with self._open_file().transaction() as doc:
            now = self.clock.now()
            doomed = [
                row.id
                for row in doc.rows.values()
                if row.queue == queue
                and (state is None or derived_state(row.stored, row.available_at, now) is state)
                and matches(filter, record(row, now), now)
            ]
            if not dry_run:
                for message_id in doomed:
                    del doc.rows[message_id]
                doc.changed = bool(doomed)
        return len(doomed)

    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        with self._open_file().transaction() as doc:
            workers = doc.workers.setdefault(queue, {})
            if stopped:
                workers.pop(worker_id, None)
            else:
                now = self.clock.now()
                workers[worker_id] = now
                for worker, seen in list(workers.items()):
                    if seen < now - WORKER_FORGET_AFTER:
                        del workers[worker]
            if not workers:
                del doc.workers[queue]
            doc.changed = True

    # -- reading (no lock: a replace is atomic) ---------------------------------------

    def get(self, queue: str, message_id: int) -> MessageRecord | None:
        doc = self._open_file().load()
        row = doc.rows.get(message_id)
        if row is None or row.queue != queue:
            return None
        return record(row, self.clock.now())

    def list_messages(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        doc = self._open_file().load()
        now = self.clock.now()
        out: list[MessageRecord] = []
        for message_id in sorted(doc.rows):
            row = doc.rows[message_id]
            if row.queue != queue or (after_id is not None and message_id <= after_id):
                continue
            found = record(row, now)
            if (state is None or found.state is state) and matches(filter, found, now):
                out.append(found)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def stats(self, queue: str) -> QueueStats:
        doc = self._open_file().load()
        now = self.clock.now()
        counts = dict.fromkeys(State, 0)
        oldest: float | None = None
        by_worker: dict[str, int] = {}
        for row in doc.rows.values():
            if row.queue != queue:
                continue
            found = record(row, now)
            counts[found.state] += 1
            if found.state is State.READY:
                oldest = row.available_at if oldest is None else min(oldest, row.available_at)
            elif found.state is State.INFLIGHT and found.leased_by is not None:
                by_worker[found.leased_by] = by_worker.get(found.leased_by, 0) + 1
        return QueueStats(
            queue=queue,
            ready=counts[State.READY],
            delayed=counts[State.DELAYED],
            inflight=counts[State.INFLIGHT],
            dead=counts[State.DEAD],
            oldest_ready_age=None if oldest is None else max(0.0, now - oldest),
            inflight_by_worker=by_worker,
            workers=dict(doc.workers.get(queue, {})),
        )

    def queues(self) -> list[str]:
        doc = self._open_file().load()
        return sorted({row.queue for row in doc.rows.values()})

    def wait(self, queue: str, timeout: float) -> None:
        """Return when a message of ``queue`` is due, or after ``timeout``.

        No process can signal another through a plain file, so this polls:
        it reads the file, returns if something is due, and otherwise
        sleeps until the earliest delayed or leased message comes due while
        checking (with a short backoff) whether another process has
        written a new version; a new version is read again.
        """
        check_seconds("timeout", timeout)
        deadline = time.monotonic() + timeout
        while True:
            with self._open_file().watching() as (doc, replaced):
                now = self.clock.now()
                due = min(
                    (r.available_at for r in doc.rows.values()
                     if r.queue == queue and r.stored != DEAD),
                    default=None,
                )  # fmt: skip
                if due is not None and due <= now:
                    return
                until = deadline if due is None else min(deadline, time.monotonic() + (due - now))
                interval = FIRST_POLL
                while not replaced():
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        break
                    time.sleep(min(interval, remaining))
                    interval = min(interval * 2, MAX_POLL)
            if time.monotonic() >= deadline:
                return

    def check(self) -> list[str]:
        """Problems in the file; a file that cannot be read is one problem, not a crash."""
        try:
            doc = self._open_file().load()
        except StoreCorruptError as exc:
            return [str(exc)]
        problems: list[str] = []
        keys: set[tuple[str, str]] = set()
        for row in doc.rows.values():
            if row.stored == INFLIGHT and not row.receipt:
                problems.append(f"message {row.id} is inflight without a receipt")
            if row.attempts < 0:
                problems.append(f"message {row.id} has negative attempts")
            if row.id >= doc.next_id:
                problems.append(f"message {row.id} is above the next id {doc.next_id}")
            if row.dedupe_key is not None:
                if (row.queue, row.dedupe_key) in keys:
                    problems.append(f"dedupe key {row.dedupe_key!r} is live twice in {row.queue!r}")
                keys.add((row.queue, row.dedupe_key))
        return problems

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._file.close()

    # -- optional capability: SupportsImport (``localqueue store copy`` into it) --

    def import_conflicts(self, records: Sequence[MessageRecord]) -> list[str]:
        return _conflicts(self._open_file().load(), records)

    def import_messages(self, records: Sequence[MessageRecord]) -> None:
        """Take copied messages as they are, with their ids, all or none.

        An inflight message gets a new receipt: the old one belongs to the
        source store, and nobody holding it can ack here.
        """
        with self._open_file().transaction() as doc:
            problems = _conflicts(doc, records)
            if problems:
                raise StoreError(f"cannot import into {self.url}: {problems[0]}")
            for copied in records:
                stored = stored_state(copied)
                doc.rows[copied.id] = Row(
                    id=copied.id,
                    queue=check_queue_name(copied.queue),
                    payload=bytes(copied.payload),
                    stored=stored,
                    priority=copied.priority,
                    attempts=copied.attempts,
                    created_at=copied.created_at,
                    available_at=copied.available_at,
                    leased_by=copied.leased_by if stored == INFLIGHT else None,
                    receipt=new_receipt() if stored == INFLIGHT else None,
                    last_error=copied.last_error,
                    failed_at=copied.failed_at,
                    dedupe_key=copied.dedupe_key,
                )
                doc.next_id = max(doc.next_id, copied.id + 1)  # new ids stay above
            doc.changed = bool(records)


def _conflicts(doc: Document, records: Sequence[MessageRecord]) -> list[str]:
    keys = {(r.queue, r.dedupe_key) for r in doc.rows.values() if r.dedupe_key is not None}
    problems: list[str] = []
    for copied in records:
        if copied.id in doc.rows:
            problems.append(f"message id {copied.id} exists")
        elif copied.dedupe_key is not None and (copied.queue, copied.dedupe_key) in keys:
            problems.append(f"dedupe key {copied.dedupe_key!r} is live in queue {copied.queue!r}")
    return problems
