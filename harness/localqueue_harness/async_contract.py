"""The queue contract through the asyncio API.

:class:`AsyncQueueContract` is :class:`~localqueue_harness.QueueContract`
with every queue an :class:`~localqueue.aio.AsyncPersistentQueue`: each
call the tests make goes through the async queue's coroutine (its thread
pool, its shared waiter, its cancellation handling), run on an event loop
in a background thread. Subclass it with the same ``open_store`` fixture
to check that a store keeps the contract when driven from async code:

    class TestMyStoreAsync(AsyncQueueContract):
        @pytest.fixture
        def open_store(self):
            return lambda clock: MyStore(..., clock=clock)
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, ClassVar, TypeVar, cast

import pytest

from localqueue import PersistentQueue
from localqueue.aio import AsyncPersistentQueue
from localqueue_harness.queue_contract import QueueContract

__all__ = ["AsyncQueueContract", "BlockingAsyncQueue"]

T = TypeVar("T")


class BlockingAsyncQueue:
    """PersistentQueue's blocking methods, each one made by awaiting the
    same method of an AsyncPersistentQueue on a background event loop."""

    _loop: ClassVar[asyncio.AbstractEventLoop | None] = None
    _loop_lock: ClassVar[threading.Lock] = threading.Lock()
    _open: ClassVar[list[BlockingAsyncQueue]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.aio = AsyncPersistentQueue(*args, **kwargs)
        BlockingAsyncQueue._open.append(self)

    @classmethod
    def _background_loop(cls) -> asyncio.AbstractEventLoop:
        with cls._loop_lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="localqueue-harness-aio", daemon=True
                ).start()
                cls._loop = loop
            return cls._loop

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._background_loop()).result()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.aio, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute  # name, store, spec, worker_id, build_worker_config, ...

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._run(attribute(*args, **kwargs))

        return blocking

    def __enter__(self) -> BlockingAsyncQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._run(self.aio.close())

    @classmethod
    def close_all(cls) -> None:
        """Close every queue made so far (their thread pools end)."""
        while cls._open:
            cls._open.pop().close()


class AsyncQueueContract(QueueContract):
    """The queue contract, every call made through AsyncPersistentQueue."""

    queue_type: ClassVar[Callable[..., PersistentQueue]] = cast(
        "Callable[..., PersistentQueue]", BlockingAsyncQueue
    )

    @pytest.fixture(autouse=True)
    def _close_async_queues(self) -> Iterator[None]:
        yield
        BlockingAsyncQueue.close_all()
