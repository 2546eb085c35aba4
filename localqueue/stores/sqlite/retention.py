"""Acked-message retention for the SQLite store (schema version 3).

A queue with ``keep_acked`` set archives each acked message into
``lq_acked`` instead of dropping it. The archiving is a TEMP trigger that
every connection of this store creates for itself: it runs inside the ack's
own DELETE statement (same transaction, nothing to forget), the ack SQL and
the claim index are untouched, and a queue without retention pays only the
trigger's WHEN test, one seek in a table with a row per configured queue.
The trigger is TEMP so that the file holds no reference to ``lq_now()``, a
function only our connections define; a plain ``sqlite3`` shell can still
delete rows.

Only acks are archived: an ack deletes an inflight row that still carries
its receipt, and ``purge`` clears the receipts of the rows it is about to
delete (in the same transaction), so purged messages are not archived.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localqueue.store import check_seconds
from localqueue.store.capabilities import AckedRecord
from localqueue.stores.sqlite.connections import ThreadConnections, translate_error

RETENTION_VERSION = 3  # the schema version that added lq_acked

ARCHIVE_TRIGGER_SQL = """
CREATE TEMP TRIGGER IF NOT EXISTS lq_archive_acked AFTER DELETE ON main.lq_messages
WHEN old.state = 1 AND old.receipt IS NOT NULL AND EXISTS (
    SELECT 1 FROM lq_queue_settings WHERE queue = old.queue AND keep_acked > 0)
BEGIN
    INSERT INTO lq_acked (id, queue, payload, priority, attempts, created_at,
        acked_at, acked_by, dedupe_key)
    VALUES (old.id, old.queue, old.payload, old.priority, old.attempts, old.created_at,
        lq_now(), old.leased_by, old.dedupe_key);
END
"""

ACKED_COLUMNS = "id, queue, payload, priority, attempts, created_at, acked_at, acked_by, dedupe_key"


def install_archive_trigger(conn: sqlite3.Connection, now: Callable[[], float]) -> None:
    """Give a fresh connection the store clock and, on a v3+ file, the archive trigger."""
    conn.create_function("lq_now", 0, now)
    if conn.execute("PRAGMA user_version").fetchone()[0] >= RETENTION_VERSION:
        conn.execute(ARCHIVE_TRIGGER_SQL)


class SQLiteRetention:
    """The SupportsAckedRetention capability; mixed into SQLiteStore."""

    path: Path
    busy_timeout: float
    _pool: ThreadConnections

    def _now(self) -> float:
        raise NotImplementedError

    def _retention_read(self, sql: str, params: Any) -> list[Any]:
        try:
            return self._pool.get().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def _has_archive(self) -> bool:
        """False on an older file opened without migrating it (a preview): no archive yet."""
        return bool(self._retention_read("PRAGMA user_version", ())[0][0] >= RETENTION_VERSION)

    def keep_acked(self, queue: str) -> float | None:
        if not self._has_archive():
            return None
        rows = self._retention_read(
            "SELECT keep_acked FROM lq_queue_settings WHERE queue = ?", (queue,)
        )
        value = rows[0][0] if rows else None
        return float(value) if value else None

    def set_keep_acked(self, queue: str, seconds: float | None) -> None:
        seconds = None if seconds is None else check_seconds("keep_acked", seconds)
        try:
            with self._pool.transaction() as conn:
                if not seconds:
                    conn.execute("DELETE FROM lq_queue_settings WHERE queue = ?", (queue,))
                else:
                    conn.execute(
                        "INSERT INTO lq_queue_settings (queue, keep_acked) VALUES (?, ?) "
                        "ON CONFLICT (queue) DO UPDATE SET keep_acked = excluded.keep_acked",
                        (queue, seconds),
                    )
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc

    def list_acked(
        self, queue: str, *, after_id: int | None = None, limit: int | None = None
    ) -> list[AckedRecord]:
        if not self._has_archive():
            return []
        rows = self._retention_read(
            f"SELECT {ACKED_COLUMNS} FROM lq_acked WHERE queue = ? AND id > ? ORDER BY id LIMIT ?",
            (queue, -1 if after_id is None else after_id, -1 if limit is None else limit),
        )
        return [AckedRecord(*row) for row in rows]

    def prune_acked(self, queue: str, *, older_than: float, dry_run: bool = False) -> int:
        older_than = check_seconds("older_than", older_than)
        if not self._has_archive():
            return 0
        where = "queue = ? AND acked_at <= ?"
        try:
            if dry_run:
                with self._pool.connection() as conn:
                    params = (queue, self._now() - older_than)
                    row = conn.execute(f"SELECT count(*) FROM lq_acked WHERE {where}", params)
                    return int(row.fetchone()[0])
            with self._pool.transaction() as conn:
                params = (queue, self._now() - older_than)
                return conn.execute(f"DELETE FROM lq_acked WHERE {where}", params).rowcount
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
