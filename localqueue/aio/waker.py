"""One thread that waits on the store for every coroutine waiting on a queue.

A blocking ``get`` on the synchronous API sleeps in ``store.wait``, which
holds a thread (and, on a server, a connection) for as long as it waits. A
hundred coroutines waiting for work must not cost a hundred threads, so an
async queue has one :class:`Waker`: while anyone waits, its thread sits in
``store.wait`` and, each time that returns (a put by any process, a delayed
or leased message coming due, its one-second slice ending), wakes every
waiter. Each waiter then tries its claim again; spurious wake-ups are
allowed by the store protocol and cost one empty claim.

A waiter subscribes *before* its claim, so a put that lands between an
empty claim and the wait still wakes it: ``store.wait`` itself returns at
once while something is claimable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from localqueue.store import Store

log = logging.getLogger("localqueue.aio")

# How long one store.wait may last: the thread notices that nobody waits any
# more, or that the queue is closing, within this.
WAIT_SLICE = 1.0
# A thread with no waiters for this long ends; the next waiter starts another.
IDLE_EXIT = 5.0
# After a store error in wait (a lost connection): pause before the next, so
# a broken store is not hammered. The waiters' own claims report the error.
ERROR_PAUSE = 0.1


class Waker:
    """Wakes the coroutines waiting on ``queue`` of ``store`` when it may
    have something for them."""

    def __init__(self, store: Store, queue: str) -> None:
        self._store = store
        self._queue = queue
        self._lock = threading.Condition()
        self._waiters: list[asyncio.Future[None]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def subscribe(self) -> asyncio.Future[None]:
        """A future (of the running loop) done at the next wake-up. Cancel it
        to unsubscribe (a timed-out or satisfied waiter does)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the queue is closed")
            self._waiters.append(future)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"localqueue-aio-waker/{self._queue}", daemon=True
                )
                self._thread.start()
            self._lock.notify_all()
        return future

    @property
    def waiting(self) -> int:
        """How many coroutines wait now (for tests and the benchmark)."""
        with self._lock:
            return sum(1 for w in self._waiters if not w.done())

    def close(self, timeout: float = WAIT_SLICE + 1.0) -> None:
        """Stop the thread (blocking: up to one wait slice). Waiters are woken."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._lock.notify_all()
        self._wake_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        try:
            while self._someone_waits():
                try:
                    self._store.wait(self._queue, WAIT_SLICE)
                except Exception as exc:  # a lost connection, a closed store
                    log.debug("store.wait on %r failed: %s", self._queue, exc)
                    self._wake_all()
                    time.sleep(ERROR_PAUSE)
                    continue
                self._wake_all()
        finally:
            with self._lock:
                self._thread = None
                # A waiter that came as the thread was deciding to end.
                if self._waiters and not self._closed:
                    self._thread = threading.Thread(
                        target=self._run, name=f"localqueue-aio-waker/{self._queue}", daemon=True
                    )
                    self._thread.start()

    def _someone_waits(self) -> bool:
        """Block until a waiter is subscribed (True) or the thread should end."""
        idle_until = time.monotonic() + IDLE_EXIT
        with self._lock:
            while not self._closed:
                self._waiters = [w for w in self._waiters if not w.done()]
                if self._waiters:
                    return True
                remaining = idle_until - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return False

    def _wake_all(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                loop = waiter.get_loop()
                if not loop.is_closed():
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        loop.call_soon_threadsafe(_set, waiter)


def _set(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
