"""What only the PostgreSQL store has: server time, schema versions, lost
connections, LISTEN/NOTIFY waits, concurrent claims, and its URL options.
(The delivery contract itself runs on PostgreSQL through the harness's
StoreContract and QueueContract, in test_postgres_contract.py; the core's
store-dependent worker and event tests in test_postgres_worker.py.)"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from localqueue.errors import SchemaVersionError, StoreConnectionLost, StoreCorruptError, StoreError
from localqueue.store import Lease, NewMessage, State, open_store
from localqueue_harness.runner import run
from localqueue_postgres.pytest_plugin import with_option
from localqueue_postgres.schema import SCHEMA_VERSION
from localqueue_postgres.store import PostgresStore
from localqueue_postgres.url import parse_postgres_url

Q = "jobs"


@pytest.fixture
def store(postgres_store_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_store_url)
    yield opened
    opened.close()


def admin(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(parse_postgres_url(url).conninfo, autocommit=True)


# -- URL ---------------------------------------------------------------------


def test_url_options_are_ours_and_the_rest_go_to_libpq() -> None:
    parsed = parse_postgres_url(
        "postgres://app:s3cret@db:5433/jobs?sslmode=disable&schema=work&notify=off"
    )
    assert parsed.schema == "work" and parsed.notify is False
    assert parsed.poll_interval == 0.1  # polling alone: poll often
    assert parsed.conninfo == "postgresql://app:s3cret@db:5433/jobs?sslmode=disable"
    assert "s3cret" not in parsed.display_url and "app:***@db:5433" in parsed.display_url
    assert parse_postgres_url("postgresql://db/jobs").poll_interval == 1.0


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("schema=Bad-Name", "plain lower-case"),
        ("notify=maybe", "on or off"),
        ("poll_interval=soon", "number of seconds"),
        ("poll_interval=0", "between"),
        ("schema=a&schema=b", "'schema' is given more than once"),
        ("sslmode=disable&sslmode=require", "'sslmode' is given more than once"),
    ],
)
def test_bad_url_options_say_what_to_write(query: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        parse_postgres_url(f"postgresql://app:s3cret@db/jobs?{query}")
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_both_schemes_open_the_store(postgres_store_url: str) -> None:
    for scheme in ("postgresql", "postgres"):
        url = scheme + postgres_store_url[len("postgresql") :]
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        store.close()


def test_an_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to PostgreSQL at .*check the store URL"):
        PostgresStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


# -- time --------------------------------------------------------------------


def test_leases_and_delays_use_the_server_clock_not_this_hosts(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # this host runs an hour fast
    [record] = store.enqueue(Q, [NewMessage(b"1", delay=0.0)]).records
    assert abs(record.created_at - real()) < 60  # stamped by the server
    [leased] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    assert 25 < leased.available_at - real() < 35
    assert leased.receipt is not None
    assert store.ack(Q, [Lease(leased.id, leased.receipt)]) == []


def test_the_store_clock_follows_the_server(store: PostgresStore) -> None:
    assert abs(store.clock.now() - time.time()) < 5  # same machine: offset ~0


# -- schema ------------------------------------------------------------------


def test_a_newer_schema_is_refused_and_left_untouched(postgres_store_url: str) -> None:
    store = PostgresStore(postgres_store_url)
    store.enqueue(Q, [NewMessage(b"kept")])
    store.close()
    schema = parse_postgres_url(postgres_store_url).schema
    with admin(postgres_store_url) as conn:
        conn.execute(f"INSERT INTO {schema}.lq_schema_version (version) VALUES (99)")
        before = conn.execute(f"SELECT id, payload FROM {schema}.lq_messages").fetchall()
    with pytest.raises(SchemaVersionError, match=r"version 99, newer .* upgrade") as caught:
        PostgresStore(postgres_store_url)
    assert (caught.value.found, caught.value.supported) == (99, SCHEMA_VERSION)
    with admin(postgres_store_url) as conn:
        assert conn.execute(f"SELECT id, payload FROM {schema}.lq_messages").fetchall() == before


def test_a_foreign_lq_messages_table_is_refused(postgres_store_url: str) -> None:
    schema = parse_postgres_url(postgres_store_url).schema
    with admin(postgres_store_url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.lq_messages (x int)")
    with pytest.raises(StoreCorruptError, match="did not create"):
        PostgresStore(postgres_store_url)


def test_many_processes_opening_a_new_schema_create_it_once(postgres_store_url: str) -> None:
    errors: list[BaseException] = []

    def open_and_put(n: int) -> None:
        try:
            s = PostgresStore(postgres_store_url)
            s.enqueue(Q, [NewMessage(str(n).encode())])
            s.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_put, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = PostgresStore(postgres_store_url)
    assert store.stats(Q).ready == 8
    schema = parse_postgres_url(postgres_store_url).schema
    with admin(postgres_store_url) as conn:
        rows = conn.execute(f"SELECT version FROM {schema}.lq_schema_version ORDER BY 1").fetchall()
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (f"{schema}.lq_messages",)
        ).fetchone()
    assert rows == [(version,) for version in range(1, SCHEMA_VERSION + 1)]  # each step once
    assert options is not None and "autovacuum_vacuum_scale_factor=0.01" in str(options[0])
    store.close()


# -- connections --------------------------------------------------------------


def _kill_backends(url: str) -> None:
    """Terminate this test's sessions (named by the fixture's application_name),
    as a failover would, leaving other users of the server alone."""
    with admin(url) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (parse_postgres_url(url).schema,),
        ).fetchone()
    assert killed is not None and killed[0] > 0, "no session of this test to kill"


def test_a_lost_connection_is_reported_for_a_write_then_reconnected(
    store: PostgresStore, postgres_store_url: str
) -> None:
    store.enqueue(Q, [NewMessage(b"1")])
    _kill_backends(postgres_store_url)
    with pytest.raises(StoreConnectionLost, match=r"during claim.*may or may not"):
        store.claim(Q, worker_id="w", limit=1, lease_seconds=30)
    # The next call connects again and nothing confirmed was lost.
    [leased] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    assert leased.payload == b"1"


def test_a_read_on_a_lost_connection_is_retried(
    store: PostgresStore, postgres_store_url: str
) -> None:
    store.enqueue(Q, [NewMessage(b"1")])
    _kill_backends(postgres_store_url)
    assert store.stats(Q).ready == 1


def test_each_thread_has_its_own_connection(store: PostgresStore) -> None:
    store.enqueue(Q, [NewMessage(str(n).encode()) for n in range(400)])
    got: list[int] = []
    lock = threading.Lock()

    def drain() -> None:
        while True:
            batch = store.claim(Q, worker_id=threading.current_thread().name, limit=7,
                                lease_seconds=60).leased  # fmt: skip
            if not batch:
                return
            assert store.ack(Q, [Lease(r.id, r.receipt or "") for r in batch]) == []
            with lock:
                got.extend(r.id for r in batch)

    threads = [threading.Thread(target=drain) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 400 and len(set(got)) == 400  # SKIP LOCKED: nothing leased twice


# -- waiting -----------------------------------------------------------------


def _wake_time(waiter: PostgresStore, producer: PostgresStore) -> float:
    woke: list[float] = []

    def wait() -> None:
        waiter.wait(Q, 10.0)
        woke.append(time.monotonic())

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)  # the waiter is asleep on an empty queue
    start = time.monotonic()
    producer.enqueue(Q, [NewMessage(b"1")])
    thread.join(15)
    assert woke, "the waiter never woke"
    return woke[0] - start


def test_a_put_from_another_connection_wakes_a_waiter_through_notify(
    postgres_store_url: str,
) -> None:
    # poll_interval=5: only a notification can wake the waiter within a second.
    waiter = PostgresStore(with_option(postgres_store_url, "poll_interval", "5"))
    producer = PostgresStore(postgres_store_url)
    assert _wake_time(waiter, producer) < 1.0
    waiter.close()
    producer.close()


def test_without_notify_waits_fall_back_to_polling(postgres_store_url: str) -> None:
    waiter = PostgresStore(
        with_option(with_option(postgres_store_url, "notify", "off"), "poll_interval", "0.05")
    )
    producer = PostgresStore(with_option(postgres_store_url, "notify", "off"))
    assert _wake_time(waiter, producer) < 1.0
    waiter.close()
    producer.close()


def test_a_wait_ends_when_a_delayed_message_comes_due(store: PostgresStore) -> None:
    store.enqueue(Q, [NewMessage(b"later", delay=0.4)])
    start = time.monotonic()
    store.wait(Q, 5.0)
    assert 0.3 < time.monotonic() - start < 2.0


# -- operations ----------------------------------------------------------------


def test_check_reports_an_inflight_row_without_a_receipt(
    store: PostgresStore, postgres_store_url: str
) -> None:
    [record] = store.enqueue(Q, [NewMessage(b"1")]).records
    assert store.check() == []
    with admin(postgres_store_url) as conn:
        conn.execute(f"UPDATE {store.schema}.lq_messages SET state = 1, receipt = NULL")
    assert store.check() == [f"message {record.id} is inflight without a receipt"]


def test_the_claim_is_served_by_the_claim_index(
    store: PostgresStore, postgres_store_url: str
) -> None:
    store.enqueue(Q, [NewMessage(b"x", delay=3600) for _ in range(2000)])
    store.enqueue(Q, [NewMessage(b"y")])
    with admin(postgres_store_url) as conn:
        conn.execute(f"ANALYZE {store.schema}.lq_messages")
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                f"EXPLAIN SELECT id FROM {store.schema}.lq_messages WHERE queue = 'jobs' "
                "AND state < 2 AND available_at <= 1e10 "
                "ORDER BY priority DESC, available_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
        )
    assert "lq_messages_claim" in plan, plan


def test_dead_letters_and_requeue_keep_their_error(store: PostgresStore) -> None:
    store.enqueue(Q, [NewMessage(b"1")])
    [leased] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    from localqueue.store import ErrorInfo, MessageFilter

    error = ErrorInfo("ValueError", "bad ü input", "Traceback ...", at=store.clock.now())
    assert store.dead_letter(Q, Lease(leased.id, leased.receipt or ""), error=error)
    flt = MessageFilter(error_contains="BAD Ü")  # folded in Python, as on every store
    [dead] = store.list_messages(Q, state=State.DEAD, filter=flt)
    assert dead.last_error is not None and dead.last_error.message == "bad ü input"
    assert store.requeue(Q, filter=flt) == [leased.id]
    [again] = store.list_messages(Q, state=State.READY)
    assert again.attempts == 0 and again.last_error == dead.last_error


# -- processes -----------------------------------------------------------------


@pytest.mark.slow
def test_crash_recovery_with_twenty_kills_and_four_consumers(
    postgres_store_url: str, tmp_path: Path
) -> None:
    report = run(
        postgres_store_url, mode="crash-recovery", producers=2, consumers=4, messages=3000,
        kills=20, seed=11, lease=1.0, workdir=tmp_path / "crash",
    )  # fmt: skip
    assert report.kills == 20 and report.killed_consumers > 0
    assert report.passed, report.summary()
    assert report.lost == 0 and report.confirmed >= 3000


def test_crash_recovery_with_batch_consumers_loses_nothing(
    postgres_store_url: str, tmp_path: Path
) -> None:
    # Consumers lease 10 at once and ack them with the next batch's claim,
    # as a batch worker does: kills land inside batches.
    report = run(
        postgres_store_url, mode="crash-recovery", producers=2, consumers=3, messages=1500,
        kills=10, seed=12, lease=1.0, workdir=tmp_path / "crash", prefetch=10,
    )  # fmt: skip
    assert report.prefetch == 10 and report.kills == 10
    assert report.passed, report.summary()
    assert report.lost == 0 and report.confirmed == 1500


def test_an_older_schema_is_migrated_in_one_transaction_keeping_messages(
    postgres_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localqueue_postgres import schema as schema_module

    store = PostgresStore(postgres_store_url)
    [kept] = store.enqueue(Q, [NewMessage(b"kept")]).records
    store.close()
    name = parse_postgres_url(postgres_store_url).schema
    # A future version whose second step fails: nothing of it may stay.
    future = SCHEMA_VERSION + 1
    broken = (*schema_module.MIGRATIONS, ("ALTER TABLE {s}.lq_messages ADD COLUMN note text",
                                          "SELECT 1/0"))  # fmt: skip
    monkeypatch.setattr(schema_module, "MIGRATIONS", broken)
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", future)
    with pytest.raises(StoreError, match="division by zero"):
        PostgresStore(postgres_store_url)
    with admin(postgres_store_url) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'lq_messages'", (name,))]  # fmt: skip
        assert "note" not in columns
    # The same step, working: that version is reached and the message is still there.
    fixed = (*broken[:-1], ("ALTER TABLE {s}.lq_messages ADD COLUMN note text",))
    monkeypatch.setattr(schema_module, "MIGRATIONS", fixed)
    store = PostgresStore(postgres_store_url)
    assert store.get(Q, kept.id) is not None
    store.close()
    with admin(postgres_store_url) as conn:
        versions = conn.execute(f"SELECT version FROM {name}.lq_schema_version ORDER BY 1")
        assert [r[0] for r in versions] == list(range(1, future + 1))


def test_a_worker_rides_out_killed_connections(
    postgres_store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from localqueue import PersistentQueue
    from localqueue.worker import persistent_worker

    queue = PersistentQueue("jobs", store=postgres_store_url, lease_timeout=1.0)
    queue.put_many(list(range(300)))
    seen: set[int] = set()

    @persistent_worker(queue, handle_signals=False, poll_interval=0.05)
    def handle(value: int) -> None:
        seen.add(value)
        time.sleep(0.002)

    done: list[object] = []
    runner = threading.Thread(target=lambda: done.append(handle.run()))
    caplog.set_level(logging.WARNING, logger="localqueue.worker")
    runner.start()
    deadline = time.monotonic() + 60
    kills = 0
    while time.monotonic() < deadline:
        if kills < 3 and len(seen) > 60 * (kills + 1):
            _kill_backends(postgres_store_url)
            kills += 1
        if kills == 3 and queue.stats().total == 0:
            break
        time.sleep(0.05)
    handle.stop()
    runner.join(10)
    assert done and kills == 3, "the worker stopped or never got far enough"
    assert seen == set(range(300)) and queue.stats().total == 0
    lost = [r.getMessage() for r in caplog.records if "lost the connection" in r.getMessage()]
    assert lost, "no connection was lost: the test did not test anything"
    queue.close()
