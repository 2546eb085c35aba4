"""Counts at any backlog for the SQLite store (schema version 4); mixed into SQLiteStore.

What stats need, and how each is kept cheap:

* **live and dead messages per queue** (live = ready, delayed or inflight).
  ``lq_counts`` holds them for every message up to a watermark, the id in
  ``lq_meta['counted_upto']``. Messages above it ("fresh") are counted when
  read, by a range of the rowid. A put therefore pays nothing: its row lands
  above the watermark. Triggers in the file keep the counts of the messages
  at or below it, in the statement that changes them: a delete (ack, purge),
  or an update that moves a message between live and dead (dead-letter,
  requeue). A claim, release or lease extension leaves it live, so its
  trigger does no more than test its WHEN clause. Now and then a writer
  *folds* the fresh messages into ``lq_counts`` and moves the watermark up,
  in one short write transaction, so the fresh range stays small
  (:data:`FOLD_EVERY`). Every number changes in the transaction that changes
  the messages, so a crash cannot make them drift.
* **delayed and inflight** change with time and no write, so they are not
  kept: they are counted through the claim index over the messages that are
  not yet due (``available_at > now``), one range per priority level. A
  backlog of ready messages costs nothing there; a backlog of delayed ones
  costs a covering-index scan of its size (docs/stores.md gives the numbers).
* **ready** is live minus those two (an expired lease counts as ready, as
  everywhere), and the **oldest ready** message is one index seek per
  priority level.
* **archived acked messages** (``store info``) are counted by triggers on
  ``lq_acked``, which only queues with acked retention write.

Inserts with explicit ids at or below the watermark (an import) add their
counts themselves (:func:`count_imported`); a ``sqlite3`` shell that inserts
such rows by hand is what ``store check`` and ``--repair`` are for.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from localqueue.store import MessageRecord, QueueStats
from localqueue.store.counts import CountDifference
from localqueue.store.helpers import DEAD, stored_state
from localqueue.stores.sqlite import faults
from localqueue.stores.sqlite.connections import ThreadConnections, translate_error
from localqueue.stores.sqlite.statements import HIGH_WATER_SQL

COUNTS_VERSION = 4  # the schema version that added lq_counts

# Kinds of kept count, by their key in lq_counts.state.
LIVE, DEAD_KIND, ACKED = 0, 2, 3
KIND_NAMES = {LIVE: "live", DEAD_KIND: "dead", ACKED: "acked_archived"}

# A writer folds once this many ids lie above the watermark: reads then
# count at most about this many fresh rows (well under a millisecond), and
# a fold costs one short transaction per this many puts.
FOLD_EVERY = 1000
# The most ids one fold transaction takes, so catching up after a migration
# (or after a large put_many) never holds the write lock for long.
FOLD_CHUNK = 50_000

WATERMARK_SQL = "(SELECT value FROM lq_meta WHERE key = 'counted_upto')"

# Appended to schema.MIGRATIONS as version 4. The watermark starts at 0:
# every existing message is fresh, so counts are exact from the first
# moment, and catch_up() folds them in chunks (with a progress bar under
# `localqueue store migrate`) instead of one long transaction.
MIGRATION_STATEMENTS: tuple[str, ...] = (
    """
    CREATE TABLE lq_counts (
        queue TEXT NOT NULL,
        state INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (queue, state)
    ) WITHOUT ROWID
    """,
    "INSERT INTO lq_meta (key, value) VALUES ('counted_upto', 0)",
    f"""
    CREATE TRIGGER lq_counts_delete AFTER DELETE ON lq_messages
    WHEN old.id <= {WATERMARK_SQL}
    BEGIN
        UPDATE lq_counts SET n = n - 1
        WHERE queue = old.queue AND state = (old.state = 2) * 2;
    END
    """,
    f"""
    CREATE TRIGGER lq_counts_update AFTER UPDATE OF state, queue ON lq_messages
    WHEN ((old.state = 2) IS NOT (new.state = 2) OR old.queue IS NOT new.queue)
        AND old.id <= {WATERMARK_SQL}
    BEGIN
        UPDATE lq_counts SET n = n - 1
        WHERE queue = old.queue AND state = (old.state = 2) * 2;
        INSERT INTO lq_counts (queue, state, n) VALUES (new.queue, (new.state = 2) * 2, 1)
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER lq_counts_acked_insert AFTER INSERT ON lq_acked
    BEGIN
        INSERT INTO lq_counts (queue, state, n) VALUES (new.queue, 3, 1)
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER lq_counts_acked_delete AFTER DELETE ON lq_acked
    BEGIN
        UPDATE lq_counts SET n = n - 1 WHERE queue = old.queue AND state = 3;
    END
    """,
    "INSERT INTO lq_counts (queue, state, n) SELECT queue, 3, count(*) FROM lq_acked GROUP BY 1",
)

# Live and dead per queue: kept counts plus the fresh rows above the watermark.
_TOTALS = f"""
SELECT queue, state, sum(n) FROM (
    SELECT queue, state, n FROM lq_counts WHERE state IN (0, 2) {{kept}}
    UNION ALL
    SELECT queue, (state = 2) * 2, count(*) FROM lq_messages
    WHERE id > {WATERMARK_SQL} {{fresh}} GROUP BY 1, 2
) GROUP BY 1, 2
"""
TOTALS_SQL = _TOTALS.format(kept="AND queue = :queue", fresh="AND queue = :queue")
ALL_TOTALS_SQL = _TOTALS.format(kept="", fresh="")

ACKED_COUNTS_SQL = "SELECT queue, n FROM lq_counts WHERE state = 3 AND n > 0"

# The priority levels of one queue's live messages: one index seek each.
_LEVELS = """
WITH RECURSIVE levels(p) AS (
    SELECT (SELECT priority FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT priority FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 AND priority < levels.p
            ORDER BY priority DESC LIMIT 1)
    FROM levels WHERE levels.p IS NOT NULL
)
"""
# Messages not yet due, per stored state and (for inflight ones) worker: a
# range of the claim index per level. leased_by is read from the table only
# for inflight rows (SQLite defers the row lookup until a column needs it).
NOT_DUE_SQL = (
    _LEVELS
    + """
SELECT m.state, CASE WHEN m.state = 1 THEN m.leased_by END, count(*)
FROM levels JOIN lq_messages AS m INDEXED BY lq_messages_claim
    ON m.queue = :queue AND m.state < 2 AND m.priority = levels.p AND m.available_at > :now
WHERE levels.p IS NOT NULL
GROUP BY 1, 2
"""
)
# The first message of each level is its earliest; it is ready if it is due.
OLDEST_READY_SQL = (
    _LEVELS
    + """
SELECT min(first) FROM (
    SELECT (SELECT available_at FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 AND priority = levels.p
            ORDER BY available_at LIMIT 1) AS first
    FROM levels WHERE levels.p IS NOT NULL
) WHERE first <= :now
"""
)

FOLD_SQL = """
INSERT INTO lq_counts (queue, state, n)
SELECT queue, (state = 2) * 2, count(*) FROM lq_messages
WHERE id > :start AND id <= :upto GROUP BY 1, 2
ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n
"""

RECOUNT_SQL = """
SELECT queue, (state = 2) * 2, count(*) FROM lq_messages GROUP BY 1, 2
UNION ALL
SELECT queue, 3, count(*) FROM lq_acked GROUP BY 1
"""


def kept_state(record: MessageRecord) -> int:
    return DEAD_KIND if stored_state(record) == DEAD else LIVE


def count_imported(conn: sqlite3.Connection, records: Iterable[MessageRecord]) -> None:
    """Add messages inserted with explicit ids at or below the watermark to the counts.

    Run inside the transaction that inserted them; rows above the watermark
    are fresh and need nothing.
    """
    row = conn.execute(f"SELECT {WATERMARK_SQL}").fetchone()
    if row is None or row[0] is None:
        return  # an older schema opened as found: nothing is kept
    watermark = int(row[0])
    added = Counter((r.queue, kept_state(r)) for r in records if r.id <= watermark)
    conn.executemany(
        "INSERT INTO lq_counts (queue, state, n) VALUES (?, ?, ?) "
        "ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
        [(queue, state, n) for (queue, state), n in added.items()],
    )


def fold(conn: sqlite3.Connection) -> tuple[int, int]:
    """Fold up to FOLD_CHUNK ids above the watermark into lq_counts, inside the
    caller's write transaction; (new watermark, high-water id)."""
    start = int(conn.execute(f"SELECT {WATERMARK_SQL}").fetchone()[0])
    high = int(conn.execute(f"SELECT {HIGH_WATER_SQL}").fetchone()[0])
    upto = min(high, start + FOLD_CHUNK)
    if upto > start:
        conn.execute(FOLD_SQL, {"start": start, "upto": upto})
        conn.execute("UPDATE lq_meta SET value = ? WHERE key = 'counted_upto'", (upto,))
        # Names of queues that emptied would pile up; a fold is rare enough
        # to tidy them (a handful of rows, one scan of a tiny table).
        conn.execute("DELETE FROM lq_counts WHERE n = 0")
        if faults.armed:
            faults.hit("fold:before_commit")
    return upto, high


class SQLiteCounts:
    """stats, queues, all_stats and recount; mixed into SQLiteStore."""

    path: Path
    busy_timeout: float
    _pool: ThreadConnections
    _counted_upto: int  # the last watermark this store saw; may lag behind the file's

    def _now(self) -> float:
        raise NotImplementedError

    def _counted_stats(self, queue: str) -> QueueStats:
        """Stats by counting every message: an older schema opened as found."""
        raise NotImplementedError

    def _counted_queues(self) -> list[str]:
        raise NotImplementedError

    def _has_counts(self) -> bool:
        """False only for an older file opened without migrating it."""
        if self._counted_upto >= 0:
            return True  # versions only go up: once seen, always there
        version = self._pool.get().execute("PRAGMA user_version").fetchone()[0]
        if version < COUNTS_VERSION:
            return False
        self._counted_upto = 0
        return True

    # -- reading ---------------------------------------------------------------

    def stats(self, queue: str) -> QueueStats:
        try:
            if not self._has_counts():
                return self._counted_stats(queue)
            now = self._now()
            with self._pool.snapshot() as conn:  # one consistent view for all numbers
                totals = {
                    state: int(n) for _, state, n in conn.execute(TOTALS_SQL, {"queue": queue})
                }
                return self._queue_stats(conn, queue, totals, now)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def all_stats(self) -> list[QueueStats]:
        try:
            if not self._has_counts():
                return [self._counted_stats(queue) for queue in self._counted_queues()]
            now = self._now()
            with self._pool.snapshot() as conn:
                totals: dict[str, dict[int, int]] = {}
                for queue, state, n in conn.execute(ALL_TOTALS_SQL):
                    if n:
                        totals.setdefault(queue, {})[state] = int(n)
                return [
                    self._queue_stats(conn, queue, totals[queue], now) for queue in sorted(totals)
                ]
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def queues(self) -> list[str]:
        try:
            if not self._has_counts():
                return self._counted_queues()
            rows = self._pool.get().execute(ALL_TOTALS_SQL).fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        return sorted({queue for queue, _, n in rows if n})

    def _queue_stats(
        self, conn: sqlite3.Connection, queue: str, totals: dict[int, int], now: float
    ) -> QueueStats:
        params = {"queue": queue, "now": now}
        delayed = inflight = 0
        by_worker: dict[str, int] = {}
        for state, worker, n in conn.execute(NOT_DUE_SQL, params):
            if state == 1:
                inflight += n
                by_worker[str(worker)] = by_worker.get(str(worker), 0) + int(n)
            else:
                delayed += n
        oldest = conn.execute(OLDEST_READY_SQL, params).fetchone()[0]
        workers = conn.execute(
            "SELECT worker_id, last_seen FROM lq_workers WHERE queue = ?", (queue,)
        ).fetchall()
        return QueueStats(
            queue=queue,
            ready=totals.get(LIVE, 0) - delayed - inflight,
            delayed=int(delayed),
            inflight=int(inflight),
            dead=totals.get(DEAD_KIND, 0),
            oldest_ready_age=None if oldest is None else max(0.0, now - oldest),
            inflight_by_worker=by_worker,
            workers={str(k): float(v) for k, v in workers},
        )

    def acked_counts(self) -> dict[str, int]:
        """Archived acked messages per queue (``store info``), from the kept counts."""
        try:
            if not self._has_counts():
                return {}
            rows = self._pool.get().execute(ACKED_COUNTS_SQL).fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        return {str(queue): int(n) for queue, n in rows}

    # -- keeping ---------------------------------------------------------------

    def _fold_due(self, newest_id: int) -> bool:
        """Whether FOLD_EVERY or more ids lie above the watermark this store last saw."""
        return self._counted_upto >= 0 and newest_id - self._counted_upto >= FOLD_EVERY

    def _fold_within(self, conn: sqlite3.Connection, newest_id: int) -> int:
        """Fold inside a batch's own write transaction once a fold is due: the
        upkeep rides on a commit that happens anyway, instead of costing one
        of its own. The new watermark, or -1 (the caller records it after
        the commit, since a rollback undoes the fold too)."""
        return fold(conn)[0] if self._fold_due(newest_id) else -1

    def _maybe_fold(self, newest_id: int) -> None:
        """After a single put: fold, in a transaction of its own, once due."""
        if not self._fold_due(newest_id):
            return
        try:
            with self._pool.transaction() as conn:
                self._counted_upto, _ = fold(conn)
        except sqlite3.Error:
            # The put has committed; folding is only upkeep, and the next
            # put (by this or any process) tries again.
            return

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Fold every fresh message, one short transaction per chunk.

        ``progress(done, total)`` is called after each chunk (ids folded,
        ids to fold) so a large store can show a progress bar.
        """
        try:
            if not self._has_counts():
                return
            with self._pool.connection() as conn:
                start = int(conn.execute(f"SELECT {WATERMARK_SQL}").fetchone()[0])
            while True:
                with self._pool.transaction() as conn:
                    upto, high = fold(conn)
                self._counted_upto = upto
                if progress is not None:
                    progress(upto - start, max(high - start, 0))
                if upto >= high:
                    return
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def recount(self, *, repair: bool = False) -> list[CountDifference]:
        try:
            if not self._has_counts():
                return []
            if repair:
                with self._pool.transaction() as conn:  # the write lock: nobody changes a row
                    differences = _differences(conn)
                    if differences:
                        _rebuild(conn)
                    self._counted_upto = int(conn.execute(f"SELECT {WATERMARK_SQL}").fetchone()[0])
                return differences
            with self._pool.snapshot() as conn:
                return _differences(conn)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc


def _differences(conn: sqlite3.Connection) -> list[CountDifference]:
    """Kept counts (plus the fresh rows) against a count of every row, in one snapshot."""
    kept: dict[tuple[str, int], int] = {}
    for queue, state, n in conn.execute(ALL_TOTALS_SQL):
        kept[(queue, state)] = int(n)
    for queue, n in conn.execute("SELECT queue, n FROM lq_counts WHERE state = 3"):
        kept[(queue, ACKED)] = int(n)
    counted = {(queue, state): int(n) for queue, state, n in conn.execute(RECOUNT_SQL)}
    return [
        CountDifference(
            queue, KIND_NAMES.get(state, str(state)), kept.get(key, 0), counted.get(key, 0)
        )
        for key in sorted(set(kept) | set(counted))
        for queue, state in [key]
        if kept.get(key, 0) != counted.get(key, 0)
    ]


def _rebuild(conn: sqlite3.Connection) -> None:
    """Replace the kept counts with a count of every row, up to the high-water id."""
    high = int(conn.execute(f"SELECT {HIGH_WATER_SQL}").fetchone()[0])
    # Only the kinds a recount can rebuild: finished totals (kinds 4 and 5)
    # are history, not a count of rows.
    conn.execute("DELETE FROM lq_counts WHERE state IN (0, 2, 3)")
    conn.execute(
        "INSERT INTO lq_counts (queue, state, n) "
        "SELECT queue, (state = 2) * 2, count(*) FROM lq_messages WHERE id <= ? GROUP BY 1, 2",
        (high,),
    )
    conn.execute(
        "INSERT INTO lq_counts (queue, state, n) SELECT queue, 3, count(*) FROM lq_acked GROUP BY 1"
    )
    conn.execute("UPDATE lq_meta SET value = ? WHERE key = 'counted_upto'", (high,))
