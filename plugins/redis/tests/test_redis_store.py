"""What only the Redis store has: server time, waking a waiter from another
process, durability checks, lost connections, store info, the CLI on it,
and what careless or hostile callers do. (The delivery contract itself runs
on Redis through the harness's StoreContract and QueueContract, in
test_redis_contract.py.)"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from localqueue import PersistentQueue
from localqueue.cli import build_cli
from localqueue.store import (
    FinishedCounts,
    Lease,
    NewMessage,
    SettleAction,
    Settlement,
    State,
    StoreError,
    StoreNotFound,
    SupportsInfo,
    SupportsSettleAndClaim,
    open_store,
)
from localqueue_redis.pytest_plugin import with_option
from localqueue_redis.store import RedisStore

Q = "jobs"


@pytest.fixture
def store(redis_store_url: str) -> Iterator[RedisStore]:
    opened = RedisStore(redis_store_url)
    yield opened
    opened.close()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)
    return result.exit_code, result.output


# -- time and basics -----------------------------------------------------------------


def test_leases_and_delays_use_the_server_clock_not_this_hosts(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # this host runs an hour fast
    [record] = store.enqueue(Q, [NewMessage(b"1")]).records
    assert abs(record.created_at - real()) < 60  # stamped by the server
    [leased] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    assert 25 < leased.available_at - real() < 35
    assert store.ack(Q, [Lease(leased.id, leased.receipt or "")]) == []


def test_the_store_clock_follows_the_server(store: RedisStore) -> None:
    assert abs(store.clock.now() - time.time()) < 5  # same machine: offset ~0


def test_ids_are_never_reused_across_reopens_and_queues(redis_store_url: str) -> None:
    first = RedisStore(redis_store_url)
    [a] = first.enqueue("one", [NewMessage(b"a")]).records
    [b] = first.enqueue("two", [NewMessage(b"b")]).records
    [leased] = first.claim("two", worker_id="w", limit=1, lease_seconds=30).leased
    first.ack("two", [Lease(leased.id, leased.receipt or "")])
    first.close()
    again = RedisStore(redis_store_url)
    [c] = again.enqueue("two", [NewMessage(b"c")]).records
    assert a.id < b.id < c.id
    again.close()


def test_huge_and_binary_payloads_round_trip(store: RedisStore) -> None:
    big = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB, every byte value
    [record] = store.enqueue(Q, [NewMessage(big)]).records
    got = store.get(Q, record.id)
    assert got is not None and got.payload == big
    [leased] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    assert leased.payload == big


def test_odd_queue_names_keep_apart(store: RedisStore) -> None:
    names = ["a}b", "a", "{a}", "été \U0010ffff", "a}:all"]
    for name in names:
        store.enqueue(name, [NewMessage(name.encode())])
    for name in names:
        [record] = store.list_messages(name)
        assert record.payload == name.encode()
    assert store.queues() == sorted(names)


def test_settle_and_claim_is_native_and_fenced(store: RedisStore) -> None:
    assert isinstance(store, SupportsSettleAndClaim)
    store.enqueue(Q, [NewMessage(b"1"), NewMessage(b"2"), NewMessage(b"3")])
    [first] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    lease = Lease(first.id, first.receipt or "")
    result = store.settle_and_claim(
        Q, [Settlement(lease)], worker_id="w", limit=2, lease_seconds=30
    )
    assert result.stale == [] and [r.payload for r in result.claimed.leased] == [b"2", b"3"]
    again = store.settle_and_claim(
        Q, [Settlement(lease, SettleAction.RELEASE)], worker_id="w", limit=1, lease_seconds=30
    )
    assert again.stale == [lease] and again.claimed.leased == []


# -- waiting -------------------------------------------------------------------


def _put_later(url: str, delay: float, sent: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = RedisStore(url)
    time.sleep(delay)
    sent.put(time.time())
    store.enqueue(Q, [NewMessage(b"wake")])
    store.close()


def test_a_put_from_another_process_wakes_a_waiter_within_50_ms(store: RedisStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    latencies = []
    for _ in range(5):
        sent: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        child = ctx.Process(target=_put_later, args=(store.url, 0.3, sent))
        child.start()
        try:
            start = time.monotonic()
            store.wait(Q, 10.0)
            woke = time.time()
            assert time.monotonic() - start < 5, "the waiter slept through the put"
            latencies.append(woke - sent.get(timeout=10))
        finally:
            child.join(10)
        store.purge(Q)
    assert statistics.median(latencies) < 0.05, latencies


def test_a_wait_ends_when_a_delayed_message_comes_due(store: RedisStore) -> None:
    store.enqueue(Q, [NewMessage(b"later", delay=0.3)])
    start = time.monotonic()
    store.wait(Q, 5.0)
    assert 0.2 < time.monotonic() - start < 1.0


def test_a_wait_times_out_on_an_idle_queue(store: RedisStore) -> None:
    start = time.monotonic()
    store.wait(Q, 0.2)
    assert 0.15 < time.monotonic() - start < 1.0


def test_a_blocking_get_in_a_thread_wakes_on_a_put(redis_store_url: str) -> None:
    queue = PersistentQueue(Q, store=redis_store_url)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(queue.get(timeout=5).value))
    thread.start()
    time.sleep(0.2)
    other = PersistentQueue(Q, store=redis_store_url)
    other.put({"n": 1})
    thread.join(5)
    assert got == [{"n": 1}]


# -- two processes ----------------------------------------------------------------


def _claim_all(url: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = RedisStore(url)
    ids = []
    while True:
        leased = store.claim(Q, worker_id="p", limit=7, lease_seconds=300).leased
        if not leased:
            break
        ids += [r.id for r in leased]
    out.put(ids)
    store.close()


def test_processes_claiming_at_once_never_lease_a_message_twice(store: RedisStore) -> None:
    store.enqueue(Q, [NewMessage(str(i).encode()) for i in range(600)])
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    children = [ctx.Process(target=_claim_all, args=(store.url, out)) for _ in range(3)]
    for child in children:
        child.start()
    seen = [i for _ in children for i in out.get(timeout=60)]
    for child in children:
        child.join(10)
    assert len(seen) == 600 and len(set(seen)) == 600


# -- info, check and the CLI ----------------------------------------------------------


def test_store_info_shows_version_persistence_and_memory(store: RedisStore) -> None:
    assert isinstance(store, SupportsInfo)
    store.enqueue(Q, [NewMessage(b"x")])
    info = store.info()
    assert info.kind == "redis" and info.settings["redis_version"]
    assert "AOF" in str(info.settings["persistence"]) or "RDB" in str(info.settings["persistence"])
    assert info.sizes["used_memory"] > 0
    assert info.counts[Q]["ready"] == 1
    code, out = cli("--store", store.url, "store", "info")
    assert code == 0 and "redis_version" in out, out


def test_check_is_clean_after_activity(store: RedisStore) -> None:
    store.enqueue(Q, [NewMessage(b"1"), NewMessage(b"2")])
    [leased] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    store.dead_letter(Q, Lease(leased.id, leased.receipt or ""))
    assert store.check() == []


def test_operator_commands_work_on_redis(redis_store_url: str) -> None:
    url = redis_store_url
    for value in ("1", "2", "3"):
        assert cli("--store", url, "queue", "add", "emails", "--value", value)[0] == 0
    queue = PersistentQueue("emails", store=url, max_attempts=1)
    message = queue.get(timeout=1)
    queue.dead_letter(message, error=ValueError("smtp down"))
    code, out = cli("--store", url, "queue", "stats", "emails", "--json")
    assert code == 0 and json.loads(out)["dead"] == 1 and json.loads(out)["ready"] == 2
    code, out = cli("--store", url, "queue", "list")
    assert code == 0 and "emails" in out
    code, out = cli("--store", url, "queue", "dead", "emails")
    assert code == 0 and "smtp down" in out
    code, out = cli("--store", url, "queue", "inspect", "emails", str(message.id))
    assert code == 0 and "smtp down" in out
    code, out = cli("--store", url, "queue", "health", "emails")
    assert code == 0, out
    code, out = cli("--store", url, "queue", "requeue-dead", "emails", "--all")
    assert code == 0, out
    assert queue.stats().ready == 3


def test_metrics_are_written_for_a_redis_store(redis_store_url: str, tmp_path: Path) -> None:
    pytest.importorskip("localqueue_prometheus")
    cli("--store", redis_store_url, "queue", "add", "emails", "--value", "1")
    target = tmp_path / "metrics.prom"
    code, out = cli("--store", redis_store_url, "metrics", "write", str(target))
    assert code == 0, out
    assert 'queue="emails"' in target.read_text()


def test_store_copy_both_ways_with_sqlite(redis_store_url: str, tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/src.sqlite3"
    source = PersistentQueue("emails", store=sqlite_url)
    source.put({"n": 1}, dedupe_key="k1")
    source.put({"n": 2}, delay=600, priority=3)
    dead = PersistentQueue("mail", store=sqlite_url, max_attempts=1)
    dead.put("boom")
    dead.dead_letter(dead.get(timeout=1), error=RuntimeError("broken"))
    code, out = cli("store", "copy", sqlite_url, redis_store_url)
    assert code == 0, out
    target = open_store(redis_store_url)
    assert target.queues() == ["emails", "mail"]
    [d] = target.list_messages("mail")
    assert d.state is State.DEAD and d.last_error is not None and d.last_error.message == "broken"
    [k] = target.list_messages("emails", filter=None, limit=1)
    assert k.dedupe_key == "k1"
    # A put after the copy gets an id above every copied one.
    top = max(r.id for q in ("emails", "mail") for r in target.list_messages(q))
    [new] = target.enqueue("emails", [NewMessage(b"3")]).records
    assert new.id > top
    target.close()
    back = f"sqlite:///{tmp_path}/back.sqlite3"
    code, out = cli("store", "copy", redis_store_url, back)
    assert code == 0, out
    copied = open_store(back)
    assert sorted(r.payload for r in copied.list_messages("emails")) == [
        b"3",
        b'{"n":1}',
        b'{"n":2}',
    ]
    copied.close()
    code, out = cli("store", "copy", sqlite_url, redis_store_url)
    assert code != 0 and "already holds" in out and out[-1] == "\n" and out.count("\n") == 1


def test_operator_commands_on_an_unused_prefix_create_nothing(redis_url: str) -> None:
    url = with_option(redis_url, "prefix", "lqneverused")
    with pytest.raises(StoreNotFound, match="no localqueue store"):
        open_store(url, existing=True)
    code, out = cli("--store", url, "queue", "stats", "x")
    assert code != 0 and out.count("\n") == 1 and "Traceback" not in out


# -- what careless or hostile callers do ---------------------------------------------


def test_a_closed_store_refuses_work(redis_store_url: str) -> None:
    store = RedisStore(redis_store_url)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.enqueue(Q, [NewMessage(b"x")])


def test_payloads_must_be_bytes(store: RedisStore) -> None:
    with pytest.raises(ValueError, match="bytes"):
        store.enqueue(Q, [NewMessage("text")])  # type: ignore[arg-type]


def test_the_cli_never_prints_a_traceback_or_a_password_for_a_dead_server() -> None:
    code, out = cli(
        "--store", "redis://:hunter2@127.0.0.1:1/0?connect_timeout=1", "queue", "stats", "x"
    )
    assert code != 0 and "hunter2" not in out and "Traceback" not in out
    assert "cannot connect to Redis" in out and out.count("\n") == 1


def test_the_cli_in_another_process_prints_one_line_for_a_bad_url() -> None:
    exe = str(Path(sys.executable).with_name("localqueue"))
    done = subprocess.run(
        [exe, "--store", "redis://:hunter2@host:notaport/0", "queue", "stats", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    assert "port" in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_nothing_is_left_behind_once_every_message_is_gone(store: RedisStore) -> None:
    store.enqueue(Q, [NewMessage(b"1", dedupe_key="a"), NewMessage(b"2", priority=4)])
    store.enqueue(Q, [NewMessage(b"3", delay=600, priority=-2)])
    leased = store.claim(Q, worker_id="w", limit=2, lease_seconds=30).leased
    store.release(Q, Lease(leased[0].id, leased[0].receipt or ""))
    store.dead_letter(Q, Lease(leased[1].id, leased[1].receipt or ""))
    store.requeue(Q)
    for record in store.claim(Q, worker_id="w", limit=5, lease_seconds=30).leased:
        store.ack(Q, [Lease(record.id, record.receipt or "")])
    store.purge(Q)
    assert store.stats(Q).total == 0 and store.queues() == []
    left = sorted(k.decode() for k in store._client.scan_iter(match=f"{store.prefix}:*"))
    # The queue's finished counts stay: they are history, not messages.
    finished = f"{store.prefix}:{{{Q}}}:finished"
    assert left == sorted([finished, *(f"{store.prefix}:{k}" for k in ("ids", "meta", "queues"))])
    assert store.finished_counts() == [FinishedCounts(Q, 2, 1)]


def test_a_batch_worker_on_redis(redis_store_url: str) -> None:
    """prefetch on Redis (its native settle_and_claim: one script acks a
    batch and claims the next): every job once, in order, nothing left."""
    from localqueue.worker import persistent_worker

    with PersistentQueue("batches", store=redis_store_url) as q:
        q.put_many(list(range(60)))
        seen: list[int] = []

        @persistent_worker(q, prefetch=10, poll_interval=0.05, handle_signals=False)
        def handle(value: int) -> None:
            seen.append(value)

        summary = handle.run(until_empty=True)
        assert seen == list(range(60)) and summary.acked == 60
        assert q.stats().total == 0
