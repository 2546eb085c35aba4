"""AsyncPersistentQueue beyond the contract (which the harness's
AsyncQueueContract runs on every store): waiting without a thread per
waiter, waking on a put from another process, iteration, closing."""

from __future__ import annotations

import asyncio
import queue as stdlib_queue
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

import localqueue
from localqueue import LocalQueueError, Store
from localqueue.aio import AsyncPersistentQueue, waker

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def test_the_facade_re_exports_the_async_names() -> None:
    assert localqueue.AsyncPersistentQueue is AsyncPersistentQueue
    assert callable(localqueue.async_worker)


def test_a_hundred_waiting_gets_hold_a_handful_of_threads(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int]:
        async with AsyncPersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db") as q:
            before = threading.active_count()
            waiting = [asyncio.create_task(q.get(timeout=10)) for _ in range(100)]
            for _ in range(200):  # until every one has tried its claim and waits
                await asyncio.sleep(0.01)
                if q._waker.waiting == 100:
                    break
            during = threading.active_count()
            await q.put_many(range(100))
            got = await asyncio.gather(*waiting)
            assert sorted(m.value for m in got) == list(range(100))
            assert await q.ack_many(got) == []
            return before, during, q._waker.waiting

    before, during, left = run(main())
    # The pool's threads (4 at most) and the one waiter thread.
    assert during - before <= 5, (before, during)
    assert left == 0


def test_a_put_from_another_process_wakes_a_waiting_get(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/q.db"
    put = (
        f"from localqueue import PersistentQueue; PersistentQueue('jobs', store={url!r}).put('hi')"
    )

    async def main() -> float:
        async with AsyncPersistentQueue("jobs", store=url) as q:
            getting = asyncio.create_task(q.get(timeout=20))
            await asyncio.sleep(0.2)
            assert not getting.done()
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", put)
            assert await proc.wait() == 0
            put_done = time.monotonic()
            message = await getting
            woke = time.monotonic() - put_done
            assert message.value == "hi"
            await q.ack(message)
            return woke

    # The synchronous get wakes within the store's poll interval (SQLite:
    # well under 0.1 s); the async one adds one hop to the event loop.
    assert run(main()) < 0.5


def test_timeouts_and_non_blocking_gets(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        with pytest.raises(stdlib_queue.Empty):
            await q.get(block=False)
        started = time.monotonic()
        with pytest.raises(stdlib_queue.Empty):
            await q.get(timeout=0.2)
        assert 0.15 <= time.monotonic() - started < 2
        with pytest.raises(ValueError, match="timeout"):
            await q.get(timeout=-1)
        assert q._waker.waiting == 0
        await q.close()

    run(main())


def test_async_for_leases_each_message_in_turn(store: Store) -> None:
    async def main() -> list[int]:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many([1, 2, 3])
        seen: list[int] = []
        async for message in q:
            seen.append(message.value)
            await q.ack(message)
            if len(seen) == 3:
                break
        await q.close()
        return seen

    assert run(main()) == [1, 2, 3]


def test_iteration_stops_on_cancellation_and_strands_nothing(store: Store) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)

        async def consume() -> None:
            async for message in q:
                await q.ack(message)

        task = asyncio.create_task(consume())
        await q.put("one")
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = await q.stats()
        assert (stats.ready, stats.inflight) == (0, 0)
        await q.close()

    run(main())


def test_close_is_idempotent_and_a_closed_queue_says_so(tmp_path: Path) -> None:
    async def main() -> None:
        q = await AsyncPersistentQueue.open("jobs", store=f"sqlite://{tmp_path}/q.db")
        await q.put(1)
        await q.close()
        await q.close()
        with pytest.raises(LocalQueueError, match="closed"):
            await q.put(2)
        with pytest.raises(LocalQueueError, match="closed"):
            await q.get(timeout=1)

    run(main())


def test_arguments_are_checked_as_the_blocking_queue_checks_them(store: Store) -> None:
    with pytest.raises(ValueError, match="threads"):
        AsyncPersistentQueue("jobs", store=store, threads=0)
    with pytest.raises(ValueError, match="name"):
        AsyncPersistentQueue(store=store)

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        with pytest.raises(ValueError, match="limit"):
            await q.get_many(0)
        with pytest.raises(ValueError, match="priority"):
            await q.put(1, priority="high")  # type: ignore[arg-type]
        await q.close()

    run(main())


def test_the_waiter_thread_ends_when_nobody_waits(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(waker, "IDLE_EXIT", 0.1)
    monkeypatch.setattr(waker, "WAIT_SLICE", 0.05)

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        with pytest.raises(stdlib_queue.Empty):
            await q.get(timeout=0.1)
        assert any(t.name.startswith("localqueue-aio-waker") for t in threading.enumerate())
        await asyncio.sleep(0.5)
        assert not any(t.name.startswith("localqueue-aio-waker") for t in threading.enumerate())
        # ... and the next waiter starts another.
        getting = asyncio.create_task(q.get(timeout=5))
        await asyncio.sleep(0.05)
        await q.put("late")
        assert (await getting).value == "late"
        await q.close()

    run(main())


def test_a_view_shares_threads_and_refuses_another_queue(store: Store) -> None:
    from localqueue import PersistentQueue

    q = AsyncPersistentQueue("jobs", store=store)
    twin = q.view(PersistentQueue("jobs", store=store, lease_timeout=5))
    assert twin._pool is q._pool and twin.lease_timeout == 5
    with pytest.raises(ValueError, match="same queue"):
        q.view(PersistentQueue("other", store=store))
    run(q.close())
