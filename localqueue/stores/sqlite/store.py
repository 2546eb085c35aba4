"""The reference store: one SQLite file shared by the threads and processes of a machine.

Design (docs/stores.md has the long form):

* WAL journal, ``synchronous=NORMAL`` by default (``FULL`` on request), a busy
  timeout, and every multi-statement write under ``BEGIN IMMEDIATE``.
  Single-statement writes run in SQLite's implicit transaction, which takes
  the write lock when the statement starts, exactly like BEGIN IMMEDIATE.
* One ``available_at`` column is both "delayed until" and "leased until", so
  an expired lease is claimable with no sweep and no extra scan.
* The claim is one statement: a skip scan finds the highest priority level
  with a message due (one index seek per level), then ``UPDATE ... WHERE id
  IN (SELECT ... ORDER BY available_at LIMIT n) RETURNING`` takes them with a
  range seek on the partial claim index. Delayed and leased messages are
  outside the range, so the cost does not grow with the backlog, ready or
  delayed.
* A blocking wait watches ``PRAGMA data_version`` (a shared-memory read) with
  a short backoff, and is woken at once by writes from the same process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from localqueue.clock import Clock, SystemClock
from localqueue.errors import StoreError, StoreNotFound
from localqueue.store import (
    ClaimResult,
    EnqueueResult,
    ErrorInfo,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    SettleAction,
    Settlement,
    SettleResult,
    State,
    batch_order,
    check_positive_int,
    differences_as_problems,
)
from localqueue.store.helpers import (
    INFLIGHT,
    QUEUED,
    WORKER_FORGET_AFTER,
    derived_state,
)
from localqueue.stores.sqlite import faults, schema
from localqueue.stores.sqlite.connections import (
    ThreadConnections,
    busy_timeout_ms,
    canonical_path,
    check_busy_timeout,
    open_in_this_process,
    read_only_uri,
    translate_error,
    url_path,
)
from localqueue.stores.sqlite.counts import (
    COUNTS_VERSION,
    FOLD_EVERY,
    WATERMARK_SQL,
    SQLiteCounts,
)
from localqueue.stores.sqlite.finished import SQLiteFinished
from localqueue.stores.sqlite.importing import SQLiteImport
from localqueue.stores.sqlite.maintenance import SQLiteMaintenance
from localqueue.stores.sqlite.retention import SQLiteRetention, install_archive_trigger
from localqueue.stores.sqlite.statements import (
    ACK_SQL,
    CLAIM_SQL,
    COLUMNS,
    DEAD_COUNT_SQL,
    EXTEND_SQL,
    HIGH_WATER_SQL,
    INFLIGHT_BY_WORKER_SQL,
    INSERT_SQL,
    INSERT_WITH_ID_SQL,
    NEXT_DUE_SQL,
    OLDEST_READY_SQL,
    QUEUES_SQL,
    STATE_SQL,
    STATS_SQL,
    filter_sql,
    settle_statement,
)

SYNCHRONOUS_MODES = ("NORMAL", "FULL")
MIN_SQLITE_VERSION = (3, 35, 0)
# Priorities are 32-bit (store.check_priority); the claim starts below this.
PRIORITY_CEILING = 2**31
DEFAULT_BUSY_TIMEOUT = 10.0
# Blocking waits poll data_version from 0.5 ms up to this, so a put by another
# process is seen within about 5 ms while an idle waiter costs ~200 reads/s.
MAX_POLL_INTERVAL = 0.005


class _Notifier:
    """Wakes waiters in this process at once when a write makes work available."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.generation = 0
        self.waiters = 0

    def notify(self) -> None:
        # Reading `waiters` without the lock is deliberate: a waiter that
        # registers just after this check still sees the commit through
        # PRAGMA data_version within one poll interval.
        if self.waiters:
            with self.condition:
                self.generation += 1
                self.condition.notify_all()


_notifiers: dict[str, _Notifier] = {}
_notifiers_lock = threading.Lock()


def _notifier_for(path: Path) -> _Notifier:
    with _notifiers_lock:
        return _notifiers.setdefault(str(path), _Notifier())


class SQLiteStore(SQLiteCounts, SQLiteFinished, SQLiteMaintenance, SQLiteRetention, SQLiteImport):
    """The SQLite reference store. Thread-safe; many processes may share the file.

    ``create=False`` refuses a missing file instead of creating it, and
    ``migrate=False`` opens an older schema as it is instead of migrating it:
    together they are how maintenance commands look at a file without
    changing it (such a store is for maintenance, not for queue work).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        synchronous: str = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        create: bool = True,
        migrate: bool = True,
    ) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StoreError(
                f"the SQLite store needs SQLite {'.'.join(map(str, MIN_SQLITE_VERSION))} or newer "
                f"(for RETURNING); this Python uses {sqlite3.sqlite_version}: upgrade Python or "
                "its SQLite library"
            )
        self.path = canonical_path(path)
        self.clock: Clock = clock or SystemClock()
        sync = synchronous.upper()
        if sync not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self.synchronous = sync
        self.busy_timeout = check_busy_timeout(busy_timeout)
        # Percent-encoded: open_store(store.url) reopens this very file.
        self.url = f"sqlite://{url_path(self.path)}"
        self._notifier = _notifier_for(self.path)
        self._create = create
        self._migrate = migrate
        self._counted_upto = -1  # not known yet (see SQLiteCounts._has_counts)
        self._high_at_open = 0
        self._open_file()
        self._pool = ThreadConnections(self.path, self._configure, self.busy_timeout)
        if self._migrate:
            self._catch_up_on_open()

    # -- opening -------------------------------------------------------------

    def _open_file(self) -> None:
        """Check, then initialise or migrate the file, before any pragma writes to it."""
        if not open_in_this_process(self.path):  # verified when it was opened, and see there
            schema.check_header(self.path)
        if not self._create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise StoreNotFound(f"no store at {self.path}: the file does not exist or is empty")
        if not self.path.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise translate_error(sqlite3.OperationalError(str(exc)), self.path, 0) from exc
        if self.path.exists() and self.path.stat().st_size > 0:
            # Identify an existing file through a read-only connection: closing
            # a read-write one would checkpoint a pending WAL into a file we
            # may be about to refuse, and that file must stay as it was.
            action = self._identify()
            if action == "ok" or (action == "migrate" and not self._migrate):
                return
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        try:
            app_id, version, objects = schema.read_identity(conn, self.path)
            action = schema.verify_identity(self.path, app_id, version, objects)
            if action == "init":
                # WAL is a property of the file; set it before the first table.
                self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            if action != "ok":
                self._retry_busy(lambda: schema.migrate(conn, self.path))
            self._read_watermark(conn)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        finally:
            conn.close()

    def _catch_up_on_open(self) -> None:
        """Fold what a migration (or a process that died before folding) left
        fresh, so stats stay cheap; a file just migrated to kept counts is
        folded here, in short transactions (``store migrate`` shows progress)."""
        if self._counted_upto >= 0 and self._high_at_open - self._counted_upto >= FOLD_EVERY:
            self.catch_up()

    def _identify(self) -> str:
        try:
            conn = sqlite3.connect(
                read_only_uri(self.path), uri=True, timeout=self.busy_timeout, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        try:
            app_id, version, objects = schema.read_identity(conn, self.path)
            action = schema.verify_identity(self.path, app_id, version, objects)
            if action == "ok" and self._migrate:  # not for a look at a file as found
                self._read_watermark(conn)
            return action
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        finally:
            conn.close()

    def _read_watermark(self, conn: sqlite3.Connection) -> None:
        """Note the counts' watermark and the highest id, on a connection the
        opening uses anyway (a pool connection here would stay behind in the
        opening thread, which may never use the store again)."""
        if conn.execute("PRAGMA user_version").fetchone()[0] < COUNTS_VERSION:
            return
        self._counted_upto = int(conn.execute(f"SELECT {WATERMARK_SQL}").fetchone()[0])
        self._high_at_open = int(conn.execute(f"SELECT {HIGH_WATER_SQL}").fetchone()[0])

    def _retry_busy(self, action: Callable[[], object]) -> None:
        # journal_mode and the first BEGIN can report "locked" without waiting
        # when several processes create the same file at once; retry them.
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.create_function("lq_fold", 1, _casefold, deterministic=True)
        conn.create_function("lq_least", 2, _least, deterministic=True)
        conn.create_function("lq_reclaimed", 1, _note_reclaimed)
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms(self.busy_timeout)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        install_archive_trigger(conn, self._now)

    # -- plumbing ------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now()

    def _record(self, row: Sequence[Any], now: float) -> MessageRecord:
        (
            id_, queue, payload, stored, priority, attempts, created_at, available_at,
            leased_by, receipt, etype, emessage, etraceback, eat, failed_at, dedupe_key,
        ) = row  # fmt: skip
        state = derived_state(stored, available_at, now)
        error = None
        if etype is not None:
            error = ErrorInfo(type=etype, message=emessage or "", traceback=etraceback, at=eat)
        if state is State.INFLIGHT:
            return MessageRecord(
                id_, queue, payload, state, priority, attempts, created_at, available_at,
                available_at, leased_by, receipt, error, failed_at, dedupe_key,
            )  # fmt: skip
        return MessageRecord(
            id_, queue, payload, state, priority, attempts, created_at, available_at,
            None, None, None, error, failed_at, dedupe_key,
        )  # fmt: skip

    # -- protocol --------------------------------------------------------------

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        if not messages:
            return EnqueueResult([], [])
        try:
            if len(messages) == 1 and messages[0].dedupe_key is None:
                result = EnqueueResult(self._enqueue_one(queue, messages[0]), [True])
            elif all(m.dedupe_key is None for m in messages):
                result = EnqueueResult(
                    self._enqueue_keyless(queue, messages), [True] * len(messages)
                )
            else:
                result = self._enqueue_keyed(queue, messages)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        self._notifier.notify()
        if result.records:
            self._maybe_fold(result.records[-1].id)
        return result

    def _enqueue_one(self, queue: str, msg: NewMessage) -> list[MessageRecord]:
        now = self.clock.now()
        available_at = now + msg.delay
        if faults.armed:
            faults.hit("put:before")
        new_id = (
            self._pool.get()
            .execute(INSERT_SQL, (queue, msg.payload, msg.priority, now, available_at, None))
            .lastrowid
        )
        if faults.armed:
            faults.hit("put:after_commit")
        assert new_id is not None
        return [self._new_record(new_id, queue, msg, now)]

    def _new_record(self, id_: int, queue: str, msg: NewMessage, now: float) -> MessageRecord:
        # Compare the sum, not the delay: a delay below the clock's float
        # resolution leaves available_at == now, and the message is ready.
        available_at = now + msg.delay
        return MessageRecord(
            id_, queue, msg.payload, _DELAYED if available_at > now else _READY, msg.priority,
            0, now, available_at, None, None, None, None, None, msg.dedupe_key,
        )  # fmt: skip

    def _enqueue_keyed(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        added = [False] * len(messages)
        with self._pool.transaction() as conn:
            now = self._now()
            out: list[MessageRecord | None] = [None] * len(messages)
            fresh: list[tuple[int, NewMessage]] = []
            seen: dict[str, int] = {}  # dedupe key -> index of its first use in this batch
            keys = list({m.dedupe_key for m in messages if m.dedupe_key is not None})
            existing: dict[str, MessageRecord] = {}
            # Keys are bound as parameters (never through JSON, which would not
            # keep every string intact), in chunks under SQLite's bind limit.
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM lq_messages WHERE queue = ? "
                    f"AND dedupe_key IN ({marks})",
                    (queue, *chunk),
                ).fetchall()
                existing.update((row[15], self._record(row, now)) for row in rows)
            duplicates: list[tuple[int, int]] = []
            for index, msg in enumerate(messages):
                key = msg.dedupe_key
                if key is not None and key in existing:
                    out[index] = existing[key]
                elif key is not None and key in seen:
                    duplicates.append((index, seen[key]))
                else:
                    if key is not None:
                        seen[key] = index
                    fresh.append((index, msg))
            folded = -1
            if fresh:
                records = self._insert_batch(conn, queue, [m for _, m in fresh], now)
                for (index, _), record in zip(fresh, records, strict=True):
                    out[index] = record
                    added[index] = True
                folded = self._fold_within(conn, records[-1].id)
            for index, first_use in duplicates:
                out[index] = out[first_use]
        self._counted_upto = max(self._counted_upto, folded)
        if faults.armed:
            faults.hit("put_many:after_commit")
        return EnqueueResult([record for record in out if record is not None], added)

    def _enqueue_keyless(self, queue: str, messages: Sequence[NewMessage]) -> list[MessageRecord]:
        """The common batch: no dedupe keys, so no lookups and no bookkeeping."""
        with self._pool.transaction() as conn:
            records = self._insert_batch(conn, queue, messages, self._now())
            folded = self._fold_within(conn, records[-1].id)
        self._counted_upto = max(self._counted_upto, folded)
        if faults.armed:
            faults.hit("put_many:after_commit")
        return records

    def _insert_batch(
        self, conn: sqlite3.Connection, queue: str, messages: Sequence[NewMessage], now: float
    ) -> list[MessageRecord]:
        """Insert inside the caller's write transaction and build the records
        without reading the rows back: under the write lock nobody else
        inserts, so the ids above the high-water mark are ours to hand out."""
        first = conn.execute(f"SELECT {HIGH_WATER_SQL}").fetchone()[0] + 1
        conn.executemany(
            INSERT_WITH_ID_SQL,
            [
                (first + i, queue, m.payload, m.priority, now, now + m.delay, m.dedupe_key)
                for i, m in enumerate(messages)
            ],
        )
        if faults.armed:
            faults.hit("put_many:mid")
        return [self._new_record(first + i, queue, m, now) for i, m in enumerate(messages)]

    def claim(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> ClaimResult:
        try:
            return self._claim_on(
                self._pool.get(), queue, worker_id, limit, lease_seconds, max_attempts,
                autocommit=True,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def _claim_on(
        self,
        conn: sqlite3.Connection,
        queue: str,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None,
        *,
        autocommit: bool,
    ) -> ClaimResult:
        """The claim, one statement per priority level. ``autocommit``: each
        statement commits on its own (a plain claim); otherwise they are part
        of the caller's transaction (settle_and_claim)."""
        out: list[MessageRecord] = []
        dead: list[MessageRecord] = []
        max_priority = PRIORITY_CEILING
        # Filled by lq_reclaimed() while CLAIM_SQL runs, in this thread.
        reclaimed: set[int] = set()
        _claim_notes.reclaimed = reclaimed
        while len(out) < limit:
            now = self._now()
            params = {
                "queue": queue,
                "max_priority": max_priority,
                "now": now,
                "until": now + lease_seconds,
                "worker": worker_id,
                "limit": limit - len(out),
                "max": max_attempts,
            }
            try:
                rows = conn.execute(CLAIM_SQL, params).fetchall()
            except sqlite3.Error:
                if autocommit and (out or dead):
                    # Earlier passes committed: return their leases
                    # rather than strand them with nobody holding them.
                    break
                raise
            if autocommit and faults.armed:
                faults.hit("claim:after_commit")
            if not rows:
                break  # nothing due at or below max_priority
            leased = [self._record(r, now) for r in rows if r[3] == INFLIGHT]
            if len(leased) < len(rows):  # the claim dead-lettered exhausted leases
                dead.extend(self._record(r, now) for r in rows if r[3] != INFLIGHT)
            if reclaimed:
                leased = [r._replace(reclaimed=r.id in reclaimed) for r in leased]
            out.extend(leased)
            if len(leased) == len(rows):
                # This level gave all it had due; go on below it.
                max_priority = rows[0][4] - 1
            # else: some were dead-lettered; the same level may hold more.
        if len(out) > 1:
            # RETURNING does not keep the subquery's order; the protocol's batch
            # order is priority (highest first), then id.
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
        """Settle and claim under one BEGIN IMMEDIATE: one commit for both."""
        stale: list[Lease] = []
        released = False
        try:
            with self._pool.transaction() as conn:
                now = self.clock.now()
                for settlement in settlements:
                    if conn.execute(*settle_statement(queue, settlement, now)).rowcount != 1:
                        stale.append(settlement.lease)
                    elif settlement.action is SettleAction.RELEASE:
                        released = True
                if faults.armed:
                    faults.hit("settle_and_claim:mid")
                if stale:
                    claimed = ClaimResult([], [])
                else:
                    claimed = self._claim_on(
                        conn, queue, worker_id, limit, lease_seconds, max_attempts,
                        autocommit=False,
                    )  # fmt: skip
            if faults.armed:
                faults.hit("settle_and_claim:after_commit")
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        if released:
            self._notifier.notify()
        return SettleResult(stale, claimed)

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        stale: list[Lease] = []
        try:
            if len(leases) == 1:
                lease = leases[0]
                if faults.armed:
                    faults.hit("ack:before")
                cursor = self._pool.get().execute(
                    ACK_SQL, (lease.id, queue, lease.receipt, self._now())
                )
                if faults.armed:
                    faults.hit("ack:after_commit")
                if cursor.rowcount != 1:
                    stale.append(lease)
            elif leases:
                with self._pool.transaction() as conn:
                    now = self._now()
                    for lease in leases:
                        cursor = conn.execute(ACK_SQL, (lease.id, queue, lease.receipt, now))
                        if cursor.rowcount != 1:
                            stale.append(lease)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        return stale

    def _fenced(self, sql: str, params: Sequence[Any]) -> bool:
        try:
            return self._pool.get().execute(sql, params).rowcount == 1
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def release(
        self, queue: str, lease: Lease, *, delay: float = 0.0, error: ErrorInfo | None = None
    ) -> bool:
        settlement = Settlement(lease, SettleAction.RELEASE, delay, error)
        done = self._fenced(*settle_statement(queue, settlement, self._now()))
        if faults.armed:
            faults.hit("release:after_commit")
        if done:
            self._notifier.notify()
        return done

    def dead_letter(self, queue: str, lease: Lease, *, error: ErrorInfo | None = None) -> bool:
        settlement = Settlement(lease, SettleAction.DEAD_LETTER, error=error)
        done = self._fenced(*settle_statement(queue, settlement, self._now()))
        if faults.armed:
            faults.hit("dead_letter:after_commit")
        return done

    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        now = self._now()
        until = now + seconds
        done = self._fenced(EXTEND_SQL, [until, lease.id, queue, lease.receipt, now])
        return until if done else None

    def requeue(
        self,
        queue: str,
        *,
        filter: MessageFilter | None = None,
        delay: float = 0.0,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        try:
            with self._pool.transaction() as conn:
                now = self._now()
                params: dict[str, Any] = {
                    "queue": queue,
                    "now": now,
                    "limit": -1 if limit is None else check_positive_int("limit", limit),
                }
                where = "queue = :queue AND state = 2" + filter_sql(filter, params)
                ids = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT id FROM lq_messages WHERE {where} ORDER BY id LIMIT :limit",
                        params,
                    )
                ]
                if ids and not dry_run:
                    conn.execute(
                        "UPDATE lq_messages SET state = 0, attempts = 0, available_at = ?, "
                        "failed_at = NULL WHERE id IN (SELECT value FROM json_each(?))",
                        (now + delay, _json_list(ids)),
                    )
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        if ids and not dry_run:
            self._notifier.notify()
        return ids

    def _read(self, sql: str, params: Any) -> list[Any]:
        try:
            return self._pool.get().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def get(self, queue: str, message_id: int) -> MessageRecord | None:
        now = self._now()
        rows = self._read(
            f"SELECT {COLUMNS} FROM lq_messages WHERE id = ? AND queue = ?", (message_id, queue)
        )
        return self._record(rows[0], now) if rows else None

    def list_messages(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        now = self._now()
        params: dict[str, Any] = {
            "queue": queue,
            "now": now,
            "after": after_id if after_id is not None else -1,
            "limit": limit if limit is not None else -1,
        }
        where = "queue = :queue AND id > :after"
        if state is not None:
            where += f" AND {STATE_SQL[state]}"
        where += filter_sql(filter, params)
        rows = self._read(
            f"SELECT {COLUMNS} FROM lq_messages WHERE {where} ORDER BY id LIMIT :limit", params
        )
        return [self._record(row, now) for row in rows]

    def _counted_stats(self, queue: str) -> QueueStats:
        """Stats by counting the messages, for an older file opened as found
        (schema < 4, no kept counts); SQLiteCounts.stats is the usual path."""
        now = self._now()
        try:
            with self._pool.snapshot() as conn:  # one consistent view for all numbers
                counts = {
                    (stored, due): n for stored, due, n in conn.execute(STATS_SQL, (now, queue))
                }
                dead = conn.execute(DEAD_COUNT_SQL, (queue,)).fetchone()[0]
                oldest = conn.execute(OLDEST_READY_SQL, (queue, now)).fetchone()[0]
                by_worker = dict(conn.execute(INFLIGHT_BY_WORKER_SQL, (queue, now)).fetchall())
                workers = dict(
                    conn.execute(
                        "SELECT worker_id, last_seen FROM lq_workers WHERE queue = ?", (queue,)
                    ).fetchall()
                )
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        return QueueStats(
            queue=queue,
            ready=counts.get((QUEUED, 1), 0) + counts.get((INFLIGHT, 1), 0),
            delayed=counts.get((QUEUED, 0), 0),
            inflight=counts.get((INFLIGHT, 0), 0),
            dead=int(dead),
            oldest_ready_age=None if oldest is None else max(0.0, now - oldest),
            inflight_by_worker={str(k): int(v) for k, v in by_worker.items()},
            workers={str(k): float(v) for k, v in workers.items()},
        )

    def _counted_queues(self) -> list[str]:
        # For an older file opened as found (SQLiteCounts.queues otherwise):
        # jump from one queue name to the next through the two indexes that
        # together hold every message, instead of scanning the messages.
        rows = self._read(QUEUES_SQL, ())
        return [row[0] for row in rows]

    def purge(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> int:
        params: dict[str, Any] = {"queue": queue, "now": self._now()}
        where = "queue = :queue"
        if state is not None:
            where += f" AND {STATE_SQL[state]}"
        where += filter_sql(filter, params)
        try:
            if dry_run:
                with self._pool.connection() as conn:
                    return int(
                        conn.execute(
                            f"SELECT count(*) FROM lq_messages WHERE {where}", params
                        ).fetchone()[0]
                    )
            with self._pool.transaction() as conn:
                # Without a receipt a deleted row is not taken for an ack, so
                # a queue with acked retention does not archive purged messages.
                conn.execute(
                    f"UPDATE lq_messages SET receipt = NULL WHERE {where} AND state = 1", params
                )
                return conn.execute(f"DELETE FROM lq_messages WHERE {where}", params).rowcount
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        now = self._now()
        try:
            with self._pool.transaction() as conn:
                if stopped:
                    conn.execute(
                        "DELETE FROM lq_workers WHERE queue = ? AND worker_id = ?",
                        (queue, worker_id),
                    )
                    return
                conn.execute(
                    "INSERT INTO lq_workers (queue, worker_id, started_at, last_seen) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (queue, worker_id) "
                    "DO UPDATE SET last_seen = excluded.last_seen",
                    (queue, worker_id, now, now),
                )
                conn.execute(
                    "DELETE FROM lq_workers WHERE queue = ? AND last_seen < ?",
                    (queue, now - WORKER_FORGET_AFTER),
                )
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def _next_due(self, conn: sqlite3.Connection, queue: str) -> float | None:
        row = conn.execute(NEXT_DUE_SQL, {"queue": queue}).fetchone()
        return None if row[0] is None else float(row[0])

    def wait(self, queue: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        notifier = self._notifier
        with notifier.condition:
            notifier.waiters += 1
        try:
            with self._pool.connection() as conn:
                while True:
                    with notifier.condition:
                        generation = notifier.generation
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    due = self._next_due(conn, queue)
                    now = self._now()
                    if due is not None and due <= now:
                        return
                    until = deadline
                    if due is not None:
                        until = min(until, time.monotonic() + (due - now))
                    interval = 0.0005
                    while True:
                        remaining = until - time.monotonic()
                        if remaining <= 0:
                            if until < deadline:
                                break  # something came due: re-check
                            return
                        with notifier.condition:
                            if notifier.generation == generation:
                                notifier.condition.wait(min(interval, remaining))
                            if notifier.generation != generation:
                                break
                        if conn.execute("PRAGMA data_version").fetchone()[0] != version:
                            break
                        interval = min(interval * 2, MAX_POLL_INTERVAL)
                    if time.monotonic() >= deadline:
                        return
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        finally:
            with notifier.condition:
                notifier.waiters -= 1

    def check(self) -> list[str]:
        problems: list[str] = []
        with self._pool.connection() as conn:
            try:
                result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            except sqlite3.DatabaseError as exc:
                return [f"integrity check failed: {exc}"]
            if result != ["ok"]:
                problems.extend(f"integrity: {line}" for line in result)
            try:
                for (id_,) in conn.execute(
                    "SELECT id FROM lq_messages WHERE state = 1 AND receipt IS NULL LIMIT 10"
                ):
                    problems.append(f"message {id_} is inflight without a receipt")
                for (id_,) in conn.execute(
                    "SELECT id FROM lq_messages WHERE attempts < 0 OR state NOT IN (0, 1, 2) "
                    "LIMIT 10"
                ):
                    problems.append(f"message {id_} has an impossible state or attempt count")
            except sqlite3.DatabaseError as exc:  # damage the integrity check did not stop at
                problems.append(f"cannot read the messages: {exc}")
        if not problems:  # counting a damaged file would only add noise
            problems.extend(differences_as_problems(self.recount()))
        return problems

    def _imported(self) -> None:
        self._notifier.notify()

    def close(self) -> None:
        self._pool.close()


def _least(a: str | None, b: str | None) -> str | None:
    """The smaller of two queue names, ignoring NULL (SQLite's min() of
    several values is NULL if any is; no sentinel name can stand in for
    NULL, since every printable name is a valid queue name)."""
    if a is None or b is None:
        return a if b is None else b
    return a if a < b else b


# Per thread, as each thread has its own connection: the ids that the claim
# running in this thread took over from an expired lease.
_claim_notes = threading.local()
_READY, _DELAYED = State.READY, State.DELAYED  # module constants: read on every put


def _note_reclaimed(id_: int) -> int:
    """CLAIM_SQL's SET clause calls this, with the old values, for a message
    that was inflight under an expired lease and is leased again; the claim
    marks its record ``reclaimed``. Returns the new state (inflight)."""
    notes: set[int] | None = getattr(_claim_notes, "reclaimed", None)
    if notes is not None:
        notes.add(id_)
    return INFLIGHT


def _casefold(text: str | None) -> str | None:
    return text.casefold() if isinstance(text, str) else text


def _json_list(items: Sequence[object]) -> str:
    return json.dumps(list(items))
