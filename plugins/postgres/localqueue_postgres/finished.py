"""Finished counts for the PostgreSQL store (schema version 3); mixed into PostgresStore.

Running totals of acked and dead-lettered messages per queue, for
throughput (:mod:`localqueue.store.finished`). They travel the way the kept
counts do (``localqueue_postgres.counts``): the triggers that already run
append to ``lq_count_deltas`` under kinds of their own (4 acked, 5
dead-lettered), and the fold moves them into ``lq_counts``. So a tally
takes no row lock any other writer waits for: an ``ack_many`` of a hundred
adds one delta row to the insert its delete trigger makes anyway, and a
dead-letter one row to the two its update trigger makes.

An ack is the delete of a leased row that still has its receipt. A purge
also deletes such rows, so its statement appends the opposite delta in the
same statement (nothing between them is visible to anyone). A hand-written
``DELETE`` of leased rows in ``psql`` counts as acks. A requeue, a purge,
``TRUNCATE`` and ``store check --repair`` leave the totals alone.
"""

from __future__ import annotations

from typing import Any

from localqueue.store import FinishedCounts
from localqueue_postgres.connections import Conn, ThreadConnections

FINISHED_ACKED, FINISHED_DEAD = 4, 5
KIND_OF = "CASE WHEN state = 2 THEN 2 ELSE 0 END"
_ACK_ROWS = "state = 1 AND receipt IS NOT NULL"

# Appended to schema.MIGRATIONS as version 3, inside the migration
# transaction (which holds the migration lock). "{s}" is the quoted schema.
# The totals start at zero: what finished before is not known.
MIGRATION_STATEMENTS: tuple[str, ...] = (
    # lq_counts checked its kinds to be 0 and 2 (the constraint's default name).
    "ALTER TABLE {s}.lq_counts DROP CONSTRAINT lq_counts_kind_check,"
    f" ADD CONSTRAINT lq_counts_kind_check CHECK (kind IN (0, 2, {FINISHED_ACKED},"
    f" {FINISHED_DEAD}))",
    f"""
    CREATE OR REPLACE FUNCTION {{s}}.lq_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {{s}}.lq_count_deltas (queue, kind, n)
        SELECT queue, {KIND_OF}, -count(*) FROM lq_old GROUP BY 1, 2
        UNION ALL
        SELECT queue, {FINISHED_ACKED}, count(*) FROM lq_old WHERE {_ACK_ROWS} GROUP BY 1;
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION {{s}}.lq_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {{s}}.lq_count_deltas (queue, kind, n)
        SELECT OLD.queue, CASE WHEN OLD.state = 2 THEN 2 ELSE 0 END, -1
        UNION ALL
        SELECT NEW.queue, CASE WHEN NEW.state = 2 THEN 2 ELSE 0 END, 1
        UNION ALL
        SELECT OLD.queue, {FINISHED_DEAD}, 1 WHERE OLD.state = 1 AND NEW.state = 2;
        RETURN NULL;
    END
    $$
    """,
    # TRUNCATE empties the messages' counts, not the history of what finished.
    """
    CREATE OR REPLACE FUNCTION {s}.lq_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM {s}.lq_count_deltas WHERE kind IN (0, 2);
        DELETE FROM {s}.lq_counts WHERE kind IN (0, 2);
        RETURN NULL;
    END
    $$
    """,
)


def purge_sql(table: str, schema: str, where: str) -> str:
    """Delete the rows ``where`` selects and undo what the delete trigger will
    count as acks among them, in one statement; returns how many were deleted."""
    return f"""
WITH gone AS (DELETE FROM {table} WHERE {where} RETURNING queue, state, receipt),
undone AS (
    INSERT INTO {schema}.lq_count_deltas (queue, kind, n)
    SELECT queue, {FINISHED_ACKED}, -count(*) FROM gone WHERE {_ACK_ROWS} GROUP BY 1
)
SELECT count(*) FROM gone
"""


FINISHED_SQL = f"""
SELECT queue, coalesce(sum(n) FILTER (WHERE kind = {FINISHED_ACKED}), 0)::bigint,
    coalesce(sum(n) FILTER (WHERE kind = {FINISHED_DEAD}), 0)::bigint
FROM (
    SELECT queue, kind, n FROM {{s}}.lq_counts WHERE kind IN ({FINISHED_ACKED}, {FINISHED_DEAD})
    UNION ALL
    SELECT queue, kind, n FROM {{s}}.lq_count_deltas
    WHERE kind IN ({FINISHED_ACKED}, {FINISHED_DEAD})
) k
GROUP BY queue HAVING sum(n) <> 0 ORDER BY queue
"""


class PostgresFinished:
    """finished_counts(); mixed into PostgresStore."""

    _qschema: str
    _conns: ThreadConnections

    def finished_counts(self) -> list[FinishedCounts]:
        statement = FINISHED_SQL.format(s=self._qschema)

        def action(conn: Conn) -> list[tuple[Any, ...]]:
            # One statement: lq_counts and the unfolded deltas in one snapshot.
            return conn.execute(statement).fetchall()

        rows = self._conns.run("finished counts", action, read_only=True)
        return [FinishedCounts(str(q), int(a), int(d)) for q, a, d in rows]
