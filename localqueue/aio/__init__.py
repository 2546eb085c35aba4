"""localqueue for asyncio: the same queue and workers from async code.

    from localqueue.aio import AsyncPersistentQueue, async_worker

    async with AsyncPersistentQueue("emails") as q:
        await q.put({"to": "a@example.com"})
        message = await q.get(timeout=5)
        await q.ack(message)

Store calls run in a few threads (every store works, including third-party
ones that speak only the blocking protocol); waiting holds no thread per
waiter. docs/async.md says how cancellation behaves.
"""

from __future__ import annotations

from localqueue.aio.queue import DEFAULT_THREADS, AsyncPersistentQueue
from localqueue.aio.worker import AsyncWorker, async_worker

__all__ = ["DEFAULT_THREADS", "AsyncPersistentQueue", "AsyncWorker", "async_worker"]
