"""PostgresStore: the delivery contract on PostgreSQL, for workers on many hosts.

Design (docs/postgres.md has the long form):

* Time comes from the server: every statement reads ``now()`` there (or the
  injected test clock), never a worker's clock.
* One ``available_at`` column is both "delayed until" and "leased until", as
  in the SQLite store, so an expired lease is claimable with no sweep and no
  leader.
* The claim is one statement: ``SELECT ... ORDER BY priority DESC,
  available_at, id LIMIT n FOR UPDATE SKIP LOCKED`` inside ``UPDATE ...
  RETURNING``, served by a partial index on the non-dead rows; concurrent
  claimers skip each other's rows instead of queueing behind them.
* ack, release, extend and dead-letter are fenced by the receipt: 0 rows
  changed means the lease is no longer held.
* Autocommit connections, one per thread: no transaction stays open between
  calls, which is what keeps a busy queue table vacuumable.
* No native ``settle_and_claim``: one ``WITH`` statement (re-planned on
  every call) measured slower than the queue's default (the ack, then the
  claim, two autocommit statements), and a transaction (two more round
  trips) no faster; docs/postgres.md has the numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from localqueue.store import (
    EXPIRED_ERROR_TYPE,
    INFLIGHT,
    WORKER_FORGET_AFTER,
    ClaimResult,
    Clock,
    EnqueueResult,
    ErrorInfo,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    ServerClock,
    State,
    StoreError,
    batch_order,
    check_positive_int,
    derived_state,
    differences_as_problems,
    matches,
)
from localqueue_postgres import counts, importing, sql
from localqueue_postgres.connections import Conn, ThreadConnections
from localqueue_postgres.filters import needs_python, where_sql
from localqueue_postgres.finished import PostgresFinished, purge_sql
from localqueue_postgres.schema import ensure_schema
from localqueue_postgres.sql import storable
from localqueue_postgres.url import parse_postgres_url
from localqueue_postgres.waiting import Changes, Listener

# Rows read per round when a filter must be finished in Python.
PAGE = 500


def _statements(schema: str) -> dict[str, str]:
    names = [
        *("ENQUEUE_ONE", "ENQUEUE_MANY", "ENQUEUE_PLAIN", "ENQUEUE_NOW", "NOTIFY", "BY_KEYS"),
        "CLAIM",
        *("ACK_ONE", "ACK_MANY"),
        *("RELEASE", "DEAD_LETTER", "EXTEND", "REQUEUE", "NEXT_DUE", "QUEUES"),
        *("HEARTBEAT", "WORKER_STOPPED"),
    ]
    return {name: getattr(sql, name).format(s=schema) for name in names}


class PostgresStore(counts.PostgresCounts, PostgresFinished):
    """The PostgreSQL store. Thread-safe; any number of processes and hosts may share it.

    ``stats``, ``all_stats`` and ``recount`` (kept counts) come from
    :class:`localqueue_postgres.counts.PostgresCounts`.
    """

    def __init__(self, url: str, *, clock: Clock | None = None, create: bool = True) -> None:
        parsed = parse_postgres_url(url)
        self.url = parsed.display_url
        self.schema = parsed.schema
        self.notify = parsed.notify
        self.poll_interval = parsed.poll_interval
        self._test_clock = clock
        # Quoted, so that a schema named like a keyword ("order") works.
        self._qschema = f'"{self.schema}"'
        self._sql = _statements(self._qschema)
        self._claim_by_limit: dict[int, str] = {}
        self._table = f"{self._qschema}.lq_messages"
        self._count_sql = counts.statements(self._qschema)
        self._unfolded = 0
        self._unfolded_lock = threading.Lock()
        self._channel = f"lq_{self.schema}"[:63]
        self._conns = ThreadConnections(parsed.conninfo, self.url, prepare=parsed.prepare)
        self._conns.run(
            "open", lambda conn: ensure_schema(conn, self.schema, self.url, create=create)
        )
        self.clock: Clock = clock if clock is not None else ServerClock(self._server_time)
        self._changes = Changes()
        self._listener = (
            Listener(parsed.conninfo, self.url, self._channel, self._changes, parsed.prepare)
            if self.notify
            else None
        )

    # -- plumbing ------------------------------------------------------------

    def _params(self, **values: Any) -> dict[str, Any]:
        values["now"] = self._test_clock.now() if self._test_clock is not None else None
        return values

    def _server_time(self) -> float:
        def read(conn: Conn) -> float:
            row = conn.execute(sql.SERVER_TIME).fetchone()
            assert row is not None
            return float(row[0])

        return self._conns.run("reading the server clock", read, read_only=True)

    def _rows(
        self,
        operation: str,
        query: str,
        params: dict[str, Any],
        *,
        read_only: bool = False,
    ) -> list[tuple[Any, ...]]:
        def action(conn: Conn) -> list[tuple[Any, ...]]:
            # Every query given here returns rows. (Asking the cursor for its
            # description would build a Column object per column per call:
            # measurable on the claim, which returns 17.)
            return conn.execute(query, params).fetchall()

        return self._conns.run(operation, action, read_only=read_only)

    def _count(self, operation: str, query: str, params: dict[str, Any]) -> int:
        def action(conn: Conn) -> int:
            return conn.execute(query, params).rowcount

        return self._conns.run(operation, action)

    @staticmethod
    def _record(row: Sequence[Any], now: float, reclaimed: bool = False) -> MessageRecord:
        (
            id_, queue, payload, stored, priority, attempts, created_at, available_at,
            leased_by, receipt, etype, emessage, etraceback, eat, failed_at, dedupe_key,
        ) = row[:16]  # fmt: skip
        state = derived_state(stored, available_at, now)
        error = None
        if etype is not None:
            error = ErrorInfo(type=etype, message=emessage or "", traceback=etraceback, at=eat)
        if state is State.INFLIGHT:
            return MessageRecord(
                id_, queue, bytes(payload), state, priority, attempts, created_at, available_at,
                available_at, leased_by, receipt, error, failed_at, dedupe_key, reclaimed,
            )  # fmt: skip
        return MessageRecord(
            id_, queue, bytes(payload), state, priority, attempts, created_at, available_at,
            None, None, None, error, failed_at, dedupe_key,
        )  # fmt: skip

    @staticmethod
    def _new_record(
        id_: int, queue: str, msg: NewMessage, created_at: float, available_at: float
    ) -> MessageRecord:
        state = State.DELAYED if available_at > created_at else State.READY
        return MessageRecord(
            id_, queue, msg.payload, state, msg.priority, 0, created_at, available_at,
            None, None, None, None, None, msg.dedupe_key,
        )  # fmt: skip

    def _claim_sql(self, limit: int) -> str:
        text = self._claim_by_limit.get(limit)
        if text is None:
            text = self._sql["CLAIM"].format(limit=int(limit))
            if len(self._claim_by_limit) < 64:  # batch sizes are few; do not grow forever
                self._claim_by_limit[limit] = text
        return text

    def _changed(self, queue: str) -> None:
        self._changes.bump(queue)

    # -- protocol --------------------------------------------------------------

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        if not messages:
            return EnqueueResult([], [])
        if len(messages) == 1 and messages[0].dedupe_key is None:
            msg = messages[0]
            [(id_, created, available, _)] = self._rows(
                "put",
                self._sql["ENQUEUE_ONE"],
                self._params(
                    queue=queue,
                    payload=msg.payload,
                    priority=msg.priority,
                    delay=msg.delay,
                    channel=self._channel,
                ),
            )
            result = EnqueueResult([self._new_record(id_, queue, msg, created, available)], [True])
        elif all(msg.dedupe_key is None for msg in messages):
            result = self._enqueue_plain(queue, messages)
        else:
            result = self._conns.run(
                "put_many", lambda conn: self._enqueue_many(conn, queue, messages)
            )
        self._changed(queue)
        self._wrote()
        return result

    def _enqueue_plain(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        """A batch without dedupe keys: one statement, every message added.
        With no delay and no priority anywhere (the commonest batch) it
        sends the payloads alone (ENQUEUE_NOW)."""
        params = self._params(
            queue=queue, payloads=[m.payload for m in messages], channel=self._channel
        )
        if all(not m.priority and not m.delay for m in messages):
            statement = self._sql["ENQUEUE_NOW"]  # rows: id, created_at
        else:
            statement = self._sql["ENQUEUE_PLAIN"]  # rows: id, created_at, available_at
            params["priorities"] = [int(m.priority) for m in messages]
            params["delays"] = [float(m.delay) for m in messages]
        rows = self._rows("put_many", statement, params)
        # Ids rise in input order (ORDER BY ord). A row's last column is when
        # its message becomes available: created_at itself for ENQUEUE_NOW.
        records = [
            self._new_record(row[0], queue, msg, row[1], row[-1])
            for msg, row in zip(messages, sorted(rows), strict=True)
        ]
        return EnqueueResult(records, [True] * len(records))

    def _enqueue_many(
        self, conn: Conn, queue: str, messages: Sequence[NewMessage]
    ) -> EnqueueResult:
        """All or none, in one transaction. A key that is live in the queue, or
        used earlier in the same batch, yields the existing record (and
        ``added`` False for it)."""
        out: list[MessageRecord | None] = [None] * len(messages)
        added = [False] * len(messages)
        first_use: dict[str, int] = {}
        pending: list[int] = []  # indexes still to insert
        repeats: list[tuple[int, int]] = []
        for index, msg in enumerate(messages):
            key = msg.dedupe_key
            if key is not None and key in first_use:
                repeats.append((index, first_use[key]))
                continue
            if key is not None:
                first_use[key] = index
            pending.append(index)
        inserted_any = False
        with conn.transaction():
            # A key that conflicts with a row deleted before we can read it is
            # inserted on the next round; two rounds settle any such race.
            for _round in range(5):
                if not pending:
                    break
                batch = [messages[i] for i in pending]
                rows = conn.execute(
                    self._sql["ENQUEUE_MANY"],
                    self._params(
                        queue=queue,
                        payloads=[m.payload for m in batch],
                        priorities=[int(m.priority) for m in batch],
                        delays=[float(m.delay) for m in batch],
                        keys=[m.dedupe_key for m in batch],
                    ),
                ).fetchall()
                inserted_any = inserted_any or bool(rows)
                inserted_keys = {row[3] for row in rows if row[3] is not None}
                inserted = [
                    i
                    for i in pending
                    if messages[i].dedupe_key is None or messages[i].dedupe_key in inserted_keys
                ]
                for index, (id_, created, available, _key) in zip(
                    inserted, sorted(rows, key=lambda r: r[0]), strict=True
                ):
                    out[index] = self._new_record(id_, queue, messages[index], created, available)
                    added[index] = True
                conflicted = [i for i in pending if out[i] is None]
                if not conflicted:
                    pending = []
                    break
                keys = [messages[i].dedupe_key for i in conflicted]
                found = conn.execute(
                    self._sql["BY_KEYS"],
                    self._params(queue=queue, keys=keys),
                ).fetchall()
                existing = {row[15]: self._record(row, row[16]) for row in found}
                for index in conflicted:
                    record = existing.get(messages[index].dedupe_key)
                    if record is not None:
                        out[index] = record
                pending = [i for i in conflicted if out[i] is None]
            if pending:
                raise RuntimeError("dedupe keys kept conflicting with rows that vanished")
            if inserted_any:
                conn.execute(
                    self._sql["NOTIFY"],
                    {"channel": self._channel, "queue": queue},
                )
        for index, first in repeats:
            out[index] = out[first]
        return EnqueueResult([record for record in out if record is not None], added)

    def claim(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> ClaimResult:
        out: list[MessageRecord] = []
        dead: list[MessageRecord] = []
        while len(out) < limit:
            try:
                rows = self._claim_pass(
                    queue, worker_id, limit - len(out), lease_seconds, max_attempts
                )
            except StoreError:
                if out or dead:
                    # Earlier passes committed: return their leases rather
                    # than strand them with nobody holding them.
                    break
                raise
            leased = [
                self._record(row, row[16], bool(row[17])) for row in rows if row[3] == INFLIGHT
            ]
            out.extend(leased)
            if len(leased) == len(rows):
                break  # nothing was dead-lettered: that was everything due
            dead.extend(self._record(row, row[16]) for row in rows if row[3] != INFLIGHT)
        if dead:
            # Each moved from live to dead (two deltas) and finished (one).
            self._wrote(3 * len(dead))
        if len(out) > 1:
            out.sort(key=batch_order)
        return ClaimResult(out, dead)

    def _claim_pass(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None,
    ) -> list[tuple[Any, ...]]:
        return self._rows(
            "claim",
            self._claim_sql(limit),
            self._params(
                queue=queue,
                worker=storable(worker_id),
                lease=lease_seconds,
                max=max_attempts,
                expired=EXPIRED_ERROR_TYPE,
            ),
        )

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        if not leases:
            return []
        if len(leases) == 1:
            lease = leases[0]
            done = self._count(
                "ack",
                self._sql["ACK_ONE"],
                self._params(id=lease.id, queue=queue, receipt=lease.receipt),
            )
            self._wrote(2)  # the live count and the acked total
            return [] if done == 1 else [lease]
        rows = self._rows(
            "ack",
            self._sql["ACK_MANY"],
            self._params(
                queue=queue,
                ids=[lease.id for lease in leases],
                receipts=[lease.receipt for lease in leases],
            ),
        )
        self._wrote(2)  # the live count and the acked total, one row each
        acked = {(row[0], row[1]) for row in rows}
        stale: list[Lease] = []
        for lease in leases:
            if (lease.id, lease.receipt) in acked:
                acked.discard((lease.id, lease.receipt))  # the same lease twice: once only
            else:
                stale.append(lease)
        return stale

    def _error_params(self, error: ErrorInfo | None) -> dict[str, Any]:
        if error is None:
            return {"etype": None, "emessage": None, "etrace": None, "eat": None}
        return {
            "etype": storable(error.type),
            "emessage": storable(error.message),
            "etrace": storable(error.traceback),
            "eat": error.at,
        }

    def release(
        self, queue: str, lease: Lease, *, delay: float = 0.0, error: ErrorInfo | None = None
    ) -> bool:
        params = self._params(
            id=lease.id, queue=queue, receipt=lease.receipt, delay=delay, channel=self._channel
        )
        params.update(self._error_params(error))
        done = self._count("release", self._sql["RELEASE"], params) == 1
        if done:
            self._changed(queue)
        return done

    def dead_letter(self, queue: str, lease: Lease, *, error: ErrorInfo | None = None) -> bool:
        params = self._params(id=lease.id, queue=queue, receipt=lease.receipt)
        params.update(self._error_params(error))
        done = self._count("dead_letter", self._sql["DEAD_LETTER"], params) == 1
        self._wrote(3 if done else 0)  # live to dead (two deltas), and finished
        return done

    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        rows = self._rows(
            "extend",
            self._sql["EXTEND"],
            self._params(id=lease.id, queue=queue, receipt=lease.receipt, seconds=seconds),
        )
        return float(rows[0][0]) if rows else None

    def _matching_ids(
        self,
        conn: Conn,
        queue: str,
        state: State | None,
        flt: MessageFilter | None,
        limit: int | None,
        *,
        lock: bool,
    ) -> list[int]:
        """Ids of matching messages in id order (locked FOR UPDATE if asked)."""
        ids: list[int] = []
        after = -1
        lock_sql = " FOR UPDATE" if lock else ""
        while True:
            params = self._params(queue=queue, after=after)
            where = where_sql(state, flt, params)
            if not needs_python(flt):
                params["limit"] = limit
                rows = conn.execute(
                    f"SELECT id FROM {self._table} WHERE queue = %(queue)s AND id > %(after)s"
                    f"{where} ORDER BY id LIMIT %(limit)s{lock_sql}",
                    params,
                ).fetchall()
                return [int(row[0]) for row in rows]
            params["limit"] = PAGE
            rows = conn.execute(
                f"SELECT {sql.COLUMNS}, {sql.NOW} FROM {self._table} "
                f"WHERE queue = %(queue)s AND id > %(after)s{where} "
                f"ORDER BY id LIMIT %(limit)s{lock_sql}",
                params,
            ).fetchall()
            for row in rows:
                if matches(flt, self._record(row, row[16]), row[16]):
                    ids.append(int(row[0]))
                    if limit is not None and len(ids) >= limit:
                        return ids
            if len(rows) < PAGE:
                return ids
            after = int(rows[-1][0])

    def requeue(
        self,
        queue: str,
        *,
        filter: MessageFilter | None = None,
        delay: float = 0.0,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        if limit is not None:
            check_positive_int("limit", limit)

        def action(conn: Conn) -> list[int]:
            with conn.transaction():
                ids = self._matching_ids(conn, queue, State.DEAD, filter, limit, lock=True)
                if ids and not dry_run:
                    conn.execute(
                        self._sql["REQUEUE"],
                        self._params(queue=queue, ids=ids, delay=delay),
                    )
                    conn.execute(
                        self._sql["NOTIFY"],
                        {"channel": self._channel, "queue": queue},
                    )
                return ids

        ids = self._conns.run("requeue", action)
        if ids and not dry_run:
            self._changed(queue)
            self._wrote(2 * len(ids))
        return ids

    def get(self, queue: str, message_id: int) -> MessageRecord | None:
        rows = self._rows(
            "get",
            f"SELECT {sql.COLUMNS}, {sql.NOW} FROM {self._table} "
            "WHERE id = %(id)s AND queue = %(queue)s",
            self._params(id=message_id, queue=queue),
            read_only=True,
        )
        return self._record(rows[0], rows[0][16]) if rows else None

    def list_messages(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        if limit is not None and limit <= 0:
            return []
        out: list[MessageRecord] = []
        after = after_id if after_id is not None else -1
        page = limit if not needs_python(filter) else PAGE
        while True:
            params = self._params(queue=queue, after=after, limit=page)
            where = where_sql(state, filter, params)
            rows = self._rows(
                "list",
                f"SELECT {sql.COLUMNS}, {sql.NOW} FROM {self._table} "
                f"WHERE queue = %(queue)s AND id > %(after)s{where} ORDER BY id LIMIT %(limit)s",
                params,
                read_only=True,
            )
            for row in rows:
                record = self._record(row, row[16])
                if needs_python(filter) and not matches(filter, record, row[16]):
                    continue
                out.append(record)
                if limit is not None and len(out) >= limit:
                    return out
            if page is None or len(rows) < page:
                return out
            after = int(rows[-1][0])

    def queues(self) -> list[str]:
        rows = self._rows("list queues", self._sql["QUEUES"], {}, read_only=True)
        return [str(row[0]) for row in rows]

    def purge(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> int:
        if not needs_python(filter):
            params = self._params(queue=queue)
            where = where_sql(state, filter, params)
            if dry_run:
                [(count,)] = self._rows(
                    "purge",
                    f"SELECT count(*) FROM {self._table} WHERE queue = %(queue)s{where}",
                    params,
                    read_only=True,
                )
                return int(count)
            [(purged,)] = self._rows(
                "purge", purge_sql(self._table, self._qschema, f"queue = %(queue)s{where}"), params
            )
            self._wrote(4)  # live and dead, and an ack total made and undone
            return int(purged)

        def action(conn: Conn) -> int:
            with conn.transaction():
                ids = self._matching_ids(conn, queue, state, filter, None, lock=not dry_run)
                if dry_run or not ids:
                    return len(ids)
                statement = purge_sql(self._table, self._qschema, "id = ANY(%(ids)s::bigint[])")
                [(purged,)] = conn.execute(statement, {"ids": ids}).fetchall()
                return int(purged)

        purged = self._conns.run("purge", action)
        if not dry_run:
            self._wrote(4)  # live and dead, and an ack total made and undone
        return purged

    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        if stopped:
            self._count(
                "record_heartbeat",
                self._sql["WORKER_STOPPED"],
                {"queue": queue, "worker": storable(worker_id)},
            )
            return
        self._count(
            "record_heartbeat",
            self._sql["HEARTBEAT"],
            self._params(queue=queue, worker=storable(worker_id), forget=WORKER_FORGET_AFTER),
        )

    def _next_due(self, queue: str) -> tuple[float | None, float]:
        [(due, now)] = self._rows(
            "wait", self._sql["NEXT_DUE"], self._params(queue=queue), read_only=True
        ) or [(None, None)]
        if now is None:  # no levels at all: the query returned no row
            now = self._test_clock.now() if self._test_clock is not None else self.clock.now()
        return (None if due is None else float(due)), float(now)

    def wait(self, queue: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self._listener is not None:
            self._listener.ensure_running()
        while True:
            token = self._changes.token(queue)
            due, now = self._next_due(queue)
            if due is not None and due <= now:
                return
            until = deadline
            if due is not None:
                until = min(until, time.monotonic() + (due - now))
            step = min(until, time.monotonic() + self.poll_interval) - time.monotonic()
            if step > 0:
                self._changes.wait(queue, token, step)
            if time.monotonic() >= deadline:
                return

    def check(self) -> list[str]:
        def action(conn: Conn) -> list[str]:
            problems: list[str] = []
            for (id_,) in conn.execute(
                f"SELECT id FROM {self._table} WHERE state = 1 AND receipt IS NULL LIMIT 10"
            ):
                problems.append(f"message {id_} is inflight without a receipt")
            for (id_,) in conn.execute(
                f"SELECT id FROM {self._table} WHERE state = 2 AND failed_at IS NULL LIMIT 10"
            ):
                problems.append(f"dead letter {id_} has no failure time")
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND NOT (i.indisvalid AND i.indisready)",
                (self.schema,),
            ):
                problems.append(f"index {name} is not valid: REINDEX it")
            return problems

        problems = self._conns.run("check", action, read_only=True)
        return problems + differences_as_problems(self.recount())

    # -- import (localqueue.store.copy.SupportsImport) -------------------------

    def import_conflicts(self, records: Sequence[MessageRecord]) -> list[str]:
        return self._conns.run(
            "import", lambda conn: importing.conflicts(conn, self._qschema, records), read_only=True
        )

    def import_messages(self, records: Sequence[MessageRecord]) -> None:
        def action(conn: Conn) -> None:
            with conn.transaction():
                importing.insert(conn, self._qschema, records)
                for queue in sorted({record.queue for record in records}):
                    conn.execute(self._sql["NOTIFY"], {"channel": self._channel, "queue": queue})

        self._conns.run("import", action)
        self._changes.bump(None)
        self._wrote(len({record.queue for record in records}))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._conns.close()
