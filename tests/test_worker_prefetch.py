"""Batch workers (``prefetch``): leases N at once, works them one by one,
acks the finished ones with the claim of the next batch, keeps the waiting
ones leased, and gives them back when it stops."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localqueue import PersistentQueue, QueueSpec, State
from localqueue.spec import MAX_PREFETCH, PersistentWorkerConfig
from localqueue.store import Store
from localqueue.worker import PersistentWorker, persistent_worker


@pytest.fixture(params=["sqlite", "memory"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PersistentQueue]:
    url = f"sqlite://{tmp_path}/q.db" if request.param == "sqlite" else f"memory://{tmp_path}"
    with PersistentQueue("jobs", store=url) as q:
        yield q


class Counting:
    """Counts the store calls a worker makes (wraps the store's methods)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {}
        for name in ("claim", "ack", "settle_and_claim", "release"):
            original = getattr(store, name, None)
            if original is not None:
                monkeypatch.setattr(store, name, self._counted(name, original))

    def _counted(self, name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return original(*args, **kwargs)

        return call


def worker(q: PersistentQueue, handler: Any, **settings: Any) -> PersistentWorker:
    settings = {"poll_interval": 0.05, "handle_signals": False, **settings}
    return persistent_worker(q, **settings)(handler)


def test_prefetch_is_validated_and_carried_from_the_spec() -> None:
    for bad in (0, -1, MAX_PREFETCH + 1, True, 2.5, "3"):
        with pytest.raises(ValueError, match="prefetch must be an integer from 1 to 1000"):
            QueueSpec(name="q", prefetch=bad)  # type: ignore[arg-type]
    spec = QueueSpec(name="q").with_prefetch(25)
    assert spec.prefetch == 25
    assert PersistentWorkerConfig.from_spec(spec).prefetch == 25


def test_a_batch_worker_runs_every_job_in_order(queue: PersistentQueue) -> None:
    queue.put_many(list(range(100)))
    seen: list[int] = []
    summary = worker(queue, seen.append, prefetch=10).run(until_empty=True)
    assert seen == list(range(100))
    assert (summary.processed, summary.acked) == (100, 100)
    assert queue.stats().total == 0


def test_a_batch_worker_pays_one_store_transaction_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite: each of these calls is one transaction (the memory store's
    # settle_and_claim calls its own ack and claim, which would count twice).
    queue = PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
    queue.put_many(list(range(100)))
    counting = Counting(queue.store, monkeypatch)
    seen: list[int] = []
    summary = worker(queue, seen.append, prefetch=10).run(until_empty=True)
    assert seen == list(range(100))
    assert (summary.processed, summary.acked) == (100, 100)
    assert queue.stats().total == 0
    # One claim for the first batch, then one settle-and-claim per batch
    # (the last one finds nothing), and no ack of its own.
    batches = counting.calls.get("settle_and_claim", 0) + counting.calls.get("claim", 0)
    assert batches <= 12, counting.calls
    assert counting.calls.get("ack", 0) <= 1, counting.calls
    queue.close()


def test_the_job_budget_leases_no_more_than_it_will_run(queue: PersistentQueue) -> None:
    queue.put_many(list(range(100)))
    seen: list[int] = []
    summary = worker(queue, seen.append, prefetch=10).run(max_jobs=15)
    assert seen == list(range(15)) and summary.acked == 15
    stats = queue.stats()
    assert (stats.ready, stats.inflight) == (85, 0)


def test_a_stop_gives_back_the_messages_not_started_at_once(queue: PersistentQueue) -> None:
    queue.put_many(list(range(20)))
    seen: list[int] = []
    batch = worker(queue, seen.append, prefetch=10)

    def handle(value: int) -> None:
        seen.append(value)
        if value == 2:
            batch.stop()

    batch.handler = handle
    summary = batch.run()
    assert seen == [0, 1, 2] and summary.acked == 3
    stats = queue.stats()
    # The 7 prefetched and never started are ready again, not left to expire.
    assert (stats.ready, stats.inflight) == (17, 0)


def test_failures_in_a_batch_are_released_at_once_and_the_rest_acked(
    queue: PersistentQueue,
) -> None:
    queue.put_many(list(range(10)))

    def handle(value: int) -> None:
        if value % 3 == 0:
            raise ValueError(f"bad {value}")

    summary = worker(queue, handle, prefetch=5, max_retries=0).run(until_empty=True)
    assert (summary.acked, summary.dead) == (6, 4)
    stats = queue.stats()
    assert (stats.dead, stats.total) == (4, 4)
    dead = sorted(m.value for m in queue.dead_letters())
    assert dead == [0, 3, 6, 9]


def test_waiting_messages_keep_their_leases_past_the_lease_timeout(tmp_path: Path) -> None:
    # Ten messages of 0.1 s each with a 0.3 s lease: the last waits 0.9 s.
    with PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
        q.put_many(list(range(10)))
        seen: list[int] = []

        def handle(value: int) -> None:
            seen.append(value)
            time.sleep(0.1)

        summary = worker(q, handle, prefetch=10, lease_timeout=0.3).run(until_empty=True)
        assert seen == list(range(10))
        assert (summary.acked, summary.lease_lost) == (10, 0)
        assert q.stats().total == 0


def test_concurrent_threads_each_take_their_own_batches(queue: PersistentQueue) -> None:
    queue.put_many(list(range(200)))
    seen: list[int] = []
    summary = worker(queue, seen.append, prefetch=8, concurrency=3).run(until_empty=True)
    assert sorted(seen) == list(range(200)) and summary.acked == 200
    assert queue.stats().total == 0


def test_an_async_worker_takes_batches_too(queue: PersistentQueue) -> None:
    import asyncio

    from localqueue import AsyncPersistentQueue, async_worker

    queue.put_many(list(range(50)))
    seen: list[int] = []

    async def main() -> Any:
        async with AsyncPersistentQueue("jobs", store=queue.store) as q:

            @async_worker(q, prefetch=10, poll_interval=0.05, handle_signals=False)
            async def handle(value: int) -> None:
                seen.append(value)

            return await handle.run(until_empty=True)

    summary = asyncio.run(main())
    assert sorted(seen) == list(range(50)) and summary.acked == 50
    assert queue.stats().total == 0


def test_exec_takes_prefetch(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/q.db"
    with PersistentQueue("jobs", store=url) as q:
        q.put_many(list(range(30)))
    env = {**os.environ, "LOCALQUEUE_STORE": url}
    done = subprocess.run(
        [sys.executable, "-m", "localqueue", "queue", "exec", "jobs", "--prefetch", "10",
         "--until-empty", "--json", "--", "true"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"acked": 30' in done.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "localqueue", "queue", "exec", "jobs", "--prefetch", "0", "--",
         "true"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert refused.returncode == 2 and "--prefetch" in refused.stderr


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from localqueue import PersistentQueue
    from localqueue.worker import persistent_worker

    url, log = sys.argv[1], sys.argv[2]
    q = PersistentQueue("jobs", store=url)

    @persistent_worker(q, prefetch=10, lease_timeout=1.0, poll_interval=0.05)
    def handle(value):
        with open(log, "a") as out:
            out.write(f"{value}\\n")
        time.sleep(0.01)

    handle.run(until_empty=True)
    """
)


def test_a_killed_batch_worker_loses_nothing_and_reruns_at_most_its_batch(
    tmp_path: Path,
) -> None:
    url = f"sqlite://{tmp_path}/q.db"
    with PersistentQueue("jobs", store=url) as q:
        q.put_many(list(range(300)))
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    log = tmp_path / "ran.log"
    first = subprocess.Popen([sys.executable, str(script), url, str(log)])
    deadline = time.monotonic() + 60
    while (not log.exists() or len(log.read_text().split()) < 50) and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = subprocess.run([sys.executable, str(script), url, str(log)], timeout=120)
    assert second.returncode == 0
    ran = [int(v) for v in log.read_text().split()]
    assert set(ran) == set(range(300))  # nothing lost
    # Run twice: only what the killed worker held (its batch, started or
    # waiting, and the batch's acks not yet committed): at most 2 batches.
    assert len(ran) - 300 <= 20
    with PersistentQueue("jobs", store=url) as q:
        assert q.stats().total == 0
        assert q.store.list_messages("jobs", state=State.INFLIGHT) == []


def test_ack_many_and_get_many_acks_and_leases_in_one_call(queue: PersistentQueue) -> None:
    queue.put_many(list(range(10)))
    first = queue.get_many(3)
    lost, leased = queue.ack_many_and_get_many(first, 4)
    assert lost == [] and [m.value for m in leased] == [3, 4, 5, 6]
    stats = queue.stats()
    assert (stats.ready, stats.inflight, stats.total) == (3, 4, 7)
    # Nothing to ack is fine: a plain claim that never waits.
    lost, more = queue.ack_many_and_get_many([], 10)
    assert lost == [] and [m.value for m in more] == [7, 8, 9]
    lost, none = queue.ack_many_and_get_many([*leased, *more], 5)
    assert (lost, none) == ([], [])
    assert queue.stats().total == 0


def test_ack_many_and_get_many_leases_nothing_when_a_lease_was_lost(
    queue: PersistentQueue,
) -> None:
    queue.put_many(list(range(5)))
    held = queue.get_many(2)
    queue.release(held[0])  # its receipt is stale now
    lost, leased = queue.ack_many_and_get_many(held, 3)
    assert [m.id for m in lost] == [held[0].id] and leased == []
    # The current one was acked; the released one is ready again.
    assert queue.stats().total == 4 and queue.stats().inflight == 0
    with pytest.raises(ValueError, match="limit must be"):
        queue.ack_many_and_get_many([], 0)


def test_ack_many_and_get_many_gives_a_repeated_message_s_failure_to_its_later_copy(
    queue: PersistentQueue,
) -> None:
    """As ack_many does: the store acks the first copy and finds the second
    stale, so only the second is reported lost (and nothing is leased)."""
    queue.put_many(list(range(3)))
    [message] = queue.get_many(1)
    lost, leased = queue.ack_many_and_get_many([message, message], 2)
    assert len(lost) == 1 and lost[0] is message and leased == []
    assert queue.stats().total == 2  # the message was acked


def test_the_async_queue_acks_many_and_gets_many(queue: PersistentQueue) -> None:
    import asyncio

    from localqueue import AsyncPersistentQueue

    queue.put_many(list(range(6)))

    async def main() -> tuple[list[int], list[int]]:
        async with AsyncPersistentQueue("jobs", store=queue.store) as q:
            first = await q.get_many(2)
            lost, leased = await q.ack_many_and_get_many(first, 3)
            assert lost == []
            return [m.value for m in first], [m.value for m in leased]

    assert asyncio.run(main()) == ([0, 1], [2, 3, 4])
    assert queue.stats().inflight == 3 and queue.stats().total == 4


# -- what an adversarial review found, each kept as a test ----------------------------------


def test_pacing_does_not_cost_prefetched_messages_their_attempts(tmp_path: Path) -> None:
    # Pacing at least as long as the heartbeat interval: a batch must not be
    # claimed and given back for every job (each give-back keeps an attempt).
    with PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
        q.put_many(list(range(6)))
        first_attempt: dict[int, int] = {}

        def handle(value: int, message: Any) -> None:
            first_attempt.setdefault(value, message.attempts)

        summary = worker(q, handle, prefetch=6, min_interval=0.12, lease_timeout=0.3).run(
            until_empty=True
        )
        assert summary.acked == 6
        assert first_attempt == {n: 1 for n in range(6)}


def test_an_open_breaker_does_not_cost_waiting_messages_their_attempts(tmp_path: Path) -> None:
    with PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
        q.put_many(list(range(10)))
        ran: list[int] = []

        def handle(value: int) -> None:
            ran.append(value)
            raise ConnectionError("endpoint down")

        batch = worker(
            q, handle, prefetch=10, max_retries=3, breaker_threshold=1, breaker_cooldown=0.2,
            lease_timeout=0.3,
        )  # fmt: skip
        stopper = threading.Timer(1.2, batch.stop)
        stopper.start()
        batch.run()
        stopper.join()
        for message in q.messages():
            # Tried ones: one attempt per try. Never tried: at most the one
            # attempt the claim of the final give-back counted.
            assert message.attempts <= ran.count(message.value) + 1, message
        assert q.stats().dead == 0


def test_a_busy_store_at_the_batch_ack_reruns_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localqueue.errors import StoreBusyError

    with PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
        q.put_many(list(range(20)))
        original = q.store.settle_and_claim  # type: ignore[attr-defined]
        calls = {"n": 0}

        def busy_once(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:  # the first that carries a batch's acks
                raise StoreBusyError("database is locked (another process held it)")
            return original(*args, **kwargs)

        monkeypatch.setattr(q.store, "settle_and_claim", busy_once)
        runs: list[int] = []
        summary = worker(q, runs.append, prefetch=10, lease_timeout=0.6).run(until_empty=True)
        assert sorted(runs) == list(range(20))  # each once: the acks were kept and retried
        assert (summary.acked, summary.lease_lost) == (20, 0)
        assert q.stats().total == 0


def test_an_async_worker_cancelled_during_its_last_ack_gives_back_its_batch(
    tmp_path: Path,
) -> None:
    import asyncio

    from localqueue import AsyncPersistentQueue, async_worker

    async def main() -> tuple[list[int], Any]:
        async with AsyncPersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
            await q.put_many(list(range(20)))
            store = q.sync.store
            slow = store.ack

            def slow_ack(*args: Any, **kwargs: Any) -> Any:
                time.sleep(0.3)  # a slow commit
                return slow(*args, **kwargs)

            store.ack = slow_ack  # type: ignore[method-assign]
            seen: list[int] = []

            async def handle(value: int) -> None:
                seen.append(value)
                if value == 2:
                    run.stop()  # a graceful stop, then the app cancels the run
                    asyncio.get_running_loop().call_later(0.1, task.cancel)

            run = async_worker(q, prefetch=10, handle_signals=False, poll_interval=0.05)(handle)
            task = asyncio.create_task(run.run())
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return seen, q.sync.stats()

    seen, stats = asyncio.run(main())
    assert seen == [0, 1, 2]
    assert (stats.inflight, stats.ready) == (0, 17)


def test_the_heartbeat_never_calls_a_lease_the_worker_just_ended_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
        q.put_many(list(range(3000)))
        with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
            summary = worker(
                q, lambda value: time.sleep(0.0002), prefetch=200, lease_timeout=0.3
            ).run(until_empty=True)
        assert (summary.acked, summary.lease_lost) == (3000, 0)
    assert not [r for r in caplog.records if "lost before it could be extended" in r.getMessage()]


def test_a_waiting_message_whose_lease_ended_is_not_started(tmp_path: Path) -> None:
    from localqueue.worker.heartbeat import TrackedLease
    from localqueue.worker.runner import _RunState, _Slot

    with PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
        q.put_many([1, 2])
        late, fresh = q.get_many(2)
        ended = late.with_record(late.record._replace(leased_until=time.time() - 1))
        batch = worker(q, print, prefetch=2)
        run = _RunState(keeper=_Keeper())  # type: ignore[arg-type]
        slot = _Slot()
        slot.waiting.extend([TrackedLease(ended), TrackedLease(fresh)])
        assert batch._take_waiting(run, slot) is fresh
        assert not slot.waiting


class _Keeper:
    def forget(self, tracked: object) -> None:
        pass


def test_the_job_budget_is_shared_among_threads_when_sizing_a_claim() -> None:
    from localqueue.worker.runner import _JobBudget

    assert _JobBudget(None).batch(50, threads=4) == 50
    budget = _JobBudget(10)
    assert budget.take()  # the job this claim is for; 9 left after it
    # 10 jobs in all for 4 threads: each claims its share, rounded up.
    assert budget.batch(50, threads=4) == 3
    assert budget.batch(50, threads=1) == 10
    assert budget.batch(2, threads=1) == 2
    spent = _JobBudget(1)
    assert spent.take()
    assert spent.batch(50, threads=4) == 1  # the job taken, never less


def test_a_stopping_worker_retries_its_final_ack_after_a_busy_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localqueue.errors import StoreBusyError

    with PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
        q.put_many(list(range(5)))
        original = q.store.ack
        calls = {"n": 0}

        def busy_once(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise StoreBusyError("database is locked (another process held it)")
            return original(*args, **kwargs)

        monkeypatch.setattr(q.store, "ack", busy_once)
        # max_jobs=3: the third job's ack is the final one, made on the way out.
        summary = worker(q, lambda value: None, prefetch=3).run(max_jobs=3)
        assert (summary.acked, summary.lease_lost) == (3, 0)
        assert calls["n"] == 2
        stats = q.stats()
        assert (stats.ready, stats.inflight) == (2, 0)
