"""The PostgreSQL store's finished counts: deltas of their own kinds, one row
per statement, never taken by a purge, TRUNCATE or a repair, and a version-2
schema migrated to keep them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from localqueue import ManualClock
from localqueue.store import (
    ErrorInfo,
    FinishedCounts,
    Lease,
    MessageFilter,
    NewMessage,
    SupportsFinishedCounts,
)
from localqueue_postgres.finished import FINISHED_ACKED, FINISHED_DEAD
from localqueue_postgres.schema import MIGRATIONS, SCHEMA_VERSION
from localqueue_postgres.store import PostgresStore
from localqueue_postgres.url import parse_postgres_url


def admin(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(parse_postgres_url(url).conninfo, autocommit=True)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


@pytest.fixture
def store(postgres_store_url: str, clock: ManualClock) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_store_url, clock=clock)
    yield opened
    opened.close()


def finished_deltas(store: PostgresStore) -> list[tuple[str, int, int]]:
    rows = store._rows(
        "deltas",
        f"SELECT queue, kind, n FROM {store._qschema}.lq_count_deltas "
        f"WHERE kind IN ({FINISHED_ACKED}, {FINISHED_DEAD}) ORDER BY kind, n",
        {},
    )
    return [(str(q), int(k), int(n)) for q, k, n in rows]


def leases(store: PostgresStore, queue: str, n: int) -> list[Lease]:
    claimed = store.claim(queue, worker_id="w", limit=n, lease_seconds=30).leased
    return [Lease(r.id, r.receipt or "") for r in claimed]


def test_the_store_keeps_finished_counts(store: PostgresStore) -> None:
    assert isinstance(store, SupportsFinishedCounts)
    assert store.finished_counts() == []


def test_an_ack_of_many_appends_one_delta_row_and_a_dead_letter_one(
    store: PostgresStore,
) -> None:
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(300)])
    assert store.ack("jobs", leases(store, "jobs", 200)) == []
    assert finished_deltas(store) == [("jobs", FINISHED_ACKED, 200)]
    [doomed] = leases(store, "jobs", 1)
    assert store.dead_letter("jobs", doomed)
    assert finished_deltas(store)[-1] == ("jobs", FINISHED_DEAD, 1)
    assert store.fold_counts() and finished_deltas(store) == []
    assert store.finished_counts() == [FinishedCounts("jobs", 200, 1)]


def test_a_purge_of_leased_messages_counts_nothing_on_either_path(store: PostgresStore) -> None:
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(6)])
    leases(store, "jobs", 4)
    assert store.purge("jobs", state=None) == 6  # one statement
    store.enqueue("jobs", [NewMessage(b"y") for _ in range(3)])
    released = leases(store, "jobs", 2)
    for lease in released:  # leased again below, with the error kept
        assert store.release("jobs", lease, error=ErrorInfo("E", "boom", None, 0.0))
    held = leases(store, "jobs", 2)  # the clock stands still: lowest ids first
    assert [h.id for h in held] == [r.id for r in released]
    # A filter on error text goes through ids, in a transaction of its own.
    assert store.purge("jobs", filter=MessageFilter(error_contains="boom")) == 2
    assert len(store.list_messages("jobs")) == 1
    assert store.finished_counts() == []


def test_truncate_and_repair_leave_the_totals_alone(
    store: PostgresStore, postgres_store_url: str
) -> None:
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(5)])
    assert store.ack("jobs", leases(store, "jobs", 3)) == []
    store.fold_counts()
    assert store.ack("jobs", leases(store, "jobs", 1)) == []  # one unfolded delta
    with admin(postgres_store_url) as conn:
        conn.execute(f"UPDATE {store._qschema}.lq_counts SET n = n + 5 WHERE kind = 0")
    assert store.recount(repair=True) != []
    assert store.finished_counts() == [FinishedCounts("jobs", 4, 0)]
    with admin(postgres_store_url) as conn:
        conn.execute(f"TRUNCATE {store._qschema}.lq_messages")
    assert store.all_stats() == [] and store.recount() == []
    assert store.finished_counts() == [FinishedCounts("jobs", 4, 0)]


def test_a_version_2_schema_is_migrated_and_counts_from_then(
    postgres_store_url: str, clock: ManualClock
) -> None:
    url = postgres_store_url
    schema = f'"{parse_postgres_url(url).schema}"'
    with admin(url) as conn, conn.transaction():
        conn.execute(f"CREATE SCHEMA {schema}")
        for version, statements in enumerate(MIGRATIONS[:2], start=1):
            for statement in statements:
                conn.execute(statement.format(s=schema))
            conn.execute(f"INSERT INTO {schema}.lq_schema_version (version) VALUES ({version})")
    store = PostgresStore(url, clock=clock)
    with admin(url) as conn:
        row = conn.execute(f"SELECT max(version) FROM {schema}.lq_schema_version").fetchone()
    assert row == (SCHEMA_VERSION,) == (3,)
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(4)])
    [a, b, c] = leases(store, "jobs", 3)
    assert store.ack("jobs", [a, b]) == [] and store.dead_letter("jobs", c)
    assert store.finished_counts() == [FinishedCounts("jobs", 2, 1)]
    assert store.recount() == []
    store.close()
