"""AsyncPersistentQueue: PersistentQueue for asyncio code.

Every method is a coroutine that runs the synchronous queue's method in a
small pool of threads, so it works with every store (third-party ones
speak only the blocking protocol) and never blocks the event loop. Waiting
for a message holds no thread per waiter: see :mod:`localqueue.aio.waker`.

Cancellation (docs/async.md):

* a write (``put``, ``ack``, ``release``, ...) that has begun always
  completes: cancelling its ``await`` waits for the store's answer, then
  raises ``CancelledError``. A write whose ``await`` raised
  ``CancelledError`` is therefore done (unless the store failed, which is
  logged);
* a ``get`` cancelled while its claim is in the store releases whatever
  the claim leased before ``CancelledError`` is raised, so a cancelled
  ``get`` never strands a lease (the delivery counts as an attempt, as a
  worker that stopped would).
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue as stdlib_queue
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from localqueue.aio.batching import Batcher
from localqueue.aio.calls import finished, to_the_end
from localqueue.aio.threads import StoreThreads
from localqueue.aio.waker import Waker
from localqueue.errors import LocalQueueError, stale_lease_error
from localqueue.message import Message
from localqueue.observability import queue_events
from localqueue.observability.observers import listening
from localqueue.queue import UNSET, PersistentQueue, Unset
from localqueue.serializers import Serializer
from localqueue.spec import PersistentWorkerConfig, QueueSpec
from localqueue.store import (
    ErrorInfo,
    MessageFilter,
    NewMessage,
    QueueStats,
    State,
    Store,
    check_dedupe_key,
    check_positive_int,
    check_priority,
    check_seconds,
)

T = TypeVar("T")

# Threads for store calls, per queue. SQLite has one writer, so more threads
# add little; enough that a slow read (stats on a big queue) does not hold
# up puts and claims.
DEFAULT_THREADS = 4


class _Put(NamedTuple):
    """One put waiting for its batch: the value and what goes to the store."""

    value: Any
    new: NewMessage


class _Claim(NamedTuple):
    """One get waiting for its batch."""

    limit: int
    leased_by: str | None


class AsyncPersistentQueue:
    """A durable, at-least-once queue for asyncio: the same constructor
    arguments and methods as :class:`~localqueue.PersistentQueue`, awaitable.

    ``threads`` bounds the threads that run store calls. The constructor
    opens the store as PersistentQueue does (quick for SQLite; one connect
    for a server); :meth:`open` does that in a thread instead.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        spec: QueueSpec | None = None,
        store: str | os.PathLike[str] | Store | None = None,
        lease_timeout: float | None = None,
        max_attempts: int | Unset | None = UNSET,
        serializer: Serializer | None = None,
        worker_id: str | None = None,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        threads = check_positive_int("threads", threads)
        sync = PersistentQueue(
            name,
            spec=spec,
            store=store,
            lease_timeout=lease_timeout,
            max_attempts=max_attempts,
            serializer=serializer,
            worker_id=worker_id,
        )
        self._setup(
            sync,
            StoreThreads(threads, f"localqueue-aio/{sync.name}"),
            Waker(sync.store, sync.name),
            owner=True,
        )

    def _setup(
        self, sync: PersistentQueue, pool: StoreThreads, waker: Waker, *, owner: bool
    ) -> None:
        #: The synchronous queue this one runs on (same store, same settings).
        self.sync = sync
        self._pool = pool
        self._waker = waker
        self._owner = owner  # owns the pool and the waker (a view shares them)
        self._closed = False
        # Batches go straight to the threads: a write that began before
        # close() still completes (close waits for them).
        submit = pool.submit
        self._puts: Batcher[_Put, Message] = Batcher(self._put_batch, submit, "put")
        self._acks: Batcher[Message, None] = Batcher(self._ack_batch, submit, "ack")
        self._claims: Batcher[_Claim, list[Message]] = Batcher(self._claim_batch, submit, "claim")

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> AsyncPersistentQueue:
        """Construct in a thread: opening a store on a server does network I/O."""
        return await asyncio.to_thread(functools.partial(cls, *args, **kwargs))

    def view(self, sync: PersistentQueue) -> AsyncPersistentQueue:
        """An async twin of ``sync`` (a queue on the same store and name, with
        its own lease and attempt settings) sharing this queue's threads."""
        if sync.store is not self.sync.store or sync.name != self.sync.name:
            raise ValueError("a view must be of the same queue in the same store")
        twin = object.__new__(AsyncPersistentQueue)
        twin._setup(sync, self._pool, self._waker, owner=False)
        return twin

    # -- what PersistentQueue shows ---------------------------------------------

    @property
    def name(self) -> str:
        return self.sync.name

    @property
    def spec(self) -> QueueSpec:
        return self.sync.spec

    @property
    def store(self) -> Store:
        return self.sync.store

    @property
    def lease_timeout(self) -> float:
        return self.sync.lease_timeout

    @property
    def max_attempts(self) -> int | None:
        return self.sync.max_attempts

    @property
    def serializer(self) -> Serializer:
        return self.sync.serializer

    @property
    def worker_id(self) -> str:
        return self.sync.worker_id

    def build_worker_config(self, **overrides: Any) -> PersistentWorkerConfig:
        """A worker config from this queue's spec, with per-worker overrides."""
        return self.sync.build_worker_config(**overrides)

    def __repr__(self) -> str:
        return f"AsyncPersistentQueue({self.name!r}, store={self.store.url!r})"

    # -- life ------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncPersistentQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the threads and close the store if this queue opened it.
        Safe to call twice; calls already begun (a put waiting for its
        batch included) finish first, later ones raise LocalQueueError."""
        if self._closed:
            return
        self._closed = True  # new calls are refused from here on
        for batcher in (self._puts, self._acks, self._claims):
            await batcher.idle()
        if self._owner:
            pool, waker, sync = self._pool, self._waker, self.sync

            def shut() -> None:
                waker.close()
                pool.close()
                sync.close()

            # Not in the pool being shut down: a thread of its own.
            await to_the_end(asyncio.ensure_future(asyncio.to_thread(shut)))

    def _check_open(self) -> None:
        if self._closed:
            raise LocalQueueError(f"queue {self.name!r} is closed; open a new one")

    def _call(self, call: Callable[[], T]) -> asyncio.Future[T]:
        self._check_open()
        return self._pool.submit(call)

    async def _write(self, what: str, call: Callable[[], T]) -> T:
        return await finished(self._call(call), what)

    async def _read(self, call: Callable[[], T]) -> T:
        return await self._call(call)

    # -- producing -------------------------------------------------------------------

    async def put(
        self,
        value: Any,
        *,
        delay: float = 0.0,
        priority: int = 0,
        dedupe_key: str | None = None,
    ) -> Message:
        """Store ``value``; once this returns (or raises CancelledError after
        it began), the message survives a crash.

        Puts that arrive while another is in the store are stored together,
        in one transaction (each still gets its own message or error).
        """
        if dedupe_key is not None:
            check_dedupe_key(dedupe_key)
        self._check_open()
        # Serialized now, as the blocking put does: the value is stored as
        # it was when put() was called, and a bad value fails alone.
        new = NewMessage(
            self.sync._dump(value),
            check_seconds("delay", delay),
            check_priority(priority),
            dedupe_key,
        )
        return await self._puts.add(_Put(value, new))

    def _put_batch(self, puts: list[_Put]) -> list[Message | BaseException]:
        """One transaction for ``puts``."""
        sync = self.sync
        records = sync._enqueue([put.new for put in puts]).records
        return [
            sync._put_message(record, put.new, put.value)
            for put, record in zip(puts, records, strict=True)
        ]

    async def put_many(
        self,
        values: Iterable[Any],
        *,
        delay: float = 0.0,
        priority: int = 0,
        dedupe_keys: Sequence[str | None] | None = None,
    ) -> list[Message]:
        """Store many values in one transaction: all are added or none."""
        values = list(values)  # a generator is read here, not in a thread
        sync = self.sync
        return await self._write(
            "put_many",
            lambda: sync.put_many(values, delay=delay, priority=priority, dedupe_keys=dedupe_keys),
        )

    async def put_many_results(
        self,
        values: Iterable[Any],
        *,
        delay: float = 0.0,
        priority: int = 0,
        dedupe_keys: Sequence[str | None] | None = None,
    ) -> list[tuple[Message, bool]]:
        """:meth:`put_many`, also telling for each value whether it was added."""
        values = list(values)
        sync = self.sync
        return await self._write(
            "put_many",
            lambda: sync.put_many_results(
                values, delay=delay, priority=priority, dedupe_keys=dedupe_keys
            ),
        )

    # -- consuming -------------------------------------------------------------------

    async def get(
        self, block: bool = True, timeout: float | None = None, *, leased_by: str | None = None
    ) -> Message:
        """Lease the next message; ``queue.Empty`` if none comes in time."""
        return (await self.get_many(1, block=block, timeout=timeout, leased_by=leased_by))[0]

    async def get_many(
        self,
        limit: int,
        *,
        block: bool = True,
        timeout: float | None = None,
        leased_by: str | None = None,
    ) -> list[Message]:
        """Lease up to ``limit`` messages (at least one, or ``queue.Empty``)."""
        limit = check_positive_int("limit", limit)
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check_open()  # also after a wake-up by close()
            # Subscribed before the claim: a put landing after an empty claim
            # still wakes this waiter.
            wake = self._waker.subscribe() if block else None
            try:
                messages = await self._claims.add(_Claim(limit, leased_by), self._give_back)
            except BaseException:
                if wake is not None:
                    wake.cancel()
                raise
            if messages:
                if wake is not None:
                    wake.cancel()
                return messages
            if wake is None:
                raise stdlib_queue.Empty
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                wake.cancel()
                raise stdlib_queue.Empty
            # asyncio.wait, not wait_for: before Python 3.12, wait_for drops
            # a cancellation that arrives in the same pass as the wake-up,
            # and this get would then claim a message for a cancelled caller.
            try:
                await asyncio.wait({wake}, timeout=remaining)
            finally:
                woken = wake.done()
                wake.cancel()
            if not woken and remaining is not None:
                raise stdlib_queue.Empty

    async def ack_and_get(
        self,
        message: Message,
        *,
        block: bool = True,
        timeout: float | None = None,
        leased_by: str | None = None,
    ) -> Message:
        """Ack ``message`` and lease the next one in one store transaction
        (where the store offers it); as PersistentQueue.ack_and_get."""
        sync = self.sync
        messages = await self._claim(
            lambda: [sync.ack_and_get(message, block=False, leased_by=leased_by)]
        )
        if messages:
            return messages[0]
        if not block:
            raise stdlib_queue.Empty
        return await self.get(timeout=timeout, leased_by=leased_by)

    async def ack_many_and_get_many(
        self, messages: Sequence[Message], limit: int, *, leased_by: str | None = None
    ) -> tuple[list[Message], list[Message]]:
        """Ack ``messages`` and lease up to ``limit`` more in one store
        transaction; as PersistentQueue.ack_many_and_get_many (it never
        waits). Cancelled while it runs, what it leased is released at once."""
        sync = self.sync
        lost: list[Message] = []

        def settle_and_claim() -> list[Message]:
            found, leased = sync.ack_many_and_get_many(messages, limit, leased_by=leased_by)
            lost.extend(found)
            return leased

        leased = await self._claim(settle_and_claim)
        return lost, leased

    def _claim_batch(self, claims: list[_Claim]) -> list[list[Message] | BaseException]:
        """One claim for the gets that met (per ``leased_by``), its messages
        shared out in delivery order, each get taking up to its limit."""
        sync = self.sync
        outcomes: list[list[Message] | BaseException] = [[] for _ in claims]
        groups: dict[str | None, list[int]] = {}
        for index, claim in enumerate(claims):
            groups.setdefault(claim.leased_by, []).append(index)
        for leased_by, indexes in groups.items():
            total = sum(claims[i].limit for i in indexes)
            try:
                messages = sync.get_many(total, block=False, leased_by=leased_by)
            except stdlib_queue.Empty:
                continue
            except Exception as exc:
                for index in indexes:
                    outcomes[index] = exc
                continue
            start = 0
            for index in indexes:
                outcomes[index] = messages[start : start + claims[index].limit]
                start += claims[index].limit
        return outcomes

    async def _claim(self, claim: Callable[[], list[Message]]) -> list[Message]:
        """Run a claim (empty list: nothing claimable); if the caller is
        cancelled meanwhile, release what it leased, then raise."""

        def claimed() -> list[Message]:
            try:
                return claim()
            except stdlib_queue.Empty:
                return []

        future = self._call(claimed)
        outcome = await to_the_end(future)
        if outcome.cancellation is None:
            return future.result()
        if not future.cancelled() and future.exception() is None:
            # Straight to the threads: a close() meanwhile must not strand the lease.
            await to_the_end(self._pool.submit(functools.partial(self._give_back, future.result())))
        raise outcome.cancellation

    def _give_back(self, messages: list[Message]) -> None:
        """Release messages leased for a caller that is gone: untouched, no
        error recorded, no attempt-budget check (the handler never ran)."""
        sync = self.sync
        observers = listening()
        for message in messages:
            try:
                if sync.store.release(sync.name, message.lease, delay=0.0) and observers:
                    queue_events.released(observers, sync.worker_id, message, 0.0, None)
            except LocalQueueError:
                pass  # its lease expires instead: delivered again (at least once)

    async def ack(self, message: Message) -> None:
        """Done: remove the message. LeaseExpired if the lease was lost.

        Acks that arrive while another is in the store go together, in one
        transaction (each still learns whether its own lease was lost).
        """
        self.sync._check_own(message)
        self._check_open()
        await self._acks.add(message)

    def _ack_batch(self, messages: list[Message]) -> list[BaseException | None]:
        lost = self.sync.ack_many(messages)
        # ack_many names the lost ones in order, a repeated lease's failure
        # given to its later copy: match them to positions the same way.
        failed: list[BaseException | None] = [None] * len(messages)
        remaining = list(lost)
        for index in range(len(messages) - 1, -1, -1):
            if remaining and remaining[-1] is messages[index]:
                remaining.pop()
                failed[index] = stale_lease_error([messages[index].id])
        return failed

    async def ack_many(self, messages: Sequence[Message]) -> list[Message]:
        """Ack several in one transaction; returns those whose lease was lost."""
        messages = list(messages)
        sync = self.sync
        return await self._write("ack_many", lambda: sync.ack_many(messages))

    async def release(
        self,
        message: Message,
        *,
        delay: float = 0.0,
        error: BaseException | ErrorInfo | str | None = None,
    ) -> State:
        """Give the message back for another attempt after ``delay`` seconds
        (a dead letter once its attempts are used up); the state it went to."""
        sync = self.sync
        return await self._write("release", lambda: sync.release(message, delay=delay, error=error))

    async def dead_letter(
        self, message: Message, *, error: BaseException | ErrorInfo | str | None = None
    ) -> None:
        """Give up on the message: keep it as a dead letter with its latest error."""
        sync = self.sync
        await self._write("dead_letter", lambda: sync.dead_letter(message, error=error))

    async def extend_lease(self, message: Message, seconds: float) -> Message:
        """Keep working: the lease now ends ``seconds`` from now."""
        sync = self.sync
        return await self._write("extend_lease", lambda: sync.extend_lease(message, seconds))

    # -- looking and recovering ---------------------------------------------------------

    async def inspect(self, message_id: int) -> Message:
        """One message in any state; MessageNotFound once acked or purged."""
        sync = self.sync
        return await self._read(lambda: sync.inspect(message_id))

    async def stats(self) -> QueueStats:
        return await self._read(self.sync.stats)

    async def qsize(self) -> int:
        """Messages waiting to be delivered: ready plus delayed."""
        return await self._read(self.sync.qsize)

    async def dead_letters(self, limit: int | None = None) -> list[Message]:
        """Dead letters, oldest id first."""
        sync = self.sync
        return await self._read(lambda: sync.dead_letters(limit))

    async def messages(
        self, state: State | str | None = None, *, after_id: int | None = None, limit: int = 100
    ) -> list[Message]:
        """A page of messages in id order; continue with ``after_id`` = last id."""
        sync = self.sync
        return await self._read(lambda: sync.messages(state, after_id=after_id, limit=limit))

    async def requeue_dead(
        self,
        message_or_id: Message | int | None = None,
        *,
        all: bool = False,
        delay: float = 0.0,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> list[int]:
        """Move dead letters back to ready with a fresh attempt budget; their ids."""
        sync = self.sync
        return await self._write(
            "requeue_dead",
            lambda: sync.requeue_dead(
                message_or_id, all=all, delay=delay, filter=filter, dry_run=dry_run
            ),
        )

    async def purge(self, state: State | str | None = None, *, dry_run: bool = False) -> int:
        """Delete every message (or every one in ``state``); the count."""
        sync = self.sync
        return await self._write("purge", lambda: sync.purge(state, dry_run=dry_run))

    # -- async for message in queue ----------------------------------------------------

    def __aiter__(self) -> AsyncPersistentQueue:
        return self

    async def __anext__(self) -> Message:
        """The next message, leased (waits for one; ends only by cancellation)."""
        return await self.get()
