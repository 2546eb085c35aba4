"""Cancellation is safe (docs/async.md): a write that has begun completes
before CancelledError goes on, and a get cancelled while its claim is in
the store releases what it leased. Each await point of a get is cancelled
in turn, then a thousand gets are cancelled at random while a worker runs."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from localqueue import ManualClock, State
from localqueue.aio import AsyncPersistentQueue, async_worker
from localqueue.store import ClaimResult, EnqueueResult, Lease, NewMessage, Settlement, SettleResult
from localqueue.stores.memory import MemoryStore


class GatedStore(MemoryStore):
    """A store whose claim, enqueue and ack block, once armed, until the
    test opens the gate: the test cancels its caller meanwhile."""

    def __init__(self, clock: ManualClock) -> None:
        # uuid, not id(self): a freed object's id comes back, and a named
        # memory store outlives its handles.
        super().__init__(f"memory://gated-{uuid.uuid4().hex}", clock=clock)
        self.armed: set[str] = set()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def _pass(self, operation: str) -> None:
        if operation in self.armed:
            self.armed.discard(operation)
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"

    def claim(self, queue: str, **kwargs: object) -> ClaimResult:
        self._pass("claim")
        return super().claim(queue, **kwargs)  # type: ignore[arg-type]

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        self._pass("enqueue")
        return super().enqueue(queue, messages)

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        self._pass("ack")
        return super().ack(queue, leases)

    def settle_and_claim(
        self, queue: str, settlements: Sequence[Settlement], **kwargs: object
    ) -> SettleResult:
        self._pass("settle_and_claim")
        return super().settle_and_claim(queue, settlements, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def gated() -> GatedStore:
    return GatedStore(ManualClock())


async def cancel_inside(store: GatedStore, operation: str, task: asyncio.Task[object]) -> None:
    """Cancel ``task`` while ``operation`` is inside the store, then let the
    store finish; return once the task is done."""
    store.armed.add(operation)
    while not store.entered.is_set():
        await asyncio.sleep(0.005)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done(), "the cancellation must wait for the store's answer"
    store.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_get_cancelled_during_its_claim_releases_what_it_leased(gated: GatedStore) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=gated)
        await q.put("job")
        gated.armed.add("claim")
        task = asyncio.create_task(q.get(timeout=5))
        gated.armed.discard("claim")
        await cancel_inside(gated, "claim", task)
        [message] = await q.messages()
        # Back to ready at once; the delivery counted, as a stopped worker's does.
        assert (message.state, message.attempts) == (State.READY, 1)
        again = await q.get(block=False)
        assert again.value == "job" and again.attempts == 2
        await q.close()

    asyncio.run(main())


def test_a_get_cancelled_while_it_waits_changes_nothing(gated: GatedStore) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=gated)
        task = asyncio.create_task(q.get(timeout=5))
        while q._waker.waiting == 0:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert q._waker.waiting == 0
        await q.put("later")
        assert (await q.get(block=False)).attempts == 1
        await q.close()

    asyncio.run(main())


def test_a_cancelled_put_has_happened(gated: GatedStore) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=gated)
        task = asyncio.create_task(q.put("kept"))
        await cancel_inside(gated, "enqueue", task)
        assert [m.value for m in await q.messages()] == ["kept"]
        await q.close()

    asyncio.run(main())


def test_a_cancelled_ack_has_happened(gated: GatedStore) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=gated)
        await q.put("done")
        message = await q.get(block=False)
        task = asyncio.create_task(q.ack(message))
        await cancel_inside(gated, "ack", task)
        assert await q.messages() == []
        await q.close()

    asyncio.run(main())


def test_a_cancelled_ack_and_get_acks_and_releases_the_next(gated: GatedStore) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=gated)
        await q.put_many(["first", "second"])
        first = await q.get(block=False)
        task = asyncio.create_task(q.ack_and_get(first))
        await cancel_inside(gated, "settle_and_claim", task)
        [left] = await q.messages()
        assert (left.value, left.state) == ("second", State.READY)
        await q.close()

    asyncio.run(main())


def test_a_thousand_gets_cancelled_at_random_while_a_worker_runs(tmp_path: Path) -> None:
    total = 300

    async def main() -> tuple[set[int], set[int]]:
        q = AsyncPersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
        await q.put_many(range(total))
        by_worker: set[int] = set()
        by_gets: set[int] = set()

        @async_worker(q, concurrency=2, poll_interval=0.05, handle_signals=False)
        async def handle(value: int) -> None:
            await asyncio.sleep(0)
            by_worker.add(value)

        working = asyncio.create_task(handle.run())
        rng = random.Random(7)

        async def get_once() -> None:
            message = await q.get(timeout=0.2)
            by_gets.add(message.value)
            await q.ack(message)

        for _ in range(1000 // 50):
            gets = [asyncio.create_task(get_once()) for _ in range(50)]
            await asyncio.sleep(rng.uniform(0, 0.004))
            for task in gets:
                if rng.random() < 0.9:
                    task.cancel()
                    await asyncio.sleep(0)
            await asyncio.gather(*gets, return_exceptions=True)
        while True:  # the worker drains what is left
            stats = await q.stats()
            if stats.ready + stats.inflight == 0:
                break
            await asyncio.sleep(0.05)
        handle.stop()
        await working
        stats = await q.stats()
        assert (stats.ready, stats.delayed, stats.inflight, stats.dead) == (0, 0, 0, 0)
        await q.close()
        return by_worker, by_gets

    by_worker, by_gets = asyncio.run(main())
    assert by_worker | by_gets == set(range(total))
    assert by_gets, "some gets must have won a message before their cancellation"


def test_a_put_cancelled_before_its_batch_left_is_still_stored(gated: GatedStore) -> None:
    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=gated)
        task = asyncio.create_task(q.put("kept"))
        await asyncio.sleep(0)  # the put has begun: its batch leaves on the next pass
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [m.value for m in await q.messages()] == ["kept"]
        await q.close()

    asyncio.run(main())
