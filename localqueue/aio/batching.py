"""Group commit: writes that arrive while one is in the store go together.

A web service puts from many request handlers at once. Each put on its
own would be one transaction (and one thread hop) per message; instead, a
:class:`Batcher` sends the first write at once and collects every write
that arrives while it is in the store into the next call, one
transaction for the lot. Alone, a write pays nothing extra (a batch of
one, sent at once); under load, the batches grow by themselves, so
throughput rises with concurrency instead of falling to lock contention.

Each item gets its own result or its own error: the batch function
returns one outcome per item. A write that has begun is never abandoned
(its caller's cancellation waits for it, as every async write does).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from localqueue.aio.calls import log, to_the_end

Item = TypeVar("Item")
Result = TypeVar("Result")

# The most items one store call takes: a bound on one transaction's size
# (and on how long one batch holds SQLite's write lock).
MAX_BATCH = 500


class Batcher(Generic[Item, Result]):
    """Runs ``write(items)`` (in a thread, through ``submit``) one batch at a time."""

    def __init__(
        self,
        write: Callable[[list[Item]], list[Result | BaseException]],
        submit: Callable[[Callable[[], Any]], asyncio.Future[Any]],
        what: str,
    ) -> None:
        self._write = write
        self._submit = submit
        self._what = what
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sending = False  # a batch is in the store
        # The task sending the rest; held here, since the loop keeps only a
        # weak reference to a task.
        self._draining: asyncio.Task[None] | None = None

    async def add(self, item: Item, abandoned: Callable[[Result], object] | None = None) -> Result:
        """Write ``item`` (now, or with the next batch); its result.

        If the caller is cancelled meanwhile, the write still completes;
        ``abandoned(result)`` then runs in a thread (a claim gives back what
        it leased for nobody) before the cancellation goes on.
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        cancellation: BaseException | None = None
        if not self._sending:
            # Nobody is sending: this coroutine sends its own item at once
            # (no task to start, the common case when the service is quiet).
            self._sending = True
            try:
                # One pass of the loop first: the writes of every task woken
                # in this pass (the callers of the last batch, typically)
                # join this one instead of waiting for the next.
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError as exc:
                    cancellation = exc  # the write has begun: it goes on
                cancellation = await self._send_waiting() or cancellation
            finally:
                if self._waiting:  # arrived meanwhile: they go on in a task
                    self._draining = asyncio.ensure_future(self._drain())
                else:
                    self._sending = False
        outcome = await to_the_end(future)
        cancellation = cancellation or outcome.cancellation
        if cancellation is not None:
            if not future.cancelled() and future.exception() is None:
                if abandoned is not None:
                    await to_the_end(self._submit(functools.partial(abandoned, future.result())))
            elif not future.cancelled():
                error = future.exception()
                log.warning("%s failed after its caller was cancelled: %s", self._what, error)
            raise cancellation
        return future.result()

    @property
    def busy(self) -> bool:
        return self._sending or bool(self._waiting)

    async def idle(self) -> None:
        """Return once every item added so far has its answer."""
        while self.busy:
            await asyncio.sleep(0.001)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await self._send_waiting()
        finally:
            self._sending = False
            self._draining = None

    async def _send_waiting(self) -> BaseException | None:
        """Send the waiting items (up to MAX_BATCH) in one call and answer
        each; a failure of the whole call (the store's error) is every
        item's. Returns a cancellation of the sending task, if one came."""
        batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        items = [item for item, _ in batch]
        results: list[Result | BaseException]
        cancellation = None
        try:
            call = self._submit(functools.partial(self._write, items))
            outcome = await to_the_end(call)
            cancellation = outcome.cancellation
            results = call.result()
            if len(results) != len(batch):
                raise RuntimeError(f"{self._what}: {len(results)} results for {len(batch)}")
        except BaseException as exc:  # handed to each waiter
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        return cancellation
