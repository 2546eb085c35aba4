"""The PostgreSQL store's kept counts: exact after every operation, under concurrent
writers and folds, after the version-1 migration, and repaired by ``store check``."""

from __future__ import annotations

import queue as stdlib_queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localqueue import ManualClock, PersistentQueue
from localqueue.cli import build_cli
from localqueue.store import (
    CountDifference,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    State,
    SupportsAllStats,
    SupportsRecount,
    copy_messages,
)
from localqueue.stores.memory import MemoryStore
from localqueue_postgres import counts
from localqueue_postgres.schema import MIGRATIONS, SCHEMA_VERSION
from localqueue_postgres.store import PostgresStore
from localqueue_postgres.url import parse_postgres_url

# What stats() must say, by reading every message of the queue: the way the
# store counted before version 2.
REFERENCE_SQL = """
SELECT
    count(*) FILTER (WHERE state < 2 AND available_at <= %(now)s),
    count(*) FILTER (WHERE state = 0 AND available_at > %(now)s),
    count(*) FILTER (WHERE state = 1 AND available_at > %(now)s),
    count(*) FILTER (WHERE state = 2),
    min(available_at) FILTER (WHERE state < 2 AND available_at <= %(now)s)
FROM {s}.lq_messages WHERE queue = %(queue)s
"""
BY_WORKER_SQL = """
SELECT coalesce(leased_by, ''), count(*) FROM {s}.lq_messages
WHERE queue = %(queue)s AND state = 1 AND available_at > %(now)s GROUP BY 1
"""


def admin(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(parse_postgres_url(url).conninfo, autocommit=True)


def recounted(store: PostgresStore, queue: str, now: float) -> QueueStats:
    def read(conn: psycopg.Connection[tuple[Any, ...]]) -> QueueStats:
        params = {"queue": queue, "now": now}
        row = conn.execute(REFERENCE_SQL.format(s=store._qschema), params).fetchone()
        assert row is not None
        ready, delayed, inflight, dead, oldest = row
        by_worker = conn.execute(BY_WORKER_SQL.format(s=store._qschema), params).fetchall()
        workers = conn.execute(
            f"SELECT worker_id, last_seen FROM {store._qschema}.lq_workers WHERE queue = %s",
            (queue,),
        ).fetchall()
        return QueueStats(
            queue=queue,
            ready=int(ready),
            delayed=int(delayed),
            inflight=int(inflight),
            dead=int(dead),
            oldest_ready_age=None if oldest is None else max(0.0, now - float(oldest)),
            inflight_by_worker={str(w): int(n) for w, n in by_worker},
            workers={str(w): float(t) for w, t in workers},
        )

    return store._conns.run("reference count", read)


def counted_queues(store: PostgresStore) -> list[str]:
    rows = store._rows(
        "reference queues",
        f"SELECT DISTINCT queue FROM {store._qschema}.lq_messages ORDER BY queue",
        {},
    )
    return [str(row[0]) for row in rows]


# The kinds that count messages; the finished totals (kinds 4 and 5,
# test_postgres_finished.py) ride along in the same tables.
MESSAGE_KINDS = "kind IN (0, 2)"


def deltas(store: PostgresStore) -> int:
    [(n,)] = store._rows(
        "deltas", f"SELECT count(*) FROM {store._qschema}.lq_count_deltas WHERE {MESSAGE_KINDS}", {}
    )
    return int(n)


def kept_rows(store: PostgresStore) -> dict[tuple[str, int], int]:
    rows = store._rows(
        "kept", f"SELECT queue, kind, n FROM {store._qschema}.lq_counts WHERE {MESSAGE_KINDS}", {}
    )
    return {(str(q), int(k)): int(n) for q, k, n in rows}


def assert_exact(store: PostgresStore, clock: ManualClock) -> None:
    """stats, all_stats and queues agree with a count of every message."""
    now = clock.now()
    names = counted_queues(store)
    assert store.queues() == names
    every = store.all_stats()
    assert [s.queue for s in every] == names
    for kept, name in zip(every, names, strict=True):
        assert kept == recounted(store, name, now)
        assert store.stats(name) == kept
    assert store.recount() == []
    assert store.check() == []


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


@pytest.fixture
def store(postgres_store_url: str, clock: ManualClock) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_store_url, clock=clock)
    yield opened
    opened.close()


def test_the_store_offers_the_counting_capabilities(store: PostgresStore) -> None:
    assert isinstance(store, SupportsAllStats) and isinstance(store, SupportsRecount)
    assert store.all_stats() == [] and store.recount() == []


def test_counts_are_exact_after_every_kind_of_operation(
    store: PostgresStore, clock: ManualClock
) -> None:
    q = PersistentQueue("jobs", store=store, lease_timeout=10, max_attempts=2)
    other = PersistentQueue("other", store=store)
    q.put_many(range(300))
    other.put_many(range(30), priority=5)
    store.enqueue("jobs", [NewMessage(b"1", delay=60 + i, priority=i % 3) for i in range(20)])
    q.put("later", delay=60)
    q.put("urgent", priority=9)
    store.record_heartbeat("jobs", "w-1")
    assert_exact(store, clock)
    assert store.stats("jobs").ready == 301 and store.stats("jobs").delayed == 21
    first = q.get_many(6)
    assert store.stats("jobs").inflight == 6
    q.ack(first[0])
    q.ack_many(first[3:5])
    q.release(first[1], delay=5)
    q.dead_letter(first[2], error="boom")
    assert_exact(store, clock)
    assert store.stats("jobs").dead == 1 and store.stats("jobs").inflight == 1
    solo = PersistentQueue("solo", store=store, lease_timeout=10, max_attempts=2)
    solo.put("x")
    solo.get()  # its lease expires: ready again, with no write
    clock.advance(11)
    assert store.stats("solo").ready == 1 and store.stats("solo").inflight == 0
    assert_exact(store, clock)
    solo.get()
    clock.advance(11)
    with pytest.raises(stdlib_queue.Empty):
        solo.get(block=False)  # finds it exhausted and dead-letters it in the claim
    assert store.stats("solo").dead == 1
    assert_exact(store, clock)
    assert len(solo.requeue_dead(all=True)) == 1
    assert len(q.requeue_dead(all=True)) == 1
    assert_exact(store, clock)
    clock.advance(100)  # every delay is over
    assert store.stats("jobs").delayed == 0
    assert_exact(store, clock)
    store.enqueue("jobs", [NewMessage(b"2", delay=30) for _ in range(4)])
    assert store.purge("jobs", state=State.DELAYED) == 4
    assert store.purge("jobs", filter=MessageFilter(ids=[first[5].id])) == 1
    assert store.purge("other", dry_run=True) == 30
    assert_exact(store, clock)
    store.purge("other")
    assert_exact(store, clock)
    assert "other" not in store.queues()
    q.purge()
    solo.purge()
    assert store.all_stats() == [] and store.queues() == []
    assert_exact(store, clock)


def test_a_copy_into_the_store_is_counted(store: PostgresStore, clock: ManualClock) -> None:
    source = MemoryStore(clock=clock)
    source.enqueue("a", [NewMessage(b"1"), NewMessage(b"2", delay=50), NewMessage(b"3")])
    source.enqueue("b", [NewMessage(b"4", priority=2)])
    [leased] = source.claim("a", worker_id="w", limit=1, lease_seconds=30).leased
    [doomed] = source.claim("b", worker_id="w", limit=1, lease_seconds=30).leased
    source.dead_letter("b", Lease(doomed.id, doomed.receipt or ""))
    report = copy_messages(source, store)
    assert report.total == 4
    assert [(s.queue, s.ready, s.delayed, s.inflight, s.dead) for s in store.all_stats()] == [
        ("a", 1, 1, 1, 0),
        ("b", 0, 0, 0, 1),
    ]
    assert store.stats("a").inflight_by_worker == {"w": 1}
    assert store.get("a", leased.id) is not None
    assert_exact(store, clock)
    record = MessageRecord(9000, "c", b"x", State.DEAD, 0, 3, 0.0, 0.0, failed_at=1.0)
    store.import_messages([record, record._replace(id=9001, state=State.READY, failed_at=None)])
    assert (store.stats("c").dead, store.stats("c").ready) == (1, 1)
    assert_exact(store, clock)


def test_all_stats_equals_stats_per_queue(store: PostgresStore, clock: ManualClock) -> None:
    for i, name in enumerate(["b", "a", "Z", "é", "a b"]):
        store.enqueue(name, [NewMessage(b"x", priority=p, delay=p * 10) for p in range(i + 1)])
    store.claim("é", worker_id="w9", limit=1, lease_seconds=99)
    [r] = store.claim("b", worker_id="w9", limit=1, lease_seconds=99).leased
    store.dead_letter("b", Lease(r.id, r.receipt or ""))
    store.record_heartbeat("a", "w1")
    store.record_heartbeat("nothing", "w2")  # workers but no messages: not listed
    every = store.all_stats()
    assert [s.queue for s in every] == sorted(["b", "a", "Z", "é", "a b"])
    assert every == [store.stats(s.queue) for s in every]
    assert store.stats("nothing").workers == {"w2": clock.now()}
    assert store.stats("é").inflight_by_worker == {"w9": 1}
    assert_exact(store, clock)


def test_a_claim_release_or_extend_writes_no_delta(store: PostgresStore) -> None:
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(5)])
    assert store.fold_counts()
    assert deltas(store) == 0
    claimed = store.claim("jobs", worker_id="w", limit=3, lease_seconds=30).leased
    assert len(claimed) == 3
    [a, b, _c] = claimed
    assert store.extend("jobs", Lease(a.id, a.receipt or ""), 60) is not None
    assert store.release("jobs", Lease(b.id, b.receipt or ""), delay=5)
    assert deltas(store) == 0  # live to live: the trigger's WHEN test alone
    store.dead_letter("jobs", Lease(a.id, a.receipt or ""))
    assert deltas(store) == 2  # live to dead: one row each way


def test_a_batch_costs_one_delta_row_per_queue(store: PostgresStore) -> None:
    store.fold_counts()
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(500)])
    assert deltas(store) == 1
    leases = [
        Lease(r.id, r.receipt or "")
        for r in store.claim("jobs", worker_id="w", limit=200, lease_seconds=30).leased
    ]
    assert store.ack("jobs", leases) == []
    assert deltas(store) == 2
    store.purge("jobs")
    assert deltas(store) == 3
    store.fold_counts()
    assert kept_rows(store) == {}  # an emptied queue leaves no zero row behind


def test_a_process_folds_after_every_fold_every_deltas_it_wrote(
    store: PostgresStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counts, "FOLD_EVERY", 10)
    store.fold_counts()
    store._unfolded = 0
    for i in range(9):
        store.enqueue("jobs", [NewMessage(b"%d" % i)])
    assert deltas(store) == 9
    store.enqueue("jobs", [NewMessage(b"10")])  # the tenth write folds
    assert deltas(store) == 0
    assert kept_rows(store) == {("jobs", counts.LIVE): 10}
    # Five dead letters requeued in one statement append ten delta rows:
    # counted as ten, so that statement folds on its own.
    for r in store.claim("jobs", worker_id="w", limit=5, lease_seconds=30).leased:
        store.dead_letter("jobs", Lease(r.id, r.receipt or ""))
    store.fold_counts()
    store._unfolded = 0
    assert len(store.requeue("jobs")) == 5
    assert deltas(store) == 0
    assert_exact(store, clock)


def test_a_read_that_sees_many_deltas_folds(
    store: PostgresStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(8):
        store.enqueue(f"q{i % 2}", [NewMessage(b"x")])
    assert deltas(store) == 8
    monkeypatch.setattr(counts, "FOLD_ABOVE", 100)
    store.stats("q0")
    assert deltas(store) == 8  # under the threshold: left alone
    monkeypatch.setattr(counts, "FOLD_ABOVE", 5)
    assert [s.ready for s in store.all_stats()] == [4, 4]  # exact before the fold...
    assert deltas(store) == 0  # ...which it then ran
    assert_exact(store, clock)


def test_a_fold_leaves_uncommitted_deltas_for_the_next(
    store: PostgresStore, postgres_store_url: str, clock: ManualClock
) -> None:
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(3)])
    with admin(postgres_store_url) as conn:
        conn.execute("BEGIN")
        conn.execute(
            f"INSERT INTO {store._qschema}.lq_messages (queue, payload, state, priority, "
            "attempts, created_at, available_at) VALUES ('jobs', '\\x00', 0, 0, 0, 0, 0)"
        )
        assert store.fold_counts()  # does not wait for the open transaction
        assert store.stats("jobs").ready == 3
        conn.execute("COMMIT")
    assert deltas(store) == 1  # the late writer's delta waits for the next fold
    assert store.stats("jobs").ready == 4
    assert_exact(store, clock)


def test_only_one_folder_runs_and_nobody_waits_for_it(
    store: PostgresStore, postgres_store_url: str
) -> None:
    store.enqueue("jobs", [NewMessage(b"x")])
    with admin(postgres_store_url) as conn:
        conn.execute("BEGIN")
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (counts.fold_lock_key(store.schema),)
        )
        started = time.monotonic()
        assert store.fold_counts() is False
        assert time.monotonic() - started < 1.0
        assert deltas(store) == 1
        conn.execute("COMMIT")
    assert store.fold_counts() is True and deltas(store) == 0


def test_concurrent_writers_and_folds_keep_the_counts_exact(postgres_store_url: str) -> None:
    store = PostgresStore(postgres_store_url)
    failures: list[BaseException] = []
    stop = threading.Event()
    folds = [0]

    def writer(n: int) -> None:
        name = f"q{n % 3}"
        try:
            for i in range(60):
                store.enqueue(
                    name, [NewMessage(b"x", delay=(i % 4) * 0.05) for _ in range(1 + i % 3)]
                )
                for r in store.claim(name, worker_id=f"w{n}", limit=2, lease_seconds=30).leased:
                    lease = Lease(r.id, r.receipt or "")
                    if r.id % 5 == 0:
                        store.dead_letter(name, lease)
                    elif r.id % 7 == 0:
                        store.release(name, lease, delay=0.01)
                    else:
                        store.ack(name, [lease])
                if i % 20 == 0:
                    store.requeue(name, limit=3)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def folder() -> None:
        while not stop.is_set():
            folds[0] += store.fold_counts()
            time.sleep(0.002)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    fold_thread = threading.Thread(target=folder)
    fold_thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    fold_thread.join()
    assert failures == []
    assert folds[0] > 0
    assert store.recount() == []
    # Stats and a count of the rows, read at one fixed instant of a test clock.
    clock = ManualClock(store.clock.now() + 1000)
    check = PostgresStore(postgres_store_url, clock=clock)
    assert_exact(check, clock)
    every = check.all_stats()
    assert [s.queue for s in every] == ["q0", "q1", "q2"]
    assert all(s.ready > 0 and s.dead > 0 for s in every)
    check.close()
    store.close()


def test_a_version_1_schema_with_messages_is_migrated_with_exact_counts(
    postgres_store_url: str, clock: ManualClock
) -> None:
    url = postgres_store_url
    schema = f'"{parse_postgres_url(url).schema}"'
    with admin(url) as conn, conn.transaction():
        conn.execute(f"CREATE SCHEMA {schema}")
        for statement in MIGRATIONS[0]:
            conn.execute(statement.format(s=schema))
        conn.execute(f"INSERT INTO {schema}.lq_schema_version (version) VALUES (1)")
        conn.execute(
            f"INSERT INTO {schema}.lq_messages (queue, payload, state, priority, attempts, "
            "created_at, available_at, leased_by, receipt, failed_at) "
            "SELECT 'q' || (i %% 3), '\\x00', i %% 3, i %% 2, 1, 0, "
            "%(now)s + (i %% 4) * 10 - 15, CASE WHEN i %% 3 = 1 THEN 'w' END, "
            "CASE WHEN i %% 3 = 1 THEN 'r' || i END, CASE WHEN i %% 3 = 2 THEN 0 END "
            "FROM generate_series(1, 1200) i",
            {"now": clock.now()},
        )
        assert conn.execute(f"SELECT to_regclass('{schema}.lq_counts')").fetchone() == (None,)
    store = PostgresStore(url, clock=clock)
    with admin(url) as conn:
        row = conn.execute(f"SELECT max(version) FROM {schema}.lq_schema_version").fetchone()
    assert row == (SCHEMA_VERSION,) == (3,)
    assert kept_rows(store) == {("q0", 0): 400, ("q1", 0): 400, ("q2", 2): 400}
    assert deltas(store) == 0
    assert sum(s.dead for s in store.all_stats()) == 400
    assert_exact(store, clock)
    store.enqueue("q0", [NewMessage(b"after")])  # the triggers run from the first write
    assert store.stats("q0").ready == recounted(store, "q0", clock.now()).ready
    assert_exact(store, clock)
    store.close()


def test_check_reports_a_tampered_count_and_repair_rebuilds_it(
    store: PostgresStore, postgres_store_url: str, clock: ManualClock
) -> None:
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(12)])
    store.enqueue("mail", [NewMessage(b"y")])
    store.fold_counts()
    with admin(postgres_store_url) as conn:
        conn.execute(
            f"UPDATE {store._qschema}.lq_counts SET n = n + 2 WHERE queue = 'jobs' AND kind = 0"
        )
        conn.execute(
            f"INSERT INTO {store._qschema}.lq_count_deltas VALUES ('ghost', 2, 1), ('mail', 0, -1)"
        )
    expected = [
        CountDifference("ghost", "dead", 1, 0),
        CountDifference("jobs", "live", 14, 12),
        CountDifference("mail", "live", 0, 1),
    ]
    assert store.recount() == expected
    assert store.check() == [
        f"counts: {d}; run 'localqueue store check --repair' to rebuild them" for d in expected
    ]
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["--store", postgres_store_url, "store", "check"])
    assert result.exit_code == 1
    assert result.output.splitlines()[1] == (
        "counts: queue 'jobs': 14 live message(s) counted in the kept counts, 12 in the "
        "messages; run 'localqueue store check --repair' to rebuild them"
    )
    result = runner.invoke(
        build_cli(), ["--store", postgres_store_url, "store", "check", "--repair"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:3] == [f"repaired: {d}" for d in expected]
    assert result.output.splitlines()[3].startswith("ok: postgresql://")
    assert store.stats("jobs").ready == 12 and store.stats("mail").ready == 1
    assert kept_rows(store) == {("jobs", 0): 12, ("mail", 0): 1} and deltas(store) == 0
    assert store.recount(repair=True) == []  # nothing left to repair
    assert_exact(store, clock)


def test_hand_written_sql_keeps_the_counts(
    store: PostgresStore, postgres_store_url: str, clock: ManualClock
) -> None:
    store.enqueue("jobs", [NewMessage(b"x") for _ in range(10)])
    s = store._qschema
    with admin(postgres_store_url) as conn:
        conn.execute(f"UPDATE {s}.lq_messages SET queue = 'moved' WHERE id % 2 = 0")
        conn.execute(f"UPDATE {s}.lq_messages SET state = 2, failed_at = 0 WHERE id % 3 = 0")
        conn.execute(
            f"DELETE FROM {s}.lq_messages WHERE id = (SELECT min(id) FROM {s}.lq_messages)"
        )
    assert_exact(store, clock)
    with admin(postgres_store_url) as conn:
        conn.execute(f"TRUNCATE {s}.lq_messages")
    assert store.all_stats() == [] and kept_rows(store) == {} and deltas(store) == 0
    assert_exact(store, clock)


def test_a_large_ready_backlog_is_not_read(store: PostgresStore, postgres_store_url: str) -> None:
    # 200,000 ready messages and 50 delayed: the statement must touch only a
    # few pages of the claim index, not the backlog (its buffer count says so).
    # At ten million messages a plan that read the table took 0.9 s.
    s = store._qschema
    with admin(postgres_store_url) as conn:
        conn.execute(
            f"INSERT INTO {s}.lq_messages (queue, payload, state, priority, attempts, "
            "created_at, available_at) SELECT 'big', '\\x00', 0, i % 3, 0, 0, 0 "
            "FROM generate_series(1, 200000) i"
        )
        conn.execute(
            f"INSERT INTO {s}.lq_messages (queue, payload, state, priority, attempts, "
            "created_at, available_at) SELECT 'big', '\\x00', 0, 1, 0, 0, 1e12 "
            "FROM generate_series(1, 50) i"
        )
        conn.execute(f"VACUUM ANALYZE {s}.lq_messages")
        store.fold_counts()
        statement = store._count_sql["one"]
        conn.execute("SET jit = off")
        # Index reads made ten times dearer, as a table fifty times larger
        # makes them look to the planner: the not-yet-due ranges must still
        # be index ranges, which holds only while the planner can see "now"
        # (from the statistics, nothing is due later) - a "now" it could not
        # see was estimated at a third of the table and read it whole.
        conn.execute("SET random_page_cost = 40")
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement,
            store._params(queue="big"),
        ).fetchone()
    assert plan is not None
    buffers = plan[0][0]["Plan"]["Shared Hit Blocks"] + plan[0][0]["Plan"]["Shared Read Blocks"]
    assert buffers < 200  # the table alone is over 1,000 pages
    stats = store.stats("big")
    assert (stats.ready, stats.delayed) == (200_000, 50)


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["put", "put_many", "get", "ack", "release", "dead", "requeue", "purge", "advance"]
        ),
        st.sampled_from(["a", "b"]),
        st.integers(0, 60),
    ),
    max_size=25,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_random_operations_keep_the_counts_exact(
    store: PostgresStore, clock: ManualClock, ops: list[tuple[str, str, int]]
) -> None:
    for name in "ab":  # the store outlives the examples: start each from empty
        store.purge(name)
    queues = {n: PersistentQueue(n, store=store, lease_timeout=5, max_attempts=2) for n in "ab"}
    held: list[Any] = []
    for op, name, n in ops:
        q = queues[name]
        if op == "put":
            q.put(n, delay=n % 3, priority=n % 2)
        elif op == "put_many":
            q.put_many(range(n))
        elif op == "get":
            held += q.get_many(1 + n % 3, block=False) if q.stats().ready else []
        elif held and op in ("ack", "release", "dead"):
            message = held.pop(n % len(held))
            try:
                if op == "ack":
                    message.ack()
                elif op == "release":
                    message.release(delay=n % 2)
                else:
                    message.dead_letter("boom")
            except Exception:
                pass  # a lease that expired: the store refuses it, counts unchanged
        elif op == "requeue":
            store.requeue(q.name, limit=1 + n % 3)
        elif op == "purge":
            q.purge(state=State.DEAD if n % 2 else State.DELAYED)
        elif op == "advance":
            clock.advance(n % 7)
        if n % 4 == 0:
            store.fold_counts()
        assert_exact(store, clock)
