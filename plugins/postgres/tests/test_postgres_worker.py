"""The core's worker and event tests that depend on the store, on PostgreSQL.

tests/test_worker.py and tests/test_events.py run these on the memory and
SQLite stores (the core's tests need only the core installed); here they run
on a live PostgreSQL with an injected clock, copied from there unchanged. The
worker tests left out there run no store operation of their own (argument
and config checks, handler-calling and policy plugins, whose store work is
the put/get/ack/release/dead-letter these tests already cover).
"""

from __future__ import annotations

import asyncio
import logging
import queue as stdlib_queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from localqueue import (
    Backoff,
    ManualClock,
    Message,
    PersistentQueue,
    QueueSpec,
    State,
    Store,
    hookimpl,
)
from localqueue import plugins as host
from localqueue.observability.events import DeadLettered, Event, LeaseExpired
from localqueue.worker import PersistentWorker, persistent_worker
from localqueue_postgres.store import PostgresStore


@pytest.fixture(autouse=True)
def _only_builtins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # As in the core's tests: no installed plugin (a metrics observer, a
    # retry policy) and no user setting takes part.
    monkeypatch.setenv("LOCALQUEUE_PLUGINS", "")
    monkeypatch.delenv("LOCALQUEUE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("LOCALQUEUE_LOG_EVENTS", raising=False)
    host.reset_plugin_manager()
    yield
    host.reset_plugin_manager()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(postgres_store_url: str, clock: ManualClock) -> Iterator[Store]:
    opened = PostgresStore(postgres_store_url, clock=clock)
    yield opened
    opened.close()


def fast(queue: PersistentQueue, **overrides: Any) -> dict[str, Any]:
    """Worker settings that keep tests quick and never touch signal handlers."""
    return {"poll_interval": 0.05, "handle_signals": False, **overrides}


def failing_worker(q: PersistentQueue, calls: list[Any], **overrides: Any) -> PersistentWorker:
    @persistent_worker(q, **fast(q, **overrides))
    def handle(value: Any, message: Message) -> None:
        calls.append((value, message.attempts))
        raise ValueError(f"cannot handle {value}")

    return handle


# -- the worker (tests/test_worker.py) ----------------------------------------------------


def test_default_budget_is_three_retries_then_dead(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put("x")
    calls: list[Any] = []
    summary = failing_worker(q, calls).run(until_empty=True)
    assert calls == [("x", 1), ("x", 2), ("x", 3), ("x", 4)]
    assert (summary.processed, summary.released, summary.dead) == (4, 3, 1)
    [dead] = q.dead_letters()
    assert dead.attempts == 4
    assert dead.last_error is not None and dead.last_error.type == "ValueError"
    assert "cannot handle x" in dead.last_error.message


def test_release_delay_and_backoff_set_the_next_availability(
    store: Store, clock: ManualClock
) -> None:
    q = PersistentQueue(spec=QueueSpec("jobs").with_release_delay(7), store=store)
    q.put("x")
    failing_worker(q, []).run(max_jobs=1)
    [msg] = q.messages()
    assert msg.state is State.DELAYED and msg.available_at == pytest.approx(clock.now() + 7)

    spec = QueueSpec("backoff").with_retry(5, backoff=Backoff(initial=2, multiplier=3, max=50))
    q2 = PersistentQueue(spec=spec, store=store)
    q2.put("y")
    worker = failing_worker(q2, [])
    for expected in (2, 6, 18, 50):
        worker.run(max_jobs=1)
        [msg] = q2.messages()
        assert msg.available_at == pytest.approx(clock.now() + expected)
        clock.advance(expected)


def test_give_up_on_dead_letters_at_once(store: Store) -> None:
    spec = QueueSpec("jobs").with_retry(5, give_up_on=(ValueError,))
    q = PersistentQueue(spec=spec, store=store)
    q.put("x")
    calls: list[Any] = []
    summary = failing_worker(q, calls).run(until_empty=True)
    assert calls == [("x", 1)] and summary.dead == 1


def test_without_dead_lettering_exhausted_messages_wait_not_spin(
    store: Store, clock: ManualClock
) -> None:
    spec = QueueSpec("jobs").with_retry(1).with_dead_letter_on_failure(False)
    q = PersistentQueue(spec=spec, store=store)
    q.put("x")
    calls: list[Any] = []
    worker = failing_worker(q, calls)
    worker.run(until_empty=True)
    assert calls == [("x", 1), ("x", 2)]  # the second try is exhausted: released, delayed
    stats = q.stats()
    assert (stats.delayed, stats.dead) == (1, 0)
    [msg] = q.messages()
    assert msg.available_at >= clock.now() + 1.0  # never a hot loop
    clock.advance(1.0)
    worker.run(until_empty=True)
    assert calls[-1] == ("x", 3) and q.stats().delayed == 1


def test_requeued_dead_letter_runs_the_handler_again(store: Store) -> None:
    q = PersistentQueue(spec=QueueSpec("jobs").with_retry(0), store=store)
    q.put({"n": 1})
    calls: list[Any] = []
    failing_worker(q, calls).run(until_empty=True)
    assert q.stats().dead == 1
    q.requeue_dead(all=True)
    ran: list[Any] = []

    @persistent_worker(q, **fast(q))
    def succeed(value: Any, message: Message) -> None:
        ran.append((value, message.attempts))

    summary = succeed.run(until_empty=True)
    assert ran == [({"n": 1}, 1)] and summary.acked == 1
    assert q.stats().total == 0


def test_decorator_overrides_and_handler_arguments(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put_many([1, 2, 3])
    got: list[Any] = []

    @persistent_worker(q, worker_id="w-7", max_retries=0, lease_timeout=9, **fast(q))
    def handle(value: int) -> None:
        got.append(value)

    assert handle.config.max_retries == 0 and handle.config.lease_timeout == 9
    assert handle.worker_id == "w-7"
    assert handle(41) is None and got == [41]  # still callable as the plain function
    got.clear()
    summary = handle.run(max_jobs=2)
    assert got == [1, 2] and summary.acked == 2 and q.qsize() == 1


def test_async_handler(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put_many([1, 2, 3])
    got: list[int] = []

    @persistent_worker(q, **fast(q))
    async def handle(value: int, message: Message) -> None:
        await asyncio.sleep(0)
        got.append(value * 10 + message.attempts)

    assert handle.run(until_empty=True).acked == 3
    assert got == [11, 21, 31]


def test_until_empty_ignores_delayed_messages(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put("now")
    q.put("later", delay=3600)
    got: list[str] = []

    @persistent_worker(q, **fast(q))
    def handle(value: str) -> None:
        got.append(value)

    started = time.monotonic()
    handle.run(until_empty=True)
    assert got == ["now"] and time.monotonic() - started < 5
    assert q.stats().delayed == 1


def test_handler_keyboard_interrupt_loses_nothing(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put("x")

    @persistent_worker(q, **fast(q))
    def handle(value: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        handle.run()
    [msg] = q.messages()
    assert msg.state is State.READY and msg.attempts == 1 and msg.last_error is None


def test_lost_lease_is_not_acked(store: Store, clock: ManualClock) -> None:
    q = PersistentQueue("jobs", store=store, lease_timeout=10)
    q.put("x")
    other = PersistentQueue("jobs", store=store, lease_timeout=10)
    stolen: list[Message] = []

    @persistent_worker(q, **fast(q))
    def handle(value: str) -> None:
        clock.advance(11)  # the lease runs out while we work...
        stolen.append(other.get(block=False))  # ...and another worker takes it

    summary = handle.run(max_jobs=1)
    assert summary.lease_lost == 1 and summary.acked == 0
    other.ack(stolen[0])  # the second delivery is the one that counts
    assert q.stats().total == 0


def test_worker_heartbeats_are_visible_in_stats(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put("x")
    seen: list[dict[str, float]] = []

    @persistent_worker(q, worker_id="alpha", **fast(q))
    def handle(value: str) -> None:
        seen.append(dict(q.stats().workers))

    handle.run(until_empty=True)
    assert list(seen[0]) == ["alpha"]
    assert q.stats().workers == {}  # a clean stop removes it


def test_heartbeat_notices_a_lost_lease(
    store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    q = PersistentQueue("jobs", store=store, lease_timeout=0.06)
    q.put("x")

    @persistent_worker(q, **fast(q))
    def handle(value: str) -> None:
        clock.advance(1)  # store time passes the lease before the first beat
        time.sleep(0.2)  # real time for a few heartbeats

    with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
        summary = handle.run(max_jobs=1)
    assert summary.lease_lost == 1 and summary.acked == 0
    assert "lost before it could be extended" in caplog.text


def test_a_message_fetched_after_a_stop_request_is_not_started(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    ran: list[str] = []

    @persistent_worker(q, poll_interval=2.0, handle_signals=False)
    def handle(value: str) -> None:
        ran.append(value)

    def stop_then_put() -> None:
        time.sleep(0.2)
        handle.stop()
        q.put("late")

    threading.Thread(target=stop_then_put).start()
    summary = handle.run()
    assert ran == [] and summary.processed == 0
    [msg] = q.messages()
    assert msg.state is State.READY


# -- events (tests/test_events.py) --------------------------------------------------------


class Recorder:
    """An observer plugin that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def localqueue_event(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    host.get_plugin_manager().register(rec, name="recorder")
    yield rec
    host.get_plugin_manager().unregister(name="recorder")


def test_a_claim_that_dead_letters_an_exhausted_lease_says_so(
    store: Store, recorder: Recorder, clock: ManualClock
) -> None:
    # As on the built-in stores: a holder crashed on the last allowed attempt,
    # and the next get makes the message a dead letter instead of handing
    # it out. That get is the only one who sees it happen.
    first = PersistentQueue("jobs", store=store, lease_timeout=10, max_attempts=1, worker_id="a")
    first.put("x")
    held = first.get(block=False)
    clock.advance(11)
    second = PersistentQueue("jobs", store=store, lease_timeout=10, max_attempts=1, worker_id="b")
    with pytest.raises(stdlib_queue.Empty):
        second.get(block=False)
    assert recorder.kinds()[-2:] == ["lease_expired", "dead_lettered"]
    [expired] = [e for e in recorder.of(LeaseExpired) if e.operation == "claim"]
    [dead] = recorder.of(DeadLettered)
    assert (expired.message_id, expired.attempt, expired.worker_id) == (held.id, 1, "b")
    assert (dead.message_id, dead.worker_id) == (held.id, "b")
    assert dead.error is not None and dead.error.type == "LeaseExpired"
    assert second.stats().dead == 1


def test_a_batch_worker_on_postgresql(postgres_store_url: str) -> None:
    """prefetch on PostgreSQL (no native settle_and_claim: the kit's default
    acks, then claims): every job once, in order, nothing left leased; a
    stop gives back the batch not started."""
    store = PostgresStore(postgres_store_url)
    with PersistentQueue("batches", store=store) as q:
        q.put_many(list(range(60)))
        seen: list[int] = []

        @persistent_worker(q, prefetch=10, poll_interval=0.05, handle_signals=False)
        def handle(value: int) -> None:
            seen.append(value)
            if value == 44:
                handle.stop()

        summary = handle.run()
        assert seen == list(range(45)) and summary.acked == 45
        stats = q.stats()
        assert (stats.ready, stats.inflight) == (15, 0)
    store.close()
