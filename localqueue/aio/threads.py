"""The few threads that make an async queue's store calls.

``loop.run_in_executor`` with a ThreadPoolExecutor costs about 80 us per
call on a small machine (two futures, a condition variable, a callback
chain), more than a SQLite put itself. This pool hands each call to a
thread through one SimpleQueue and sets the caller's asyncio future
straight from the thread with ``call_soon_threadsafe``: about half that.
Threads start as calls need them, up to the bound, and stay until close.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = None  # put once per thread to end it


class StoreThreads:
    """Up to ``size`` threads running calls for coroutines."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``call()`` in a thread; its result (or error) in a future of the running loop."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the store threads are closed")
            if self._idle == 0 and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}/{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            # Under the lock: a close() cannot put its stop marks ahead of
            # this call, which would then never run.
            self._jobs.put((call, future))
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1  # waiting: the next call needs no new thread
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if job is _STOP:
                return
            call, future = job
            # A read whose caller is gone need not run (a write is shielded,
            # so its future is never cancelled).
            if not future.cancelled():
                try:
                    result = call()
                except BaseException as exc:
                    _deliver(future, None, exc)
                else:
                    _deliver(future, result, None)

    def close(self) -> None:
        """Finish the calls already submitted, then end the threads (blocking)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(_STOP)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    loop = future.get_loop()
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
