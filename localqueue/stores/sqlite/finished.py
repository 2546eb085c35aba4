"""Finished counts for the SQLite store (schema version 5); mixed into SQLiteStore.

Running totals of acked and dead-lettered messages per queue, for
throughput (:mod:`localqueue.store.finished`). They live in ``lq_counts``
beside the queue's kept counts, under kinds of their own, so an ack that
already updates its queue's live count dirties no page it would not have
written anyway: the tally costs a B-tree update inside the same page and
commit (about 1% of an ack's CPU, measured as the difference between two
otherwise equal runs).

Triggers keep them, so every process and every path counts alike: an ack
is the delete of a leased row that still has its receipt (a purge clears
the receipts of the leased rows it is about to delete, which also keeps it
out of the acked archive); a dead-letter is any update from leased to dead
(``dead_letter``, or a claim finding a lease expired on its last attempt).
A requeue, a purge, retention and ``store check --repair`` leave them alone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from localqueue.store import FinishedCounts, StoreError
from localqueue.stores.sqlite.connections import ThreadConnections, translate_error

FINISHED_VERSION = 5  # the schema version that added the triggers below

# Kinds of kept count in lq_counts.state, after live (0), dead (2) and
# archived acked (3).
FINISHED_ACKED, FINISHED_DEAD = 4, 5

_TALLY = """
    INSERT INTO lq_counts (queue, state, n) VALUES (old.queue, {kind}, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
"""

# Appended to schema.MIGRATIONS as version 5. The totals start at zero: what
# finished before the migration is not known.
MIGRATION_STATEMENTS: tuple[str, ...] = (
    f"""
    CREATE TRIGGER lq_finished_acked AFTER DELETE ON lq_messages
    WHEN old.state = 1 AND old.receipt IS NOT NULL
    BEGIN {_TALLY.format(kind=FINISHED_ACKED)} END
    """,
    f"""
    CREATE TRIGGER lq_finished_dead AFTER UPDATE OF state ON lq_messages
    WHEN old.state = 1 AND new.state = 2
    BEGIN {_TALLY.format(kind=FINISHED_DEAD)} END
    """,
)

FINISHED_SQL = f"""
SELECT queue, sum(n) FILTER (WHERE state = {FINISHED_ACKED}),
    sum(n) FILTER (WHERE state = {FINISHED_DEAD})
FROM lq_counts WHERE state IN ({FINISHED_ACKED}, {FINISHED_DEAD})
GROUP BY queue ORDER BY queue
"""


class SQLiteFinished:
    """finished_counts(); mixed into SQLiteStore."""

    path: Path
    busy_timeout: float
    _pool: ThreadConnections

    def finished_counts(self) -> list[FinishedCounts]:
        try:
            conn = self._pool.get()
            if conn.execute("PRAGMA user_version").fetchone()[0] < FINISHED_VERSION:
                # An older file opened as found: nothing has been counting.
                raise StoreError(
                    f"store file {self.path} keeps no finished counts yet (an older schema); "
                    "run 'localqueue store migrate' to start them"
                )
            rows = conn.execute(FINISHED_SQL).fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        return [FinishedCounts(str(q), int(acked or 0), int(dead or 0)) for q, acked, dead in rows]
