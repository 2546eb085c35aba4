"""The SQLite store's finished counts (schema version 5): triggers in the file,
untouched by purge and repair, started at zero by the migration, and refused
in one line on an older file opened as found."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from localqueue.store import FinishedCounts, Lease, NewMessage, StoreError
from localqueue.stores.sqlite import SQLiteStore, open_sqlite_store_as_found
from localqueue.stores.sqlite import schema as sqlite_schema


def leases(store: SQLiteStore, queue: str, n: int) -> list[Lease]:
    claimed = store.claim(queue, worker_id="w", limit=n, lease_seconds=30).leased
    return [Lease(r.id, r.receipt or "") for r in claimed]


def make_version_4(path: Path, messages: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    sqlite_schema.migrate(conn, path, sqlite_schema.MIGRATIONS[:4])
    conn.close()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO lq_messages (queue, payload, state, priority, attempts, created_at, "
            "available_at) VALUES ('jobs', x'31', 0, 0, 0, 0, 0)",
            [() for _ in range(messages)],
        )


def test_acks_count_and_a_purge_of_leased_messages_does_not(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(5)])
    assert store.ack("jobs", leases(store, "jobs", 2)) == []
    leases(store, "jobs", 2)  # leased, then purged below
    assert store.purge("jobs") == 3
    assert store.finished_counts() == [FinishedCounts("jobs", 2, 0)]
    store.close()


def test_repair_rebuilds_the_message_counts_and_keeps_the_totals(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(1500)])  # past a fold
    assert store.ack("jobs", leases(store, "jobs", 1200)) == []
    [doomed] = leases(store, "jobs", 1)
    assert store.dead_letter("jobs", doomed)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE lq_counts SET n = n + 7 WHERE state = 0")
    assert store.recount(repair=True) != []
    assert store.recount() == []
    assert store.finished_counts() == [FinishedCounts("jobs", 1200, 1)]
    store.close()


def test_a_version_4_file_is_migrated_and_counts_from_then(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    make_version_4(path, messages=3)
    older = open_sqlite_store_as_found(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="run 'localqueue store migrate' to start them"):
        older.finished_counts()
    older.close()
    store = SQLiteStore(path)
    assert store.finished_counts() == []  # what finished before is not known
    [a, b] = leases(store, "jobs", 2)
    assert store.ack("jobs", [a]) == [] and store.dead_letter("jobs", b)
    assert store.finished_counts() == [FinishedCounts("jobs", 1, 1)]
    assert store.recount() == []
    store.close()
