"""Observability events: what the queue and the worker send to observers,
that a broken observer never stops them, and the built-in event log."""

from __future__ import annotations

import json
import logging
import os
import queue as stdlib_queue
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from localqueue import LeaseExpired as LeaseExpiredError
from localqueue import ManualClock, PersistentQueue, Store, hookimpl
from localqueue import plugins as host
from localqueue.errors import PluginError
from localqueue.observability import event_log, observers, queue_events
from localqueue.observability.events import (
    EVENT_TYPES,
    Acked,
    DeadLettered,
    Enqueued,
    Event,
    HandlerFinished,
    Leased,
    LeaseExpired,
    LeaseExtended,
    Released,
    Requeued,
    WorkerStarted,
    WorkerStopped,
)
from localqueue.store import Lease
from localqueue.stores.memory import MemoryStore
from localqueue.worker import persistent_worker


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


@pytest.fixture(autouse=True)
def _only_builtins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Installed observers (a metrics plugin) would see these events too;
    # these tests count on the built-ins alone.
    monkeypatch.setenv("LOCALQUEUE_PLUGINS", "")
    monkeypatch.delenv(event_log.ENV, raising=False)
    host.reset_plugin_manager()
    yield
    event_log.disable()
    for handler in list(event_log.log.handlers):
        event_log.log.removeHandler(handler)
    event_log.log.setLevel(logging.NOTSET)
    event_log.log.propagate = True


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    host.get_plugin_manager().register(rec, name="recorder")
    yield rec
    host.get_plugin_manager().unregister(name="recorder")


@pytest.fixture
def queue(clock: ManualClock, request: pytest.FixtureRequest) -> Iterator[PersistentQueue]:
    store = MemoryStore(f"memory://events-{request.node.name}", clock=clock)
    with PersistentQueue("jobs", store=store, lease_timeout=10, worker_id="me") as q:
        yield q
    store.close()


def test_queue_operations_send_one_event_each(
    queue: PersistentQueue, recorder: Recorder, clock: ManualClock
) -> None:
    first = queue.put({"n": 1}, priority=3)
    clock.advance(2)
    msg = queue.get(block=False)
    [enq] = recorder.of(Enqueued)
    assert (enq.queue, enq.message_id, enq.attempt, enq.worker_id) == ("jobs", first.id, 0, "me")
    assert (enq.priority, enq.delay, enq.deduplicated) == (3, 0.0, False)
    [leased] = recorder.of(Leased)
    assert (leased.message_id, leased.attempt, leased.worker_id) == (first.id, 1, "me")
    assert leased.waited == 2.0  # from the put to the lease, on the store clock
    assert leased.leased_until == clock.now() + 10

    extended = queue.extend_lease(msg, 20)
    assert recorder.of(LeaseExtended)[0].leased_until == clock.now() + 20
    queue.release(extended, delay=5, error=ValueError("boom"))
    [released] = recorder.of(Released)
    assert (released.delay, released.attempt) == (5.0, 1)
    assert released.error is not None and released.error.type == "ValueError"

    clock.advance(5)
    again = queue.get(block=False)
    queue.dead_letter(again, error="gave up")
    [dead] = recorder.of(DeadLettered)
    assert (dead.message_id, dead.attempt) == (first.id, 2)
    assert dead.error is not None and dead.error.message == "gave up"

    assert queue.requeue_dead(all=True, dry_run=True) == [first.id]
    assert recorder.of(Requeued) == []  # a dry run changes nothing, so it says nothing
    queue.requeue_dead(all=True)
    [requeued] = recorder.of(Requeued)
    assert (requeued.message_id, requeued.attempt) == (first.id, 0)

    queue.ack(queue.get(block=False))
    [acked] = recorder.of(Acked)
    assert (acked.message_id, acked.attempt, acked.worker_id) == (first.id, 1, "me")
    assert recorder.kinds() == [
        "enqueued", "leased", "lease_extended", "released", "leased",
        "dead_lettered", "requeued", "leased", "acked",
    ]  # fmt: skip


def test_release_on_the_last_attempt_is_a_dead_letter_event(
    clock: ManualClock, recorder: Recorder
) -> None:
    with PersistentQueue("q", store=MemoryStore("memory://last", clock=clock), max_attempts=1) as q:
        q.put("x")
        q.release(q.get(block=False), error="nope")
        assert recorder.kinds() == ["enqueued", "leased", "dead_lettered"]
        q.store.close()


def test_dedupe_hits_are_marked(
    queue: PersistentQueue, recorder: Recorder, clock: ManualClock
) -> None:
    queue.put("a", dedupe_key="k")
    clock.advance(1)
    queue.put("a", dedupe_key="k")
    queue.put_many(["b", "b", "c"], dedupe_keys=["k2", "k2", None])
    assert [e.deduplicated for e in recorder.of(Enqueued)] == [False, True, False, True, False]
    queue.put_many(["d", "e"])
    assert [e.deduplicated for e in recorder.of(Enqueued)][-2:] == [False, False]
    assert queue.stats().ready == 5  # a, b, c, d, e


def test_dedupe_hits_are_exact_even_when_the_clock_does_not_move(
    queue: PersistentQueue, recorder: Recorder
) -> None:
    # Every built-in store reports which messages it added, so no clock
    # comparison is involved: a frozen clock cannot blur a hit.
    queue.put("a", dedupe_key="k")
    queue.put("a", dedupe_key="k")
    queue.put_many(["b", "a"], dedupe_keys=["k2", "k"])
    assert [e.deduplicated for e in recorder.of(Enqueued)] == [False, True, False, True]


def test_a_lost_lease_is_reported_by_its_holder(
    queue: PersistentQueue, recorder: Recorder, clock: ManualClock
) -> None:
    queue.put_many(["a", "b"])
    first, second = queue.get_many(2, block=False)
    clock.advance(11)  # both leases expire
    with pytest.raises(LeaseExpiredError):
        queue.ack(first)
    with pytest.raises(LeaseExpiredError):
        queue.extend_lease(second, 5)
    expired = recorder.of(LeaseExpired)
    assert [(e.message_id, e.operation, e.worker_id) for e in expired] == [
        (first.id, "ack", "me"),
        (second.id, "extend", "me"),
    ]
    # Reclaimed: the next delivery is attempt 2, and the claim says it took
    # the message over from an expired lease.
    assert sorted(e.attempt for e in recorder.of(Leased)[-2:]) == [1, 1]
    again = queue.get_many(2, block=False)
    assert [e.attempt for e in recorder.of(Leased)[-2:]] == [2, 2]
    assert [(e.message_id, e.attempt, e.operation) for e in recorder.of(LeaseExpired)[2:]] == [
        (first.id, 1, "claim"),
        (second.id, 1, "claim"),
    ]
    lost = queue.ack_many([*again, again[0], first])
    assert lost == [again[0], first]
    # The repeated copy of an acked lease did not expire; the old one did.
    assert [(e.message_id, e.attempt) for e in recorder.of(LeaseExpired)[4:]] == [(first.id, 1)]
    assert [e.message_id for e in recorder.of(Acked)] == [m.id for m in again]


def test_a_claim_that_takes_over_an_expired_lease_says_so(
    queue: PersistentQueue, recorder: Recorder, clock: ManualClock
) -> None:
    crashed = queue.put("crashed")
    queue.get(block=False)  # then its holder dies, sending nothing
    clock.advance(11)
    taken = queue.get(block=False, leased_by="w2")
    assert taken.id == crashed.id and taken.record.reclaimed
    expired = recorder.of(LeaseExpired)
    assert [(e.message_id, e.attempt, e.worker_id, e.operation) for e in expired] == [
        (crashed.id, 1, "w2", "claim"),
    ]
    assert recorder.kinds()[-2:] == ["lease_expired", "leased"]
    # A message given back by its holder, or requeued, is not a takeover.
    given = queue.put("given back")
    queue.release(queue.get(block=False))
    again = queue.get(block=False)
    assert again.id == given.id and not again.record.reclaimed
    queue.dead_letter(taken, error="gave up")
    queue.requeue_dead(all=True)
    requeued = queue.get(block=False)
    assert requeued.id == crashed.id and not requeued.record.reclaimed
    assert len(recorder.of(LeaseExpired)) == 1
    # Only a message's first delivery ever is marked first: not a redelivery,
    # and not the delivery of a requeued dead letter (attempt 1 again).
    assert [(e.message_id, e.attempt, e.first) for e in recorder.of(Leased)] == [
        (crashed.id, 1, True),
        (crashed.id, 2, False),
        (given.id, 1, True),
        (given.id, 2, False),
        (crashed.id, 1, False),
    ]


def test_worker_events(clock: ManualClock, recorder: Recorder) -> None:
    store = MemoryStore("memory://worker-events", clock=clock)
    with PersistentQueue("w", store=store) as q:
        q.put("fails once")
        calls: list[str] = []

        @persistent_worker(q, worker_id="w1", handle_signals=False, poll_interval=0.01)
        def handle(value: str) -> None:
            calls.append(value)
            if len(calls) == 1:
                raise RuntimeError("first try")

        handle.run(until_empty=True)  # the release has no delay: both tries in one run
    store.close()
    kinds = recorder.kinds()
    assert kinds[:1] == ["enqueued"]
    assert kinds[1:] == [
        "worker_started", "leased", "released", "handler_finished",
        "leased", "acked", "handler_finished", "worker_stopped",
    ]  # fmt: skip
    finished = recorder.of(HandlerFinished)
    assert [(f.outcome, f.error_type, f.attempt) for f in finished] == [
        ("released", "RuntimeError", 1),
        ("acked", None, 2),
    ]
    assert all(f.duration >= 0 and f.worker_id == "w1" for f in finished)
    assert {e.worker_id for e in recorder.events[1:]} == {"w1"}
    started = recorder.of(WorkerStarted)[0]
    assert (started.queue, started.message_id, started.concurrency) == ("w", None, 1)
    [stopped] = recorder.of(WorkerStopped)
    assert (stopped.processed, stopped.acked, stopped.released, stopped.aborted) == (
        2, 1, 1, False,
    )  # fmt: skip


class SlowAckStore(MemoryStore):
    """Recording a result takes a while, as on a distant server."""

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        time.sleep(0.3)
        return super().ack(queue, leases)


def test_handler_duration_is_the_handler_alone(recorder: Recorder) -> None:
    store = SlowAckStore("memory://slow-ack")
    with PersistentQueue("w", store=store) as q:
        q.put(1)

        @persistent_worker(q, handle_signals=False, poll_interval=0.01)
        def handle(value: int) -> None:
            time.sleep(0.05)

        assert handle.run(until_empty=True).acked == 1
    [finished] = recorder.of(HandlerFinished)
    assert finished.outcome == "acked"
    assert 0.05 <= finished.duration < 0.25  # without the 0.3 s ack


def test_a_broken_observer_is_logged_and_never_stops_anything(
    queue: PersistentQueue, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    broken = ModuleType("broken_observer")

    @hookimpl
    def localqueue_event(event: Event) -> None:
        raise RuntimeError("observer bug")

    broken.localqueue_event = localqueue_event  # type: ignore[attr-defined]
    host.get_plugin_manager().register(broken, name="broken")
    caplog.set_level(logging.WARNING, logger="localqueue.observers")
    for n in range(3):
        queue.put(n)
    queue.ack(queue.get(block=False))
    store = queue.store

    @persistent_worker(queue, handle_signals=False, poll_interval=0.01)
    def handle(value: int) -> None:
        pass

    summary = handle.run(until_empty=True)
    assert summary.acked == 2 and store.stats("jobs").total == 0
    # The other observer still saw every event.
    assert recorder.kinds().count("acked") == 3
    # Logged with its traceback once, then held back (a failure per event
    # would flood the log).
    records = [r for r in caplog.records if r.name == "localqueue.observers"]
    assert len(records) == 1
    assert "'broken'" in records[0].getMessage() and records[0].exc_info is not None
    host.get_plugin_manager().unregister(name="broken")


def test_a_repeated_failure_is_summarised_after_a_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    monkeypatch.setattr(observers, "_monotonic", lambda: now[0])
    monkeypatch.setattr(observers, "_failures", {})

    def bad(event: Event) -> None:
        raise ValueError("bad")

    caplog.set_level(logging.WARNING, logger="localqueue.observers")
    event = Acked("q", 1, 1, "w", 0.0)
    for _ in range(5):
        observers.emit((("bad", bad),), event)
    now[0] += 61
    observers.emit((("bad", bad),), event)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "raised again (5 more failures" in messages[1]


def test_plugins_that_fail_to_load_never_fail_a_queue_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An installed plugin whose module cannot be imported.
    dist = tmp_path / "broken_lq-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-lq\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[localqueue]\nbroken = broken_lq_mod\n")
    (tmp_path / "broken_lq_mod.py").write_text("raise ImportError('this plugin is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LOCALQUEUE_PLUGINS", "broken")
    monkeypatch.setattr(observers, "_failures", {})
    host.reset_plugin_manager()
    with pytest.raises(PluginError, match="'broken'"):
        host.get_plugin_manager()
    builds = []
    real = host.get_plugin_manager

    def counted() -> Any:
        builds.append(1)
        return real()

    monkeypatch.setattr(host, "get_plugin_manager", counted)
    caplog.set_level(logging.WARNING, logger="localqueue.observers")
    store = MemoryStore("memory://broken-plugin")
    with PersistentQueue("jobs", store=store) as q:
        assert len(builds) == 1  # looked for observers when built, not on the first put
        q.put_many([1, 2])
        q.put(3, dedupe_key="k")
        msg = q.get(block=False)
        q.ack(msg)
        q.release(q.get(block=False))
        assert q.stats().ready == 2 and q.stats().inflight == 0
    assert len(builds) == 1  # the failure is remembered: no retry on every operation
    [record] = [r for r in caplog.records if r.name == "localqueue.observers"]
    text = record.getMessage()
    assert "no event observers" in text and "'broken'" in text
    assert record.exc_info is None and "\n" not in text  # one line


def test_an_observer_idle_that_raises_counts_as_not_idle(
    queue: PersistentQueue, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(observers, "_failures", {})
    queue.put(1)
    msg = queue.get(block=False)
    seen: list[str] = []
    exporter = ModuleType("exporter")

    def observer_idle() -> bool:
        raise RuntimeError("config file missing")

    @hookimpl
    def localqueue_event(event: Event) -> None:
        seen.append(event.kind)

    exporter.observer_idle = observer_idle  # type: ignore[attr-defined]
    exporter.localqueue_event = localqueue_event  # type: ignore[attr-defined]
    caplog.set_level(logging.WARNING, logger="localqueue.observers")
    host.get_plugin_manager().register(exporter, name="exporter")
    try:
        queue.ack(msg)  # the store committed it: the ack must not raise
        assert queue.stats().total == 0
        queue.put(2)
        queue.ack(queue.get(block=False))
    finally:
        host.get_plugin_manager().unregister(name="exporter")
    assert seen == ["acked", "enqueued", "leased", "acked"]  # not idle: it gets the events
    [record] = [r for r in caplog.records if r.name == "localqueue.observers"]
    text = record.getMessage()
    assert "'exporter'" in text and "config file missing" in text and "not idle" in text
    assert record.exc_info is None and "\n" not in text


def test_with_no_observer_no_event_is_built(
    queue: PersistentQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert observers.listening() == ()

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("an event was built with nobody listening")

    for name in ("enqueued", "leased", "acked", "released", "dead_lettered", "requeued"):
        monkeypatch.setattr(queue_events, name, fail)
    for n in range(3):
        queue.put(n)
    queue.put_many([1, 2], dedupe_keys=["a", "b"])
    queue.ack(queue.get(block=False))
    queue.release(queue.get(block=False), error="x")
    queue.dead_letter(queue.get(block=False))
    queue.requeue_dead(all=True)


def test_observers_follow_plugins_coming_and_going(queue: PersistentQueue) -> None:
    assert observers.listening() == ()
    rec = Recorder()
    host.get_plugin_manager().register(rec, name="late")
    queue.put(1)
    assert rec.kinds() == ["enqueued"]
    host.get_plugin_manager().unregister(name="late")
    assert observers.listening() == ()
    queue.put(2)
    assert rec.kinds() == ["enqueued"]


def test_every_event_type_is_json_ready() -> None:
    for kind in EVENT_TYPES:
        event = kind("q", 1, 1, "w", 1.5)
        doc = event.as_dict()
        assert doc["event"] == kind.kind and doc["queue"] == "q"
        json.dumps(doc)
    assert len({k.kind for k in EVENT_TYPES}) == len(EVENT_TYPES)


# -- the built-in event log ------------------------------------------------------------


def test_event_log_is_off_by_default(queue: PersistentQueue) -> None:
    names = {
        impl.plugin_name for impl in host.get_plugin_manager().hook.localqueue_event.get_hookimpls()
    }
    assert "event_log" in names  # registered like any built-in...
    assert observers.listening() == ()  # ...and idle, so it costs nothing


def test_event_log_writes_one_json_object_per_event(
    queue: PersistentQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=event_log.LOGGER_NAME)
    event_log.enable()
    assert event_log.log.handlers  # its own stderr line, not the root logger's format
    event_log.log.propagate = True  # so that caplog sees the records too
    assert [name for name, _ in observers.listening()] == ["event_log"]
    msg = queue.put({"a": 1})
    queue.release(queue.get(block=False), error=KeyError("k"))
    lines = [r for r in caplog.records if r.name == event_log.LOGGER_NAME]
    docs = [json.loads(r.getMessage()) for r in lines]
    assert [d["event"] for d in docs] == ["enqueued", "leased", "released"]
    assert docs[0]["message_id"] == msg.id and docs[0]["queue"] == "jobs"
    assert docs[2]["error"]["type"] == "KeyError"
    assert isinstance(lines[0].localqueue_event, Enqueued)  # type: ignore[attr-defined]
    event_log.disable()
    queue.put(2)
    assert len([r for r in caplog.records if r.name == event_log.LOGGER_NAME]) == 3


def test_event_log_env_and_worker_flag(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/events.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    env.update(LOCALQUEUE_STORE=url, LOCALQUEUE_PLUGINS="")

    def lq(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "localqueue", *args],
            capture_output=True, text=True, env={**env, **extra}, timeout=60, check=True,
        )  # fmt: skip

    quiet = lq("queue", "add", "jobs", "--value", "1")
    assert quiet.stderr == ""
    loud = lq("queue", "add", "jobs", "--value", "2", LOCALQUEUE_LOG_EVENTS="1")
    [line] = loud.stderr.splitlines()
    assert json.loads(line)["event"] == "enqueued"
    ran = lq("queue", "exec", "jobs", "--until-empty", "--log-events", "--", "true")
    events = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "worker_started" and kinds[-1] == "worker_stopped"
    assert kinds.count("acked") == 2 and kinds.count("handler_finished") == 2


def test_a_claim_that_dead_letters_an_exhausted_lease_says_so(
    store: Store, recorder: Recorder, clock: ManualClock
) -> None:
    # On every built-in store: a holder crashed on the last allowed attempt,
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


def test_observers_never_bypass_a_store_subclass_that_overrides_claim_or_enqueue(
    recorder: Recorder, clock: ManualClock
) -> None:
    calls: list[str] = []

    class Audited(MemoryStore):
        def enqueue(self, queue: str, messages: Any) -> Any:
            calls.append("enqueue")
            return super().enqueue(queue, messages)

        def claim(self, queue: str, **kwargs: Any) -> Any:
            calls.append("claim")
            return super().claim(queue, **kwargs)

    q = PersistentQueue("jobs", store=Audited(clock=clock))
    q.put("a", dedupe_key="k")
    q.put_many(["b"], dedupe_keys=["k2"])
    q.ack(q.get(block=False))
    assert calls == ["enqueue", "enqueue", "claim"]
    assert recorder.kinds()[:2] == ["enqueued", "enqueued"]  # still observed
