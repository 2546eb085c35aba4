"""Taking copied messages as they are (``store copy``); mixed into SQLiteStore.

Implements ``localqueue.store.copy.SupportsImport``: ids, states, attempts,
times, errors and dedupe keys are kept; an inflight message gets a new
receipt (see store_copy). Inserting explicit ids is safe for the "ids are
never reused" rule: new puts start above ``max(id)`` and the high-water mark.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from localqueue.errors import StoreError
from localqueue.store import MessageRecord
from localqueue.store.helpers import INFLIGHT, new_receipt, stored_state
from localqueue.stores.sqlite.connections import ThreadConnections, translate_error
from localqueue.stores.sqlite.counts import count_imported

IMPORT_SQL = """
INSERT INTO lq_messages (id, queue, payload, state, priority, attempts, created_at,
    available_at, leased_by, receipt, error_type, error_message, error_traceback, error_at,
    failed_at, dedupe_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _conflicts(conn: sqlite3.Connection, records: Sequence[MessageRecord]) -> list[str]:
    problems: list[str] = []
    # Acked messages kept for audit (schema 3) hold their ids too.
    archived = conn.execute("PRAGMA user_version").fetchone()[0] >= 3
    for record in records:
        if conn.execute("SELECT 1 FROM lq_messages WHERE id = ?", (record.id,)).fetchone():
            problems.append(f"message id {record.id} exists")
        elif (
            archived
            and conn.execute("SELECT 1 FROM lq_acked WHERE id = ?", (record.id,)).fetchone()
        ):
            problems.append(f"message id {record.id} exists among the acked messages kept")
        elif (
            record.dedupe_key is not None
            and conn.execute(
                "SELECT 1 FROM lq_messages WHERE queue = ? AND dedupe_key = ?",
                (record.queue, record.dedupe_key),
            ).fetchone()
        ):
            problems.append(f"dedupe key {record.dedupe_key!r} is live in queue {record.queue!r}")
    return problems


def _row(record: MessageRecord) -> tuple[object, ...]:
    state = stored_state(record)
    error = record.last_error
    return (
        record.id, record.queue, record.payload, state, record.priority, record.attempts,
        record.created_at, record.available_at,
        record.leased_by if state == INFLIGHT else None,
        new_receipt() if state == INFLIGHT else None,
        error.type if error else None, error.message if error else None,
        error.traceback if error else None, error.at if error else None,
        record.failed_at, record.dedupe_key,
    )  # fmt: skip


class SQLiteImport:
    """The SupportsImport capability; mixed into SQLiteStore."""

    path: Path
    busy_timeout: float
    url: str
    _pool: ThreadConnections

    def _imported(self) -> None:
        """Wake waiters in this process (SQLiteStore notifies its notifier)."""

    def import_conflicts(self, records: Sequence[MessageRecord]) -> list[str]:
        try:
            with self._pool.connection() as conn:
                return _conflicts(conn, records)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def import_messages(self, records: Sequence[MessageRecord]) -> None:
        try:
            with self._pool.transaction() as conn:
                problems = _conflicts(conn, records)
                if problems:
                    raise StoreError(f"cannot import into {self.url}: {problems[0]}")
                conn.executemany(IMPORT_SQL, [_row(record) for record in records])
                count_imported(conn, records)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        self._imported()
