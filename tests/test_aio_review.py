"""Each case an adversarial review of localqueue.aio found, kept as a test:
races between a cancellation and an answer arriving in the same pass of
the event loop, a stop before run() began, handlers that are async only
underneath, a handler's own CancelledError, Ctrl-C under asyncio.run(),
one task's error, and closing while calls are in flight."""

from __future__ import annotations

import asyncio
import functools
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from localqueue import LocalQueueError, State, Store
from localqueue.aio import AsyncPersistentQueue, async_worker, threads
from localqueue.hookspecs import hookimpl
from localqueue.plugins import get_plugin_manager
from localqueue.worker import FetchGate


def test_a_message_fetched_as_the_worker_is_cancelled_goes_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncPersistentQueue(
            "q", store=f"sqlite://{tmp_path}/q.db", lease_timeout=300
        ) as q:
            ran: list[str] = []

            async def handler(value: str) -> None:
                ran.append(value)

            worker = async_worker(q, handle_signals=False, poll_interval=30)(handler)
            running = asyncio.create_task(worker.run())
            while q._waker.waiting == 0:
                await asyncio.sleep(0.01)
            [getting] = [
                t for t in asyncio.all_tasks()
                if t.get_coro().__qualname__ == "AsyncPersistentQueue.get"  # type: ignore[union-attr]
            ]  # fmt: skip
            # The worker's task is cancelled in the same pass as its get returns.
            getting.add_done_callback(lambda _: worker.stop(now=True))
            await q.put("job")
            summary = await running
            assert ran == [] and summary.aborted
            [message] = await q.messages()
            assert message.state is State.READY

    asyncio.run(main())


def test_a_get_cancelled_in_the_same_pass_as_its_wake_up_claims_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncPersistentQueue("q", store=f"sqlite://{tmp_path}/q.db") as q:
            task = asyncio.create_task(q.get(timeout=5))
            while q._waker.waiting == 0:
                await asyncio.sleep(0.01)

            def wake_and_cancel() -> None:
                for waiter in list(q._waker._waiters):
                    if not waiter.done():
                        waiter.set_result(None)
                task.cancel()

            asyncio.get_running_loop().call_soon(wake_and_cancel)
            await asyncio.sleep(0.2)
            await q.put("job")
            with pytest.raises(asyncio.CancelledError):
                await task
            assert [m.state for m in await q.messages()] == [State.READY]

    asyncio.run(main())


def test_a_cancellation_that_comes_with_the_stores_answer_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim: dict[str, asyncio.Task[Any]] = {}
    settle = threads._settle

    def settle_then_cancel(future: Any, result: Any, error: Any) -> None:
        settle(future, result, error)
        task = victim.pop("task", None)
        if task is not None:
            task.cancel()

    monkeypatch.setattr(threads, "_settle", settle_then_cancel)

    async def main() -> None:
        async with AsyncPersistentQueue("q", store=f"sqlite://{tmp_path}/q.db") as q:
            went_on: list[bool] = []

            async def caller() -> None:
                await q.put("x")
                went_on.append(True)

            task = asyncio.create_task(caller())
            victim["task"] = task
            with pytest.raises(asyncio.CancelledError):
                await task
            assert went_on == []
            assert [m.value for m in await q.messages()] == ["x"]  # the put happened

    asyncio.run(main())


def test_a_stop_before_run_began_ends_that_run(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("emails", store=store)

        async def send(job: object) -> None:
            pass

        worker = async_worker(q, concurrency=4, handle_signals=False)(send)
        running = asyncio.create_task(worker.run())
        worker.stop()  # the task has not started yet
        done, _ = await asyncio.wait({running}, timeout=5)
        assert done, "run() must end after a stop() that came before it began"
        # ... and the stop is used up: the next run works.
        await q.put("later")
        assert (await worker.run(until_empty=True)).acked == 1
        await q.close()

    asyncio.run(main())


def test_a_wrapped_async_handler_is_awaited_not_acked_unrun(store: Store) -> None:
    done: list[str] = []

    async def send(value: str) -> None:
        done.append(value)

    def logged(function: Any) -> Any:
        @functools.wraps(function)
        def wrapper(*args: Any) -> Any:
            return function(*args)

        return wrapper

    async def main() -> None:
        q = AsyncPersistentQueue("q", store=store)
        await q.put_many(["a", "b"])
        wrapped = async_worker(q, handle_signals=False)(logged(send))
        assert (await wrapped.run(max_jobs=1)).acked == 1
        # Not seen through: a plain lambda returning a coroutine.
        hidden = async_worker(q, handle_signals=False)(lambda value: send(value))
        assert (await hidden.run(until_empty=True)).acked == 1
        await q.close()

    asyncio.run(main())
    assert done == ["a", "b"]


def test_a_handlers_own_cancelled_error_is_a_failure_and_the_worker_goes_on(
    store: Store,
) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("q", store=store)
        await q.put_many(["bad", "good"])
        seen: list[str] = []

        async def handler(value: str) -> None:
            seen.append(value)
            if value == "bad":
                inner = asyncio.ensure_future(asyncio.sleep(10))
                inner.cancel()
                await inner

        worker = async_worker(q, max_retries=0, handle_signals=False, poll_interval=0.05)(handler)
        summary = await asyncio.wait_for(worker.run(until_empty=True), 10)
        assert seen == ["bad", "good"]
        assert (summary.acked, summary.dead) == (1, 1)
        [dead] = await q.dead_letters()
        assert dead.last_error is not None and dead.last_error.type == "CancelledError"
        await q.close()

    asyncio.run(main())


def test_ctrl_c_under_asyncio_run_stops_after_the_running_job(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, os, signal
        from localqueue.aio import AsyncPersistentQueue, async_worker

        async def main():
            q = AsyncPersistentQueue("q", store="sqlite://{tmp_path}/q.db")
            await q.put_many(["first", "second"])
            done = []

            async def handler(value):
                if value == "first":
                    os.kill(os.getpid(), signal.SIGINT)
                await asyncio.sleep(0.3)
                done.append(value)

            worker = async_worker(q, poll_interval=0.05)(handler)
            summary = await worker.run()
            print("done", done, "acked", summary.acked,
                  "left", [m.value for m in await q.messages()])
            print("restored", signal.getsignal(signal.SIGINT) is not None)
            await q.close()

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "done ['first'] acked 1 left ['second']" in out.stdout
    assert "stopping after the running jobs" in out.stderr


def test_one_tasks_error_stops_the_worker_and_run_raises_it(store: Store) -> None:
    calls = {"n": 0}

    class Broken:
        @hookimpl
        def localqueue_fetch_delay(self, gate: FetchGate) -> float | None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("plugin bug")
            return None

    async def main() -> None:
        q = AsyncPersistentQueue("q", store=store)

        async def handler(value: object) -> None:
            pass

        worker = async_worker(q, concurrency=2, handle_signals=False, poll_interval=0.05)(handler)
        with pytest.raises(RuntimeError, match="plugin bug"):
            await asyncio.wait_for(worker.run(), 5)
        await q.close()

    pm = get_plugin_manager()
    pm.register(Broken(), name="broken-fetch-gate")
    try:
        asyncio.run(main())
    finally:
        pm.unregister(name="broken-fetch-gate")


def test_a_call_submitted_as_the_threads_close_still_runs() -> None:
    class SlowPut(queue.SimpleQueue):  # type: ignore[type-arg]
        """Stands in for a thread switch between the check and the put."""

        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            if item is not None:
                time.sleep(0.3)
            super().put(item, block, timeout)

    async def main() -> None:
        pool = threads.StoreThreads(2, "test")
        pool._jobs = SlowPut()
        assert await pool.submit(lambda: 1) == 1
        closing = threading.Timer(0.1, pool.close)
        closing.start()
        assert await asyncio.wait_for(pool.submit(lambda: "ran"), 5) == "ran"
        closing.join()

    asyncio.run(main())


def test_close_lets_puts_that_began_finish(tmp_path: Path) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("q", store=f"sqlite://{tmp_path}/q.db")
        puts = [asyncio.create_task(q.put(i)) for i in range(20)]
        await asyncio.sleep(0)  # every put has begun: one in the store, the rest batched
        await q.close()
        results = await asyncio.gather(*puts, return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)]
        again = AsyncPersistentQueue("q", store=f"sqlite://{tmp_path}/q.db")
        assert await again.qsize() == 20
        await again.close()

    asyncio.run(main())


def test_a_get_waiting_when_the_queue_closes_says_it_closed(tmp_path: Path) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("q", store=f"sqlite://{tmp_path}/q.db")
        waiting = asyncio.create_task(q.get())
        await asyncio.sleep(0.2)
        await q.close()
        with pytest.raises(LocalQueueError, match="closed"):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(main())
