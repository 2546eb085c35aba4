"""Counts at any backlog for the PostgreSQL store (schema version 2); mixed into PostgresStore.

Counting the rows of a queue costs O(messages): about 430 ms at a million
ready ones. What stats need, and how each is kept cheap instead:

* **live and dead messages per queue** (live = ready, delayed or inflight)
  are kept, in the transaction that changes the messages, by triggers on
  ``lq_messages``. One counter row per queue would be updated by every put
  and ack of that queue and serialize the workers behind its row lock, so
  the triggers only *append* to ``lq_count_deltas`` (no unique index: two
  writers never touch the same row), and a *fold* now and then moves the
  deltas into ``lq_counts`` (one row per queue and kind) in one statement.
  A read sums ``lq_counts`` and the unfolded deltas in the statement that
  reads everything else, so it sees one snapshot and is exact whether or
  not a fold committed meanwhile.
* INSERT and DELETE triggers are statement-level with transition tables:
  one delta row per queue per statement, so ``put_many`` and ``ack_many``
  pay one small insert, not one per message. UPDATE has a row-level
  trigger whose WHEN clause fires only when a message moves between live
  and dead (dead-letter, requeue) or between queues: a claim, release or
  lease extension stays live and costs the WHEN test alone. (A
  statement-level UPDATE trigger would have to capture every claimed row in
  a transition table; PostgreSQL also forbids transition tables on a
  trigger with a column list.)
* **delayed and inflight** change with time and no write, so they are not
  kept: they are counted through the claim index over the messages not yet
  due (``available_at > now``), one index range per priority level (found
  by a loose index scan). A backlog of ready messages costs nothing there.
* **ready** is live minus those two (an expired lease counts as ready, as
  everywhere), and the **oldest ready** message is one index seek per
  priority level.

So a read costs O(queues + unfolded deltas + not-yet-due messages), never
O(ready messages). The triggers live in the database, so ``psql`` writes,
the import path, purges and older versions of this plugin still running
against a migrated schema all keep the counts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from localqueue.store import CountDifference, QueueStats, StoreError
from localqueue_postgres.connections import Conn, ThreadConnections
from localqueue_postgres.sql import NOW

# Kinds of kept count, by their value in lq_counts.kind: the state number of
# a dead message, and 0 for every other (as the SQLite store keys them).
LIVE, DEAD = 0, 2
KIND_NAMES = {LIVE: "live", DEAD: "dead"}
KIND_OF = "CASE WHEN state = 2 THEN 2 ELSE 0 END"

# When to fold. Each process folds once its own writes have appended about
# FOLD_EVERY delta rows since its last fold (a put or put_many appends one
# per statement, an ack or ack_many two (the live count and the acked total
# of localqueue_postgres.finished), a purge up to four, a dead-letter three,
# a requeue two per message; claims, releases and extends append none and
# are not counted),
# so busy writers keep the delta table near FOLD_EVERY rows per process
# without ever asking how large it is. A fold costs one short transaction
# (~1000 deletes and an upsert per queue): about a millisecond per thousand
# writes. A process that only reads (a dashboard, an exporter) writes
# nothing, so a read folds too once it sees more than FOLD_ABOVE deltas:
# that bounds what any read sums even when many writers each stay just
# under their own FOLD_EVERY.
FOLD_EVERY = 1000
FOLD_ABOVE = 5000

# Appended to schema.MIGRATIONS as version 2, inside the migration
# transaction. The lock comes first: it waits for every writer in progress
# and holds off new ones until the commit, so the count that fills lq_counts
# (last) sees every message written before the triggers existed, and every
# later write fires them. "{s}" is the quoted schema.
MIGRATION_STATEMENTS: tuple[str, ...] = (
    "LOCK TABLE {s}.lq_messages IN SHARE ROW EXCLUSIVE MODE",
    # One row per queue and kind, rewritten by each fold: room on the page
    # lets those updates stay HOT (no index entries, little bloat).
    """
    CREATE TABLE {s}.lq_counts (
        queue text COLLATE "C" NOT NULL,
        kind smallint NOT NULL CHECK (kind IN (0, 2)),
        n bigint NOT NULL,
        PRIMARY KEY (queue, kind)
    ) WITH (fillfactor = 50)
    """,
    # Every row is inserted by a write and deleted by the next fold: vacuum
    # it by an absolute number of dead rows, not a fraction of a tiny table.
    """
    CREATE TABLE {s}.lq_count_deltas (
        queue text COLLATE "C" NOT NULL,
        kind smallint NOT NULL,
        n bigint NOT NULL
    ) WITH (
        autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_cost_delay = 1
    )
    """,
    f"""
    CREATE FUNCTION {{s}}.lq_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {{s}}.lq_count_deltas (queue, kind, n)
        SELECT queue, {KIND_OF}, count(*) FROM lq_new GROUP BY 1, 2;
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION {{s}}.lq_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {{s}}.lq_count_deltas (queue, kind, n)
        SELECT queue, {KIND_OF}, -count(*) FROM lq_old GROUP BY 1, 2;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION {s}.lq_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.lq_count_deltas (queue, kind, n) VALUES
            (OLD.queue, CASE WHEN OLD.state = 2 THEN 2 ELSE 0 END, -1),
            (NEW.queue, CASE WHEN NEW.state = 2 THEN 2 ELSE 0 END, 1);
        RETURN NULL;
    END
    $$
    """,
    # TRUNCATE fires no row or delete trigger; a hand-run one empties the counts too.
    """
    CREATE FUNCTION {s}.lq_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM {s}.lq_count_deltas;
        DELETE FROM {s}.lq_counts;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER lq_counts_insert AFTER INSERT ON {s}.lq_messages"
    " REFERENCING NEW TABLE AS lq_new FOR EACH STATEMENT"
    " EXECUTE FUNCTION {s}.lq_count_inserted()",
    "CREATE TRIGGER lq_counts_delete AFTER DELETE ON {s}.lq_messages"
    " REFERENCING OLD TABLE AS lq_old FOR EACH STATEMENT"
    " EXECUTE FUNCTION {s}.lq_count_deleted()",
    "CREATE TRIGGER lq_counts_update AFTER UPDATE OF state, queue ON {s}.lq_messages"
    " FOR EACH ROW WHEN ((OLD.state = 2) IS DISTINCT FROM (NEW.state = 2)"
    " OR OLD.queue IS DISTINCT FROM NEW.queue)"
    " EXECUTE FUNCTION {s}.lq_count_moved()",
    "CREATE TRIGGER lq_counts_truncate AFTER TRUNCATE ON {s}.lq_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION {s}.lq_count_truncated()",
    f"INSERT INTO {{s}}.lq_counts (queue, kind, n)"
    f" SELECT queue, {KIND_OF}, count(*) FROM {{s}}.lq_messages GROUP BY 1, 2",
)

# Kept counts of the queues in {where}: folded plus unfolded.
_KEPT = """
kept AS (
    SELECT queue, kind, n FROM {s}.lq_counts {where}
    UNION ALL
    SELECT queue, kind, n FROM {s}.lq_count_deltas {where}
)"""
_LIVE = "coalesce(sum(n) FILTER (WHERE kind = 0), 0)::bigint"
_DEAD = "coalesce(sum(n) FILTER (WHERE kind = 2), 0)::bigint"
# stats(queue): always one row, so a queue without messages still reports
# its workers.
_ONE_TOTAL = f"""
totals AS (SELECT %(queue)s::text AS queue, {_LIVE} AS live, {_DEAD} AS dead FROM kept)"""
# all_stats(): a row per queue that holds a message.
_ALL_TOTALS = f"""
totals AS (
    SELECT queue, {_LIVE} AS live, {_DEAD} AS dead FROM kept GROUP BY queue
    HAVING sum(n) FILTER (WHERE kind = 0) <> 0 OR sum(n) FILTER (WHERE kind = 2) <> 0
)"""

# One statement, so one snapshot: the kept counts, the deltas and the
# messages not yet due all describe the same instant, and ready (live minus
# the rest) is exact. "levels" walks the claim index from one priority of a
# queue to the next lower one (a loose index scan: one seek per level). Each
# LATERAL subquery aggregates (or stops at LIMIT 1) so that PostgreSQL cannot
# flatten it into a join: flattened, the planner cannot tell how few rows
# "available_at > now" leaves and chose a hash join over a sequential scan of
# the whole table (135 ms at a million messages); kept apart, each is a range
# of the claim index per level. "now" is written out in the WHERE clauses
# rather than read from t: the planner estimates "available_at > <a value
# it can see>" from the column's statistics (few rows: an index range),
# while a value from t is unknown when planning, gets the default estimate
# of a third of the table, and at ten million messages that chose a
# sequential scan (0.9 s). The last column is how many deltas wait to be
# folded.
_READ = """
WITH RECURSIVE t AS (SELECT {now} AS now),
{kept},
{totals},
levels(queue, p) AS (
    SELECT totals.queue, (SELECT m.priority FROM {s}.lq_messages m
        WHERE m.queue = totals.queue AND m.state < 2 ORDER BY m.priority DESC LIMIT 1)
    FROM totals
    UNION ALL
    SELECT levels.queue, (SELECT m.priority FROM {s}.lq_messages m
        WHERE m.queue = levels.queue AND m.state < 2 AND m.priority < levels.p
        ORDER BY m.priority DESC LIMIT 1)
    FROM levels WHERE levels.p IS NOT NULL
),
not_due AS (
    SELECT levels.queue, d.state, d.worker, d.n
    FROM levels CROSS JOIN LATERAL (
        SELECT m.state, CASE WHEN m.state = 1 THEN coalesce(m.leased_by, '') END AS worker,
            count(*) AS n
        FROM {s}.lq_messages m
        WHERE m.queue = levels.queue AND m.state < 2 AND m.priority = levels.p
            AND m.available_at > {now}
        GROUP BY 1, 2
    ) d
    WHERE levels.p IS NOT NULL
),
by_state AS (
    SELECT queue, sum(n) FILTER (WHERE state = 0) AS delayed,
        sum(n) FILTER (WHERE state = 1) AS inflight
    FROM not_due GROUP BY queue
),
by_worker AS (
    SELECT queue, json_object_agg(worker, n) AS workers FROM (
        SELECT queue, worker, sum(n) AS n FROM not_due WHERE state = 1 GROUP BY 1, 2
    ) w GROUP BY queue
),
oldest AS (
    SELECT levels.queue, min(f.first) AS first
    FROM levels CROSS JOIN LATERAL (
        SELECT m.available_at AS first FROM {s}.lq_messages m
        WHERE m.queue = levels.queue AND m.state < 2 AND m.priority = levels.p
        ORDER BY m.priority DESC, m.available_at LIMIT 1
    ) f
    WHERE levels.p IS NOT NULL AND f.first <= {now}
    GROUP BY levels.queue
),
seen AS (
    SELECT w.queue, json_object_agg(w.worker_id, w.last_seen) AS workers
    FROM {s}.lq_workers w WHERE w.queue IN (SELECT queue FROM totals) GROUP BY w.queue
)
SELECT totals.queue, t.now, totals.live, totals.dead,
    coalesce(by_state.delayed, 0), coalesce(by_state.inflight, 0), oldest.first,
    by_worker.workers, seen.workers, (SELECT count(*) FROM {s}.lq_count_deltas)
FROM totals CROSS JOIN t
    LEFT JOIN by_state ON by_state.queue = totals.queue
    LEFT JOIN by_worker ON by_worker.queue = totals.queue
    LEFT JOIN oldest ON oldest.queue = totals.queue
    LEFT JOIN seen ON seen.queue = totals.queue
ORDER BY totals.queue
"""


def read_sql(schema: str, now: str, *, one_queue: bool) -> str:
    """The stats statement for one queue (``%(queue)s``) or for every queue."""
    where = "WHERE queue = %(queue)s" if one_queue else ""
    return _READ.format(
        s=schema,
        now=now,
        kept=_KEPT.format(s=schema, where=where),
        totals=_ONE_TOTAL if one_queue else _ALL_TOTALS,
    )


# Moves every committed delta into lq_counts. Deltas that writers commit
# meanwhile are not in this statement's snapshot: they stay for the next
# fold. A reader sees the deltas or their sum in lq_counts, never both.
FOLD_SQL = """
WITH moved AS (DELETE FROM {s}.lq_count_deltas RETURNING queue, kind, n)
INSERT INTO {s}.lq_counts (queue, kind, n)
SELECT queue, kind, sum(n)::bigint FROM moved GROUP BY 1, 2
ON CONFLICT (queue, kind) DO UPDATE SET n = lq_counts.n + excluded.n
"""
# Queues that emptied would pile up as zero rows; the folder tidies them
# (one scan of a table of a row or two per queue).
TIDY_SQL = "DELETE FROM {s}.lq_counts WHERE n = 0"

_COUNTED = f"SELECT queue, {KIND_OF} AS kind, count(*) AS n FROM {{s}}.lq_messages GROUP BY 1, 2"

# Kept against counted, in one snapshot: the pairs that differ.
RECOUNT_SQL = f"""
WITH kept AS (
    SELECT queue, kind, sum(n)::bigint AS n FROM (
        SELECT queue, kind, n FROM {{s}}.lq_counts WHERE kind IN (0, 2)
        UNION ALL
        SELECT queue, kind, n FROM {{s}}.lq_count_deltas WHERE kind IN (0, 2)
    ) k GROUP BY 1, 2
),
counted AS ({_COUNTED})
SELECT coalesce(kept.queue, counted.queue), coalesce(kept.kind, counted.kind),
    coalesce(kept.n, 0), coalesce(counted.n, 0)
FROM kept FULL JOIN counted ON kept.queue = counted.queue AND kept.kind = counted.kind
WHERE coalesce(kept.n, 0) <> coalesce(counted.n, 0)
ORDER BY 1, 2
"""
REBUILD_SQL = f"INSERT INTO {{s}}.lq_counts (queue, kind, n) {_COUNTED}"


def fold_lock_key(schema: str) -> str:
    """The advisory lock (by hashtext) that folds and repairs take for a schema.

    Distinct from the migration lock ("localqueue:<schema>"), which a fold
    must never wait behind.
    """
    return f"localqueue:{schema}:counts"


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value or {})


def _queue_stats(row: Sequence[Any]) -> QueueStats:
    queue, now, live, dead, delayed, inflight, oldest, by_worker, workers, _pending = row
    return QueueStats(
        queue=str(queue),
        ready=int(live) - int(delayed) - int(inflight),
        delayed=int(delayed),
        inflight=int(inflight),
        dead=int(dead),
        oldest_ready_age=None if oldest is None else max(0.0, float(now) - float(oldest)),
        inflight_by_worker={str(k): int(v) for k, v in _json(by_worker).items()},
        workers={str(k): float(v) for k, v in _json(workers).items()},
    )


def statements(schema: str) -> dict[str, str]:
    """The statements above, for one (quoted) schema."""
    return {
        "one": read_sql(schema, NOW, one_queue=True),
        "all": read_sql(schema, NOW, one_queue=False),
        "fold": FOLD_SQL.format(s=schema),
        "tidy": TIDY_SQL.format(s=schema),
        "recount": RECOUNT_SQL.format(s=schema),
        "rebuild": REBUILD_SQL.format(s=schema),
    }


class PostgresCounts:
    """stats, all_stats, recount and the folding of deltas; mixed into PostgresStore."""

    schema: str
    _qschema: str
    _conns: ThreadConnections
    _count_sql: dict[str, str]  # statements(schema)
    _unfolded: int  # delta rows this process appended since it last folded (about)
    _unfolded_lock: threading.Lock

    def _params(self, **values: Any) -> dict[str, Any]:
        raise NotImplementedError

    # -- reading ---------------------------------------------------------------

    def _read(self, operation: str, statement: str, params: dict[str, Any]) -> list[QueueStats]:
        def action(conn: Conn) -> list[tuple[Any, ...]]:
            # JIT off for this statement: its cost estimate grows with the
            # backlog (the planner cannot tell how few rows are not yet due)
            # and crosses jit_above_cost at about a million messages, where
            # compiling took 0.9 s of a read that runs in under a
            # millisecond. SET LOCAL ends with the transaction (nothing
            # outlives it, as behind a transaction-pooling proxy), and the
            # pipeline sends BEGIN, SET, the read and COMMIT in one round trip.
            # force_custom_plan: once psycopg prepares the statement (after
            # five runs), PostgreSQL may switch to a generic plan, planned
            # without the parameters' values, and "now" with them; a custom
            # plan costs a fraction of a millisecond to make.
            with conn.pipeline(), conn.transaction():
                conn.execute("SET LOCAL jit = off")
                conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                cursor = conn.execute(statement, params)
            return cursor.fetchall()

        rows = self._conns.run(operation, action, read_only=True)
        if rows and int(rows[0][-1]) > FOLD_ABOVE:
            self.fold_counts()
        return [_queue_stats(row) for row in rows]

    def stats(self, queue: str) -> QueueStats:
        [stats] = self._read("stats", self._count_sql["one"], self._params(queue=queue))
        return stats

    def all_stats(self) -> list[QueueStats]:
        # The statement sorts by queue under COLLATE "C" (code points), the
        # order Python's sorted() gives; sorting again costs nothing and
        # keeps the promise independent of the database's settings.
        every = self._read("all stats", self._count_sql["all"], self._params())
        return sorted(every, key=lambda stats: stats.queue)

    # -- keeping ---------------------------------------------------------------

    def _wrote(self, rows: int = 1) -> None:
        """After a write that appended about ``rows`` deltas: fold every FOLD_EVERY."""
        with self._unfolded_lock:
            self._unfolded += rows
            due = self._unfolded >= FOLD_EVERY
            if due:
                self._unfolded = 0
        if due:
            self.fold_counts()

    def fold_counts(self) -> bool:
        """Move the committed deltas into lq_counts; False if another session is folding.

        Upkeep only: the counts are exact either way, so a failure (a lost
        connection, a lock timeout) is left for the next fold to make up.
        """
        statements = self._count_sql

        def action(conn: Conn) -> bool:
            with conn.transaction():
                # Try, never wait: one folder at a time is enough, and a
                # writer that finds one running goes back to its work.
                row = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (fold_lock_key(self.schema),)
                ).fetchone()
                if row is None or not row[0]:
                    return False
                conn.execute(statements["fold"])
                conn.execute(statements["tidy"])
                return True

        try:
            return self._conns.run("fold counts", action)
        except StoreError:
            return False

    def recount(self, *, repair: bool = False) -> list[CountDifference]:
        statements = self._count_sql

        def differences(conn: Conn) -> list[CountDifference]:
            return [
                CountDifference(str(queue), KIND_NAMES.get(int(kind), str(kind)), int(k), int(c))
                for queue, kind, k, c in conn.execute(statements["recount"])
            ]

        if not repair:
            return self._conns.run("recount", differences, read_only=True)

        def rebuild(conn: Conn) -> list[CountDifference]:
            with conn.transaction():
                # SHARE mode waits for every writer in progress and holds off
                # new ones (claims too) until the commit, so the recount and
                # the rebuild see the same messages; the fold lock waits out
                # a fold in progress, so nothing else touches the counts.
                conn.execute(f"LOCK TABLE {self._qschema}.lq_messages IN SHARE MODE")
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (fold_lock_key(self.schema),)
                )
                found = differences(conn)
                if found:
                    # Only the kinds a recount rebuilds: the finished
                    # totals (localqueue_postgres.finished) are history.
                    conn.execute(
                        f"DELETE FROM {self._qschema}.lq_count_deltas WHERE kind IN (0, 2)"
                    )
                    conn.execute(f"DELETE FROM {self._qschema}.lq_counts WHERE kind IN (0, 2)")
                    conn.execute(statements["rebuild"])
                return found

        return self._conns.run("repair counts", rebuild)
