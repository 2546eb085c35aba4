"""The SQLite store's kept counts: exact after every operation, folded, migrated, repaired."""

from __future__ import annotations

import json
import os
import queue as stdlib_queue
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localqueue import ManualClock, PersistentQueue
from localqueue.cli import build_cli
from localqueue.store import (
    MessageRecord,
    NewMessage,
    QueueStats,
    State,
    SupportsAllStats,
    SupportsRecount,
)
from localqueue.stores.sqlite import SQLiteStore
from localqueue.stores.sqlite import counts as sqlite_counts
from localqueue.stores.sqlite import schema as sqlite_schema


def recounted(store: SQLiteStore, queue: str) -> QueueStats:
    """What stats() must say, by counting every message (the pre-version-4 way)."""
    return store._counted_stats(queue)


def same(kept: QueueStats, counted: QueueStats) -> None:
    """Equal, but for the oldest ready age on a real clock, read a moment apart."""
    a, b = kept.as_dict(), counted.as_dict()
    age_a, age_b = a.pop("oldest_ready_age"), b.pop("oldest_ready_age")
    assert a == b
    assert (age_a is None) == (age_b is None)
    if kept.oldest_ready_age is not None and counted.oldest_ready_age is not None:
        assert abs(kept.oldest_ready_age - counted.oldest_ready_age) < 1.0


def assert_exact(store: SQLiteStore) -> None:
    names = store._counted_queues()
    assert store.queues() == names
    every = store.all_stats()
    assert [s.queue for s in every] == names
    for kept, name in zip(every, names, strict=True):
        same(kept, recounted(store, name))
        same(store.stats(name), recounted(store, name))
    assert store.recount() == []
    assert store.check() == []


def test_the_sqlite_store_offers_the_counting_capabilities(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    assert isinstance(store, SupportsAllStats) and isinstance(store, SupportsRecount)
    store.close()


def test_counts_are_exact_after_every_kind_of_operation(tmp_path: Path) -> None:
    clock = ManualClock(1000.0)
    store = SQLiteStore(tmp_path / "q.db", clock=clock)
    q = PersistentQueue("jobs", store=store, lease_timeout=10, max_attempts=2)
    other = PersistentQueue("other", store=store)
    # Enough puts to fold several times, so old and fresh rows both change.
    q.put_many(range(2500))
    other.put_many(range(30), priority=5)
    q.put("later", delay=60)
    q.put("urgent", priority=9)
    assert_exact(store)
    assert store.stats("jobs").ready == 2501 and store.stats("jobs").delayed == 1
    first = q.get_many(3)
    q.ack(first[0])
    q.release(first[1], delay=5)
    q.dead_letter(first[2], error="boom")
    assert_exact(store)
    solo = PersistentQueue("solo", store=store, lease_timeout=10, max_attempts=2)
    solo.put("x")
    solo.get()  # its lease expires: ready again
    clock.advance(11)
    assert store.stats("solo").ready == 1 and store.stats("solo").inflight == 0
    assert_exact(store)
    solo.get()
    clock.advance(11)
    with pytest.raises(stdlib_queue.Empty):
        solo.get(block=False)  # finds it exhausted and dead-letters it
    assert store.stats("solo").dead == 1
    assert_exact(store)
    assert len(solo.requeue_dead(all=True)) == 1
    assert len(q.requeue_dead(all=True)) >= 1
    assert_exact(store)
    store.purge("jobs", state=State.DELAYED)
    store.purge("other")
    assert_exact(store)
    assert "other" not in store.queues()
    q.purge()
    solo.purge()
    assert store.all_stats() == [] and store.queues() == []
    assert_exact(store)
    store.close()


def test_fresh_rows_are_folded_and_the_watermark_only_rises(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    q = PersistentQueue("jobs", store=store)
    q.put_many(range(sqlite_counts.FOLD_EVERY + 10))
    assert store._counted_upto >= sqlite_counts.FOLD_EVERY  # the put folded
    for _ in range(5):
        q.put("one more")
    kept = dict(
        (state, n)
        for _, state, n in store._pool.get().execute("SELECT * FROM lq_counts WHERE queue = 'jobs'")
    )
    assert kept[sqlite_counts.LIVE] == store._counted_upto  # every counted row is live
    assert store.stats("jobs").ready == sqlite_counts.FOLD_EVERY + 15
    assert_exact(store)
    store.close()


def test_a_batch_put_folds_inside_its_own_transaction(tmp_path: Path) -> None:
    """A batch that makes a fold due folds before it commits: one commit, not two."""
    store = SQLiteStore(tmp_path / "q.db")
    statements: list[str] = []
    store._pool.get().set_trace_callback(statements.append)
    store.enqueue("jobs", [NewMessage(b"1")] * (sqlite_counts.FOLD_EVERY + 5))
    store._pool.get().set_trace_callback(None)
    assert [sql for sql in statements if sql.strip().upper() == "COMMIT"] == ["COMMIT"]
    watermark = store._pool.get().execute(f"SELECT {sqlite_counts.WATERMARK_SQL}").fetchone()[0]
    assert watermark == sqlite_counts.FOLD_EVERY + 5 == store._counted_upto
    assert_exact(store)
    store.close()


def test_a_second_process_view_sees_what_the_first_folded(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    writer = SQLiteStore(path)
    reader = SQLiteStore(path)
    PersistentQueue("jobs", store=writer).put_many(range(3000))
    PersistentQueue("jobs", store=writer).put("x")
    assert reader.stats("jobs").ready == 3001
    [mine], [theirs] = reader.all_stats(), writer.all_stats()
    same(mine, theirs)
    writer.close()
    reader.close()


def test_a_version_3_file_is_migrated_and_counted_in_chunks(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    sqlite_schema.migrate(conn, path, sqlite_schema.MIGRATIONS[:3])
    conn.executemany(
        "INSERT INTO lq_messages (id, queue, payload, state, priority, attempts, created_at, "
        "available_at) VALUES (?, ?, x'00', ?, 0, 1, 0, 0)",
        [(i, f"q{i % 3}", 2 if i % 10 == 0 else 0) for i in range(1, 1201)],
    )
    conn.close()
    monkeypatch.setattr(sqlite_counts, "FOLD_CHUNK", 500)  # three chunks
    seen: list[tuple[int, int]] = []
    store = SQLiteStore(path, migrate=False)
    assert store.migrate(progress=lambda done, total: seen.append((done, total))) == (
        3,
        sqlite_schema.SCHEMA_VERSION,
    )
    assert seen == [(500, 1200), (1000, 1200), (1200, 1200)]
    assert [s.queue for s in store.all_stats()] == ["q0", "q1", "q2"]
    assert sum(s.dead for s in store.all_stats()) == 120
    assert sum(s.ready for s in store.all_stats()) == 1080
    assert_exact(store)
    store.close()


def test_an_older_file_opened_as_found_is_counted_the_old_way(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    sqlite_schema.migrate(conn, path, sqlite_schema.MIGRATIONS[:3])
    conn.execute(
        "INSERT INTO lq_messages (queue, payload, state, priority, attempts, created_at, "
        "available_at) VALUES ('jobs', x'00', 0, 0, 0, 0, 0)"
    )
    conn.close()
    store = SQLiteStore(path, create=False, migrate=False)
    assert store.stats("jobs").ready == 1 and store.queues() == ["jobs"]
    assert [s.ready for s in store.all_stats()] == [1]
    assert store.recount() == []
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_imported_messages_below_the_watermark_are_counted(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    q = PersistentQueue("jobs", store=store)
    q.put_many(range(1500))
    q.purge()  # the watermark stays up; ids 1..1500 are free for an import
    assert store._counted_upto >= 1000
    record = MessageRecord(7, "copied", b'"x"', State.DEAD, 0, 3, 0.0, 0.0)
    store.import_messages([record, record._replace(id=8, state=State.READY)])
    assert store.stats("copied").dead == 1 and store.stats("copied").ready == 1
    assert_exact(store)
    store.close()


def test_check_reports_a_tampered_count_and_repair_rebuilds_it(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put_many(range(1200))
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE lq_counts SET n = n + 2 WHERE queue = 'jobs' AND state = 0")
    conn.commit()
    conn.close()
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["--store", str(path), "store", "check"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "counts: queue 'jobs': 1202 live message(s) counted in the kept counts, 1200 in the "
        "messages; run 'localqueue store check --repair' to rebuild them"
    )
    result = runner.invoke(build_cli(), ["--store", str(path), "store", "check", "--repair"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "repaired: queue 'jobs': 1202 live message(s) counted in the kept counts, 1200 in the "
        "messages",
        f"ok: sqlite://{path} passed the integrity check",
    ]
    store = SQLiteStore(path)
    assert store.stats("jobs").ready == 1200
    assert_exact(store)
    store.close()


def test_repair_on_a_store_without_kept_counts_is_refused_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_cli(), ["--store", "memory://", "store", "check", "--repair"])
    assert result.exit_code == 1
    assert result.output.strip().endswith("does not support repairing counts (it keeps none)")


def test_a_hand_deleted_row_keeps_the_counts_right(tmp_path: Path) -> None:
    # The triggers live in the file: a sqlite3 shell that deletes an old row
    # keeps the counts too.
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put_many(range(1200))
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM lq_messages WHERE id IN (1, 2, 1199)")
    conn.commit()
    conn.close()
    assert store.stats("jobs").ready == 1197
    assert_exact(store)
    store.close()


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "put",
                "put_many",
                "get",
                "ack",
                "release",
                "dead",
                "requeue",
                "purge_dead",
                "advance",
                "extend",
            ]
        ),
        st.sampled_from(["a", "b"]),
        st.integers(0, 400),
    ),
    max_size=40,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_random_operations_keep_the_counts_exact(
    tmp_path: Path, ops: list[tuple[str, str, int]]
) -> None:
    path = tmp_path / f"p{abs(hash(tuple(ops)))}.db"
    clock = ManualClock(0.0)
    store = SQLiteStore(path, clock=clock)
    queues = {n: PersistentQueue(n, store=store, lease_timeout=5, max_attempts=2) for n in "ab"}
    held: list = []  # type: ignore[type-arg]
    try:
        for op, name, n in ops:
            q = queues[name]
            if op == "put":
                q.put(n, delay=n % 3, priority=n % 2)
            elif op == "put_many":
                q.put_many(range(n * 3))  # up to 1200: folds happen
            elif op == "get":
                held += q.get_many(1 + n % 3, block=False) if q.stats().ready else []
            elif held and op in ("ack", "release", "dead", "extend"):
                message = held.pop(n % len(held))
                try:
                    if op == "ack":
                        message.ack()
                    elif op == "release":
                        message.release(delay=n % 2)
                    elif op == "dead":
                        message.dead_letter("boom")
                    else:
                        message.extend(3)
                        held.append(message)
                except Exception:
                    pass  # a lease that expired: the store refuses it, counts unchanged
            elif op == "requeue":
                store.requeue(q.name, limit=1 + n % 3)
            elif op == "purge_dead":
                q.purge(state=State.DEAD)
            elif op == "advance":
                clock.advance(n % 7)
            assert_exact(store)
    finally:
        store.close()


def test_the_stats_benchmark_runs_and_compares_kept_counts_with_counting(tmp_path: Path) -> None:
    """The benchmark checks kept counts against counting before it times them;
    a tiny run keeps the script working (its timings are not looked at)."""
    saved = tmp_path / "runs.json"
    script = Path(__file__).parent.parent / "examples" / "stats_benchmark.py"
    done = subprocess.run(
        [sys.executable, str(script), "--sizes", "100,1500", "--queues", "3", "--per-queue",
         "50", "--delayed", "200", "--repeats", "1", "--baseline-repeats", "1",
         "--save", str(saved)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "LOCALQUEUE_PLUGINS": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [run] = json.loads(saved.read_text())
    cases = [row["case"] for row in run["results"]["rows"]]
    assert cases == [
        "one queue, 100 ready: stats",
        "one queue, 1,500 ready: stats",
        "3 queues x 50: all_stats",
        "one queue, 200 delayed: stats",
    ]
    assert all(row["ratio"] > 0 for row in run["results"]["rows"])


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--sizes", "abc"], "give positive counts, comma-separated and ascending"),
        (["--sizes", "100,10"], "give positive counts, comma-separated and ascending"),
        (["--sizes", "-5"], "give positive counts, comma-separated and ascending"),
        (["--queues", "-3"], "give a whole number, 0 or more"),
        (["--repeats", "0"], "--repeats and --baseline-repeats must be at least 1"),
    ],
)
def test_the_stats_benchmark_refuses_bad_arguments_in_one_line(
    arguments: list[str], said: str
) -> None:
    script = Path(__file__).parent.parent / "examples" / "stats_benchmark.py"
    done = subprocess.run(
        [sys.executable, str(script), *arguments], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert said in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
