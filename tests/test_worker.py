"""Workers: QueueSpec and config, retry semantics, heartbeats, shutdown, policies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue as stdlib_queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from localqueue import ManualClock, Message, PersistentQueue, State, Store, hookimpl
from localqueue import plugins as host
from localqueue.policies import breaker, pacing
from localqueue.spec import Backoff, PersistentWorkerConfig, QueueSpec
from localqueue.stores.sqlite import SQLiteStore
from localqueue.worker import PersistentWorker, persistent_worker
from localqueue.worker.hook_types import (
    Failure,
    FetchGate,
    HandlerCall,
    JobOutcome,
    Outcome,
    RetryDecision,
    WorkerView,
)

ROOT = Path(__file__).resolve().parent.parent


def fast(queue: PersistentQueue, **overrides: Any) -> dict[str, Any]:
    """Worker settings that keep tests quick and never touch signal handlers."""
    return {"poll_interval": 0.05, "handle_signals": False, **overrides}


# -- QueueSpec and config -------------------------------------------------------------


def test_spec_builder_is_immutable_and_fluent() -> None:
    base = QueueSpec("emails")
    tuned = (
        base.with_lease_timeout(60)
        .with_retry(5, backoff={"initial": 2, "multiplier": 3, "max": 100, "jitter": 0.1})
        .with_release_delay(4)
        .with_min_interval(0.5)
        .with_circuit_breaker(threshold=3, cooldown=30)
        .with_dead_letter_on_failure(False)
    )
    assert base == QueueSpec("emails")  # untouched
    assert tuned.lease_timeout == 60 and tuned.max_retries == 5
    assert tuned.backoff == Backoff(initial=2, multiplier=3, max=100, jitter=0.1)
    assert (tuned.release_delay, tuned.min_interval) == (4, 0.5)
    assert (tuned.breaker_threshold, tuned.breaker_cooldown) == (3, 30)
    assert tuned.max_attempts is None and base.max_attempts == 4
    assert tuned.with_name("sms").name == "sms"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: QueueSpec("q").with_lease_timeout(-1), "lease_timeout"),
        (lambda: QueueSpec("q").with_lease_timeout(math.nan), "lease_timeout"),
        (lambda: QueueSpec("q").with_retry(-1), "max_retries"),
        (lambda: QueueSpec("q").with_retry(1, backoff={"initial": -1}), "backoff.initial"),
        (lambda: QueueSpec("q").with_retry(1, backoff={"multiplier": 0.5}), "multiplier"),
        (lambda: QueueSpec("q").with_retry(1, backoff={"jitter": 2}), "jitter"),
        (lambda: QueueSpec("q").with_retry(1, backoff={"speed": 2}), "unknown key"),
        (lambda: QueueSpec("q").with_retry(1, give_up_on=[42]), "give_up_on"),  # type: ignore[list-item]
        (lambda: QueueSpec("q").with_release_delay(math.inf), "release_delay"),
        (lambda: QueueSpec("q").with_min_interval(-0.1), "min_interval"),
        (lambda: QueueSpec("q").with_circuit_breaker(threshold=0, cooldown=1), "threshold"),
        (lambda: QueueSpec("q", breaker_threshold=3), "breaker_cooldown"),
        (lambda: QueueSpec("q", breaker_cooldown=3), "breaker_threshold"),
        (lambda: QueueSpec(""), "queue name"),
    ],
)
def test_invalid_spec_values_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build()


def test_queue_uses_spec_and_builds_worker_configs(store: Store) -> None:
    spec = QueueSpec("jobs").with_lease_timeout(12).with_retry(1)
    q = PersistentQueue(spec=spec, store=store)
    assert (q.name, q.lease_timeout, q.max_attempts) == ("jobs", 12, 2)
    config = q.build_worker_config(concurrency=2)
    assert config.lease_timeout == 12 and config.concurrency == 2 and config.max_retries == 1
    tighter = config.with_overrides(lease_timeout=5, backoff={"initial": 1})
    assert tighter.lease_timeout == 5 and tighter.backoff == Backoff(initial=1)
    assert config.lease_timeout == 12
    with pytest.raises(ValueError, match="unknown worker setting"):
        config.with_overrides(leese_timeout=5)
    with pytest.raises(ValueError, match="concurrency"):
        config.with_overrides(concurrency=0)
    with pytest.raises(ValueError, match="differs from the spec"):
        PersistentQueue("other", spec=spec, store=store)


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(initial=1, multiplier=2, max=10)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay(10_000) == 10  # no overflow on huge retry counts
    jittered = Backoff(initial=10, multiplier=1, max=10, jitter=0.5)
    samples = {round(jittered.delay(1), 6) for _ in range(50)}
    assert len(samples) > 1 and all(5 <= s <= 15 for s in samples)


# -- retry semantics ---------------------------------------------------------------------


def failing_worker(q: PersistentQueue, calls: list[Any], **overrides: Any) -> PersistentWorker:
    @persistent_worker(q, **fast(q, **overrides))
    def handle(value: Any, message: Message) -> None:
        calls.append((value, message.attempts))
        raise ValueError(f"cannot handle {value}")

    return handle


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


# -- the worker loop ------------------------------------------------------------------------


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


def test_bad_override_is_a_clear_error(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    with pytest.raises(ValueError, match="unknown worker setting"):
        persistent_worker(q, retries=3)


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


def test_concurrency_runs_handlers_in_parallel_threads(tmp_path: Path) -> None:
    q = PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
    q.put_many(list(range(12)))
    threads: set[str] = set()
    lock = threading.Lock()

    @persistent_worker(q, concurrency=3, **fast(q))
    def handle(value: int) -> None:
        time.sleep(0.02)
        with lock:
            threads.add(threading.current_thread().name)

    summary = handle.run(until_empty=True)
    assert summary.acked == 12 and len(threads) == 3
    q.close()


def test_max_jobs_is_shared_across_threads(tmp_path: Path) -> None:
    q = PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
    q.put_many(list(range(10)))

    @persistent_worker(q, concurrency=3, **fast(q))
    def handle(value: int) -> None:
        time.sleep(0.01)

    assert handle.run(max_jobs=4).processed == 4
    assert q.qsize() == 6
    q.close()


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


def test_heartbeat_keeps_a_long_job_leased(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/q.db"
    q = PersistentQueue("jobs", store=url, lease_timeout=0.3)
    q.put("slow")
    rival = PersistentQueue("jobs", store=url, lease_timeout=0.3)
    rival_got: list[Message] = []

    @persistent_worker(q, **fast(q))
    def handle(value: str) -> None:
        deadline = time.monotonic() + 1.2  # four leases long
        while time.monotonic() < deadline:
            with contextlib.suppress(stdlib_queue.Empty):
                rival_got.append(rival.get(block=False))
            time.sleep(0.05)

    summary = handle.run(max_jobs=1)
    assert rival_got == [] and summary.acked == 1
    assert q.stats().total == 0
    q.close()
    rival.close()


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


# -- pacing and breaker (policy level, injected clock) ---------------------------------------


def view(config: PersistentWorkerConfig, clock: ManualClock) -> WorkerView:
    return WorkerView(worker_id="w", queue=config.name, config=config, clock=clock)


def test_pacing_spaces_job_starts(clock: ManualClock) -> None:
    worker = view(PersistentWorkerConfig("q", min_interval=5), clock)
    assert pacing.localqueue_fetch_delay(FetchGate(worker, clock.now())) is None
    assert pacing.localqueue_fetch_delay(FetchGate(worker, clock.now())) == pytest.approx(5)
    clock.advance(3)
    assert pacing.localqueue_fetch_delay(FetchGate(worker, clock.now())) == pytest.approx(2)
    clock.advance(2)
    assert pacing.localqueue_fetch_delay(FetchGate(worker, clock.now())) is None


def outcome(worker: WorkerView, kind: Outcome, at: float) -> JobOutcome:
    record = PersistentQueue("q", store="memory://").put("x").record
    return JobOutcome(worker, Message(record), kind, None, at, at)


def test_breaker_opens_half_opens_and_closes(clock: ManualClock) -> None:
    config = PersistentWorkerConfig("q", breaker_threshold=2, breaker_cooldown=30)
    worker = view(config, clock)

    def gate() -> float | None:
        return breaker.localqueue_fetch_delay(FetchGate(worker, clock.now()))

    breaker.localqueue_job_finished(outcome(worker, Outcome.RELEASED, clock.now()))
    assert gate() is None  # one failure: still closed
    breaker.localqueue_job_finished(outcome(worker, Outcome.LEASE_LOST, clock.now()))
    assert gate() is None  # a lost lease is not the handler's failure
    breaker.localqueue_job_finished(outcome(worker, Outcome.DEAD, clock.now()))
    assert gate() == pytest.approx(30)  # open
    clock.advance(30)
    assert gate() is None  # half-open: one trial
    breaker.localqueue_job_finished(outcome(worker, Outcome.RELEASED, clock.now()))
    assert gate() == pytest.approx(30)  # the trial failed: open again
    clock.advance(30)
    breaker.localqueue_job_finished(outcome(worker, Outcome.ACKED, clock.now()))
    breaker.localqueue_job_finished(outcome(worker, Outcome.RELEASED, clock.now()))
    assert gate() is None  # closed, and the count started over


def test_breaker_pauses_a_real_worker(tmp_path: Path) -> None:
    q = PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
    q.put_many(list(range(3)))
    starts: list[float] = []

    @persistent_worker(q, breaker_threshold=2, breaker_cooldown=0.4, **fast(q))
    def handle(value: int) -> None:
        starts.append(time.monotonic())
        raise RuntimeError("down")

    handle.run(max_jobs=3)
    assert len(starts) == 3
    assert starts[1] - starts[0] < 0.3 and starts[2] - starts[1] >= 0.35
    q.close()


def test_pacing_in_a_real_worker(tmp_path: Path) -> None:
    q = PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
    q.put_many(list(range(3)))

    @persistent_worker(q, min_interval=0.2, **fast(q))
    def handle(value: int) -> None:
        pass

    started = time.monotonic()
    assert handle.run(until_empty=True).acked == 3
    assert time.monotonic() - started >= 0.38
    q.close()


# -- policies are plugins ----------------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name: str, plugin: object) -> None:
        self.name, self.value, self.group, self.dist = name, f"{name}:plugin", "localqueue", None
        self._plugin = plugin

    def load(self) -> object:
        return self._plugin


def install(monkeypatch: pytest.MonkeyPatch, name: str, plugin: object) -> None:
    from importlib import metadata

    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda group: [FakeEntryPoint(name, plugin)] if group == "localqueue" else [],
    )
    host.reset_plugin_manager()


def test_user_retry_policy_plugin_overrides_the_builtin(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    plugin = ModuleType("no_retry_on_lookup")

    @hookimpl
    def localqueue_retry_decision(failure: Failure) -> RetryDecision | None:
        if isinstance(failure.error, LookupError):
            return RetryDecision.dead_letter("lookups never heal")
        return None  # everything else: the built-in policy decides

    plugin.localqueue_retry_decision = localqueue_retry_decision  # type: ignore[attr-defined]
    install(monkeypatch, "no-retry-on-lookup", plugin)
    q = PersistentQueue("jobs", store=store)
    q.put_many(["missing", "flaky"])

    @persistent_worker(q, **fast(q))
    def handle(value: str) -> None:
        raise KeyError(value) if value == "missing" else RuntimeError(value)

    summary = handle.run(max_jobs=2)
    assert (summary.dead, summary.released) == (1, 1)
    [dead] = q.dead_letters()
    assert dead.value == "missing" and dead.attempts == 1


def test_handler_wrapper_plugin_and_failing_observer(
    monkeypatch: pytest.MonkeyPatch, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = ModuleType("timing")
    timed: list[int] = []

    @hookimpl(wrapper=True)
    def localqueue_call_handler(call: HandlerCall) -> Any:
        result = yield
        timed.append(call.message.id)
        return result

    @hookimpl
    def localqueue_job_finished(outcome: JobOutcome) -> None:
        raise RuntimeError("observer bug")

    plugin.localqueue_call_handler = localqueue_call_handler  # type: ignore[attr-defined]
    plugin.localqueue_job_finished = localqueue_job_finished  # type: ignore[attr-defined]
    install(monkeypatch, "timing", plugin)
    q = PersistentQueue("jobs", store=store)
    ids = [m.id for m in q.put_many([1, 2])]

    @persistent_worker(q, **fast(q))
    def handle(value: int) -> None:
        pass

    with caplog.at_level(logging.ERROR, logger="localqueue.worker"):
        summary = handle.run(until_empty=True)
    assert summary.acked == 2 and timed == ids
    assert "observer 'timing' raised" in caplog.text


def test_builtin_policies_are_registered_plugins() -> None:
    listed = {p["name"]: p for p in host.list_plugins()}
    assert listed["retry"]["hooks"] == ["localqueue_retry_decision"]
    assert listed["handler"]["hooks"] == ["localqueue_call_handler"]
    assert listed["pacing"]["hooks"] == ["localqueue_fetch_delay"]
    assert listed["breaker"]["hooks"] == ["localqueue_fetch_delay", "localqueue_job_finished"]


# -- real processes: SIGKILL and SIGTERM -------------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from localqueue import PersistentQueue
from localqueue.worker import persistent_worker

db, marker, sleep = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
q = PersistentQueue("jobs", store=f"sqlite://{db}", lease_timeout=float(sys.argv[4]))

@persistent_worker(q, poll_interval=0.05, worker_id="child")
def handle(value):
    marker.write_text(str(value))
    time.sleep(sleep)

summary = handle.run()
print(summary.as_dict(), flush=True)
"""


def start_child(tmp_path: Path, sleep: float, lease: float) -> tuple[subprocess.Popen[str], Path]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "q.db"), str(marker), str(sleep), str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not marker.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"child never started a job: {proc.communicate()}")
        time.sleep(0.02)
    return proc, marker


@pytest.fixture
def db_queue(tmp_path: Path) -> PersistentQueue:
    q = PersistentQueue("jobs", store=SQLiteStore(tmp_path / "q.db"), lease_timeout=0.5)
    q.put_many(["first", "second"])
    return q


def test_sigterm_finishes_the_current_job_then_stops(
    tmp_path: Path, db_queue: PersistentQueue
) -> None:
    proc, marker = start_child(tmp_path, sleep=0.5, lease=30)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "'acked': 1" in out and "'processed': 1" in out
    assert marker.read_text() == "first"
    [left] = db_queue.messages()
    assert left.value == "second" and left.state is State.READY


def test_second_signal_stops_at_once_and_leaves_the_lease(
    tmp_path: Path, db_queue: PersistentQueue
) -> None:
    proc, _ = start_child(tmp_path, sleep=30, lease=30)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "'aborted': True" in out
    states = {m.value: m.state for m in db_queue.messages()}
    assert states == {"first": State.INFLIGHT, "second": State.READY}


def test_killed_worker_message_is_redelivered_after_its_lease(
    tmp_path: Path, db_queue: PersistentQueue
) -> None:
    proc, _ = start_child(tmp_path, sleep=30, lease=0.5)
    proc.kill()
    proc.communicate(timeout=20)
    states = {m.value: m.state for m in db_queue.messages()}
    assert states["first"] is State.INFLIGHT  # still leased to the dead worker...
    second = db_queue.get(timeout=5)
    assert second.value == "second"
    again = db_queue.get(timeout=5)
    assert again.value == "first" and again.attempts == 2  # ...until its lease ran out
    db_queue.ack_many([second, again])
    assert db_queue.stats().total == 0
    assert db_queue.stats().workers.keys() == {"child"}  # killed: its heartbeat stays


def test_give_up_on_given_as_a_list(store: Store) -> None:
    spec = QueueSpec("jobs", give_up_on=[ValueError])  # type: ignore[arg-type]
    assert spec.give_up_on == (ValueError,)
    q = PersistentQueue(spec=spec, store=store)
    q.put("x")
    assert failing_worker(q, []).run(until_empty=True).dead == 1


def test_object_with_async_call_is_awaited(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put(5)
    done: list[int] = []

    class Handler:
        async def __call__(self, value: int) -> None:
            await asyncio.sleep(0)
            done.append(value)

    worker = persistent_worker(q, **fast(q))(Handler())
    assert worker.run(until_empty=True).acked == 1 and done == [5]


def test_failures_still_decided_with_the_builtin_retry_plugin_disabled(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    monkeypatch.setenv("LOCALQUEUE_DISABLE_PLUGINS", "retry")
    host.reset_plugin_manager()
    q = PersistentQueue(spec=QueueSpec("jobs").with_retry(0), store=store)
    q.put("x")
    assert failing_worker(q, []).run(until_empty=True).dead == 1


def test_max_jobs_must_be_an_integer(store: Store) -> None:
    q = PersistentQueue("jobs", store=store)
    worker = failing_worker(q, [])
    with pytest.raises(ValueError, match="max_jobs"):
        worker.run(max_jobs=1.5)  # type: ignore[arg-type]


def test_a_failing_observer_does_not_silence_the_breaker(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    plugin = ModuleType("broken_observer")

    @hookimpl
    def localqueue_job_finished(outcome: JobOutcome) -> None:
        raise RuntimeError("observer bug")

    plugin.localqueue_job_finished = localqueue_job_finished  # type: ignore[attr-defined]
    install(monkeypatch, "broken-observer", plugin)
    q = PersistentQueue("jobs", store=store)
    q.put_many([1, 2, 3])

    @persistent_worker(q, breaker_threshold=2, breaker_cooldown=3600, **fast(q))
    def handle(value: int) -> None:
        raise RuntimeError("down")

    stopper = threading.Timer(0.5, handle.stop)
    stopper.start()
    summary = handle.run(max_jobs=3)
    stopper.cancel()
    assert summary.processed == 2  # the breaker opened after two failures
    assert breaker.is_open(dict(handle.view.state), handle.view.clock.now())


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


def test_interrupt_with_threads_stops_every_thread(tmp_path: Path) -> None:
    q = PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
    q.put_many(list(range(200)))
    calls: list[int] = []

    @persistent_worker(q, concurrency=2, **fast(q))
    def handle(value: int) -> None:
        calls.append(value)
        time.sleep(0.01)
        if value == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        handle.run()
    settled = len(calls)
    time.sleep(0.3)
    assert len(calls) <= settled + 1  # nothing keeps running after run() raised
    assert not [t for t in threading.enumerate() if t.name.startswith(handle.worker_id)]
    q.close()


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


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"handle_signals": "no"}, "handle_signals"),
        ({"lease_timeout": 1e-6}, "heartbeat"),
        ({"worker_id": " "}, "worker_id"),
    ],
)
def test_worker_settings_are_validated(
    store: Store, override: dict[str, Any], pattern: str
) -> None:
    q = PersistentQueue("jobs", store=store)
    with pytest.raises(ValueError, match=pattern):
        q.build_worker_config(**override)
