"""Taking copied messages as they are (``localqueue store copy``).

Implements ``localqueue.store.copy.SupportsImport`` for PostgresStore: ids,
states, attempts, times, errors and dedupe keys are kept; an inflight
message gets a new receipt. Afterwards the id sequence is moved above the
imported ids, so new puts never collide with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from localqueue.errors import StoreError
from localqueue.store import INFLIGHT, MessageRecord, stored_state
from localqueue_postgres.connections import Conn
from localqueue_postgres.sql import NEW_RECEIPT, storable


def conflicts(conn: Conn, schema: str, records: Sequence[MessageRecord]) -> list[str]:
    ids = [r.id for r in records]
    problems = [
        f"message id {row[0]} exists"
        for row in conn.execute(
            f"SELECT id FROM {schema}.lq_messages WHERE id = ANY(%s::bigint[]) ORDER BY id",
            (ids,),
        )
    ]
    keyed = [(r.queue, r.dedupe_key) for r in records if r.dedupe_key is not None]
    if keyed:
        rows = conn.execute(
            f"SELECT queue, dedupe_key FROM {schema}.lq_messages "
            "WHERE (queue, dedupe_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([q for q, _ in keyed], [k for _, k in keyed]),
        ).fetchall()
        problems.extend(f"dedupe key {key!r} is live in queue {queue!r}" for queue, key in rows)
    return problems


def insert(conn: Conn, schema: str, records: Sequence[MessageRecord]) -> None:
    """All or none, in the caller's transaction."""
    problems = conflicts(conn, schema, records)
    if problems:
        raise StoreError(f"cannot import: {problems[0]}")
    names = (
        *("id", "queue", "payload", "state", "priority", "attempts", "created_at"),
        *("available_at", "leased_by", "error_type", "error_message", "error_traceback"),
        *("error_at", "failed_at", "dedupe_key"),
    )
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for record in records:
        state = stored_state(record)
        error = record.last_error
        values: tuple[Any, ...] = (
            record.id, record.queue, record.payload, state, record.priority, record.attempts,
            record.created_at, record.available_at,
            storable(record.leased_by) if state == INFLIGHT else None,
            storable(error.type) if error else None, storable(error.message) if error else None,
            storable(error.traceback) if error else None, error.at if error else None,
            record.failed_at, record.dedupe_key,
        )  # fmt: skip
        for column, value in zip(columns.values(), values, strict=True):
            column.append(value)
    conn.execute(
        f"""
        INSERT INTO {schema}.lq_messages (id, queue, payload, state, priority, attempts,
            created_at, available_at, leased_by, receipt, error_type, error_message,
            error_traceback, error_at, failed_at, dedupe_key)
        SELECT u.id, u.queue, u.payload, u.state, u.priority, u.attempts, u.created_at,
            u.available_at, u.leased_by, CASE WHEN u.state = {INFLIGHT} THEN {NEW_RECEIPT} END,
            u.error_type, u.error_message, u.error_traceback, u.error_at, u.failed_at,
            u.dedupe_key
        FROM unnest(%(id)s::bigint[], %(queue)s::text[], %(payload)b::bytea[],
            %(state)s::smallint[], %(priority)s::int[], %(attempts)s::int[],
            %(created_at)s::float8[], %(available_at)s::float8[], %(leased_by)s::text[],
            %(error_type)s::text[], %(error_message)s::text[], %(error_traceback)s::text[],
            %(error_at)s::float8[], %(failed_at)s::float8[], %(dedupe_key)s::text[])
            AS u(id, queue, payload, state, priority, attempts, created_at, available_at,
                 leased_by, error_type, error_message, error_traceback, error_at, failed_at,
                 dedupe_key)
        """,
        columns,
    )
    conn.execute(
        f"""
        SELECT setval(s.seq, greatest(m.top, coalesce(pg_sequence_last_value(s.seq::regclass), 0)))
        FROM (SELECT pg_get_serial_sequence('{schema}.lq_messages', 'id') AS seq) s,
             (SELECT max(id) AS top FROM {schema}.lq_messages) m
        WHERE m.top IS NOT NULL
        """
    )
