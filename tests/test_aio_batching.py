"""Group commit in AsyncPersistentQueue: puts, acks and gets that meet while
one is in the store go together in one store call, and each caller still
gets its own result or its own error."""

from __future__ import annotations

import asyncio
import queue as stdlib_queue
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from localqueue import LeaseExpired, ManualClock, SerializationError, StoreBusyError
from localqueue.aio import AsyncPersistentQueue
from localqueue.store import ClaimResult, EnqueueResult, Lease, NewMessage
from localqueue.stores.memory import MemoryStore


class CountingStore(MemoryStore):
    """Counts store calls; the first call of an operation waits at a gate
    so that the test can line up more callers behind it."""

    def __init__(self) -> None:
        # A name of its own: an id() is reused once its object is freed, and a
        # named memory store outlives its handles, so an earlier test's
        # messages would be found here.
        super().__init__(f"memory://counting-{uuid.uuid4().hex}", clock=ManualClock())
        self.calls: dict[str, list[int]] = {"enqueue": [], "claim": [], "ack": []}
        self.hold: set[str] = set()
        self.held = threading.Event()
        self.gate = threading.Event()
        self.fail: set[str] = set()

    def _enter(self, operation: str, size: int) -> None:
        self.calls[operation].append(size)
        if operation in self.hold:
            self.hold.discard(operation)
            self.held.set()
            assert self.gate.wait(10)
        if operation in self.fail:
            self.fail.discard(operation)
            raise StoreBusyError("store is busy: try again")

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        self._enter("enqueue", len(messages))
        return super().enqueue(queue, messages)

    def claim(self, queue: str, **kwargs: Any) -> ClaimResult:
        self._enter("claim", kwargs["limit"])
        return super().claim(queue, **kwargs)

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        self._enter("ack", len(leases))
        return super().ack(queue, leases)


async def lined_up(store: CountingStore, operation: str, calls: list[Any]) -> list[Any]:
    """Start ``calls`` (coroutines) with the first one held in the store
    until the rest are waiting; their outcomes, exceptions included."""
    store.hold.add(operation)
    tasks = [asyncio.ensure_future(calls[0])]
    while not store.held.is_set():
        await asyncio.sleep(0.002)
    tasks += [asyncio.ensure_future(c) for c in calls[1:]]
    await asyncio.sleep(0.02)  # every other caller is waiting now
    store.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_puts_that_meet_go_in_one_transaction_each_with_its_own_message() -> None:
    store = CountingStore()

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        puts = [q.put("first")] + [q.put(n, priority=n, delay=n % 2) for n in range(10)]
        first, *rest = await lined_up(store, "enqueue", puts)
        assert store.calls["enqueue"] == [1, 10]  # the held one, then the rest together
        assert first.value == "first"
        assert [(m.value, m.priority) for m in rest] == [(n, n) for n in range(10)]
        assert len({m.id for m in [first, *rest]}) == 11
        stats = await q.stats()
        assert (stats.ready, stats.delayed) == (6, 5)
        await q.close()

    asyncio.run(main())


def test_a_value_that_does_not_serialize_fails_alone() -> None:
    store = CountingStore()

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        outcomes = await lined_up(store, "enqueue", [q.put(0), q.put(1), q.put({1, 2}), q.put(3)])
        assert isinstance(outcomes[2], SerializationError)
        assert [m.value for i, m in enumerate(outcomes) if i != 2] == [0, 1, 3]
        await q.close()

    asyncio.run(main())


def test_a_store_error_reaches_every_put_of_its_batch_and_stores_none() -> None:
    store = CountingStore()

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        store.fail.add("enqueue")  # the first call (held) fails
        outcomes = await lined_up(store, "enqueue", [q.put(n) for n in range(4)])
        assert isinstance(outcomes[0], StoreBusyError)
        assert [m.value for m in outcomes[1:]] == [1, 2, 3]
        assert [m.value for m in await q.messages()] == [1, 2, 3]
        await q.close()

    asyncio.run(main())


def test_acks_that_meet_go_together_and_a_lost_lease_fails_alone() -> None:
    store = CountingStore()

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(range(5))
        messages = await q.get_many(5, block=False)
        await q.release(messages[3])  # its lease is gone
        acks = [q.ack(m) for m in messages] + [q.ack(messages[0])]  # and one twice
        outcomes = await lined_up(store, "ack", acks)
        assert store.calls["ack"] == [1, 5]
        assert [type(o).__name__ for o in outcomes] == [
            "NoneType", "NoneType", "NoneType", "LeaseExpired", "NoneType", "LeaseExpired"
        ]  # fmt: skip
        assert isinstance(outcomes[3], LeaseExpired)
        [left] = await q.messages()
        assert left.value == 3
        await q.close()

    asyncio.run(main())


def test_gets_that_meet_share_one_claim_in_delivery_order() -> None:
    store = CountingStore()

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(["low", "mid"], priority=0)
        await q.put("high", priority=9)
        gets = [q.get(block=False)] + [q.get(block=False) for _ in range(4)]
        outcomes = await lined_up(store, "claim", gets)
        assert store.calls["claim"] == [1, 4]
        assert outcomes[0].value == "high"
        assert [o.value for o in outcomes[1:3]] == ["low", "mid"]
        assert all(isinstance(o, stdlib_queue.Empty) for o in outcomes[3:])
        await q.close()

    asyncio.run(main())


def test_a_get_cancelled_while_it_waits_for_its_batch_gives_back_what_it_got() -> None:
    store = CountingStore()

    async def main() -> None:
        q = AsyncPersistentQueue("jobs", store=store)
        await q.put_many(["a", "b"])
        store.hold.add("claim")
        first = asyncio.ensure_future(q.get(block=False))
        while not store.held.is_set():
            await asyncio.sleep(0.002)
        second = asyncio.ensure_future(q.get(block=False))
        await asyncio.sleep(0.02)
        second.cancel()  # it waits for the next batch, which will lease "b" for it
        await asyncio.sleep(0.02)
        store.gate.set()
        assert (await first).value == "a"
        with pytest.raises(asyncio.CancelledError):
            await second
        [b] = await q.messages(state="ready")
        assert (b.value, b.attempts) == ("b", 1)
        await q.close()

    asyncio.run(main())
