"""async_worker: the threaded worker's policies, hooks and heartbeats, with
handlers as tasks in the caller's event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from localqueue import ManualClock, Message, State, Store, hookimpl
from localqueue import plugins as host
from localqueue.aio import AsyncPersistentQueue, AsyncWorker, async_worker
from localqueue.worker import HandlerCall, JobOutcome


def fast(**overrides: Any) -> dict[str, Any]:
    """Worker settings that keep tests quick and never touch signal handlers."""
    return {"poll_interval": 0.05, "handle_signals": False, **overrides}


def test_async_handlers_run_concurrently_as_tasks_in_the_callers_loop(store: Store) -> None:
    async def main() -> tuple[int, set[int]]:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(range(12))
        running = peak = 0
        loops: set[int] = set()

        @async_worker(q, concurrency=4, **fast())
        async def handle(value: int) -> None:
            nonlocal running, peak
            loops.add(id(asyncio.get_running_loop()))
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

        assert isinstance(handle, AsyncWorker)
        summary = await handle.run(until_empty=True)
        assert (summary.processed, summary.acked) == (12, 12)
        assert loops == {id(asyncio.get_running_loop())}
        await q.close()
        return peak, loops

    peak, _ = asyncio.run(main())
    assert peak == 4


def test_a_plain_handler_runs_in_a_thread_and_gets_the_message_if_it_asks(
    store: Store,
) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put("x")
        seen: list[tuple[str, int, bool]] = []

        @async_worker(q, **fast())
        def handle(value: str, message: Message) -> None:
            seen.append(
                (value, message.attempts, threading.current_thread() is threading.main_thread())
            )

        assert (await handle.run(until_empty=True)).acked == 1
        assert seen == [("x", 1, False)]
        await q.close()

    asyncio.run(main())


def test_failures_follow_the_retry_policy_then_dead_letter(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put("bad")
        attempts: list[int] = []

        @async_worker(q, max_retries=2, release_delay=0, **fast())
        async def handle(value: str, message: Message) -> None:
            attempts.append(message.attempts)
            raise ValueError(f"cannot handle {value}")

        summary = await handle.run(until_empty=True)
        assert attempts == [1, 2, 3]
        assert (summary.processed, summary.released, summary.dead) == (3, 2, 1)
        [dead] = await q.dead_letters()
        assert dead.last_error is not None and dead.last_error.type == "ValueError"
        await q.close()

    asyncio.run(main())


def test_the_same_hooks_are_called(store: Store) -> None:
    plugin = ModuleType("watching")
    wrapped: list[int] = []
    finished: list[tuple[int, str]] = []

    @hookimpl(wrapper=True)
    def localqueue_call_handler(call: HandlerCall) -> Any:
        result = yield
        wrapped.append(call.message.id)
        return result

    @hookimpl
    def localqueue_job_finished(outcome: JobOutcome) -> None:
        finished.append((outcome.message.id, outcome.outcome.value))

    plugin.localqueue_call_handler = localqueue_call_handler  # type: ignore[attr-defined]
    plugin.localqueue_job_finished = localqueue_job_finished  # type: ignore[attr-defined]
    pm = host.get_plugin_manager()
    pm.register(plugin, name="watching")

    async def main() -> list[int]:
        q = AsyncPersistentQueue("jobs", store=store)
        ids = [m.id for m in await q.put_many(["ok", "fail"])]

        @async_worker(q, max_retries=0, **fast())
        async def handle(value: str) -> None:
            if value == "fail":
                raise RuntimeError(value)

        await handle.run(until_empty=True)
        await q.close()
        return ids

    try:
        ok, fail = asyncio.run(main())
    finally:
        pm.unregister(name="watching")
    assert wrapped == [ok, fail]
    assert sorted(finished) == sorted([(ok, "acked"), (fail, "dead")])


def test_pacing_spaces_job_starts(tmp_path: Path) -> None:
    async def main() -> float:
        q = AsyncPersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
        await q.put_many(range(3))

        @async_worker(q, min_interval=0.2, **fast())
        async def handle(value: int) -> None:
            pass

        started = time.monotonic()
        assert (await handle.run(until_empty=True)).acked == 3
        took = time.monotonic() - started
        await q.close()
        return took

    assert asyncio.run(main()) >= 0.38


def test_the_breaker_pauses_fetching_after_failures(tmp_path: Path) -> None:
    async def main() -> list[float]:
        q = AsyncPersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
        await q.put_many(range(3))
        starts: list[float] = []

        @async_worker(q, breaker_threshold=1, breaker_cooldown=0.3, max_retries=0, **fast())
        async def handle(value: int) -> None:
            starts.append(time.monotonic())
            raise RuntimeError("down")

        await handle.run(max_jobs=2)
        await q.close()
        return starts

    first, second = asyncio.run(main())
    assert second - first >= 0.25


def test_heartbeats_keep_a_long_job_leased_and_show_the_worker(tmp_path: Path) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db", lease_timeout=1)
        await q.put("long")
        seen: list[object] = []

        @async_worker(q, heartbeat_fraction=0.2, **fast())
        async def handle(value: str, message: Message) -> None:
            await asyncio.sleep(1.6)  # longer than the lease
            stats = await q.stats()
            seen.append(handle.worker_id in stats.workers)
            seen.append((await q.inspect(message.id)).attempts)

        summary = await handle.run(until_empty=True)
        assert (summary.acked, summary.lease_lost) == (1, 0)
        assert seen == [True, 1]  # never handed out again
        await q.close()

    asyncio.run(main())


def test_stop_lets_the_running_job_finish(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(["a", "b"])
        done: list[str] = []

        @async_worker(q, **fast())
        async def handle(value: str) -> None:
            handle.stop()
            await asyncio.sleep(0.05)
            done.append(value)

        summary = await handle.run()
        assert done == ["a"] and summary.acked == 1 and not summary.aborted
        assert [m.value for m in await q.messages()] == ["b"]
        await q.close()

    asyncio.run(main())


def test_stop_now_cancels_the_handler_and_gives_its_message_back(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put("slow")

        @async_worker(q, **fast())
        async def handle(value: str) -> None:
            handle.stop(now=True)
            await asyncio.sleep(10)

        summary = await handle.run()
        assert summary.aborted and summary.acked == 0
        [message] = await q.messages()
        assert (message.state, message.attempts) == (State.READY, 1)
        await q.close()

    asyncio.run(main())


def test_cancelling_run_gives_running_messages_back(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(["a", "b"])
        started = asyncio.Event()

        @async_worker(q, concurrency=2, **fast())
        async def handle(value: str) -> None:
            started.set()
            await asyncio.sleep(10)

        running = asyncio.create_task(handle.run())
        await started.wait()
        await asyncio.sleep(0.05)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        states = {m.state for m in await q.messages()}
        assert states == {State.READY}
        await q.close()

    asyncio.run(main())


def test_sigterm_stops_after_the_running_job(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(["a", "b"])
        done: list[str] = []

        @async_worker(q, poll_interval=0.05)
        async def handle(value: str) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            done.append(value)

        previous = signal.getsignal(signal.SIGTERM)
        summary = await handle.run()
        assert signal.getsignal(signal.SIGTERM) == previous  # restored
        assert done == ["a"] and summary.acked == 1
        await q.close()

    asyncio.run(main())


def test_a_signal_handler_someone_else_installed_is_left_alone(store: Store) -> None:
    seen: list[int] = []

    def theirs(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, theirs)
    try:

        async def main() -> None:
            q = AsyncPersistentQueue("jobs", store=store)
            await q.put("a")

            @async_worker(q, poll_interval=0.05)
            async def handle(value: str) -> None:
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.sleep(0.05)

            assert (await handle.run(until_empty=True)).acked == 1
            await q.close()

        asyncio.run(main())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]


def test_a_store_outage_is_ridden_out(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from localqueue import StoreConnectionLost

    real_claim = store.claim
    failures = [StoreConnectionLost("connection to the store was lost")]

    def flaky_claim(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim", flaky_claim)

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put("a")

        @async_worker(q, **fast())
        async def handle(value: str) -> None:
            pass

        with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
            summary = await handle.run(max_jobs=1)
        assert summary.acked == 1
        await q.close()

    asyncio.run(main())
    assert "connection to the store was lost; fetching again" in caplog.text


def test_max_jobs_and_bad_arguments(store: Store, clock: ManualClock) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(range(5))

        @async_worker(q, concurrency=3, **fast())
        async def handle(value: int) -> None:
            pass

        assert (await handle.run(max_jobs=2)).processed == 2
        with pytest.raises(ValueError, match="max_jobs"):
            await handle.run(max_jobs=-1)
        with pytest.raises(ValueError, match="callable"):
            async_worker(q)(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="concurrency"):
            async_worker(q, concurrency=0)
        await q.close()

    asyncio.run(main())
