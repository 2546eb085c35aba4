"""Blocking waits for the PostgreSQL store: LISTEN/NOTIFY with polling beside it.

Every write that can make work available (put, release, requeue) sends
``pg_notify(channel, queue)`` in its own statement, so the notification goes
out exactly when the write commits. One listener thread per store (started
by the first wait) holds a dedicated connection that LISTENs and bumps a
per-queue counter; waiting threads sleep on a condition until their queue's
counter moves, the earliest delayed or leased message comes due, or
``poll_interval`` passes - the poll is what keeps waits working where
notifications never arrive (a transaction-pooling proxy) or were missed
while the listener reconnected. Writes made by this process bump the counter
directly, without the round trip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

import psycopg

from localqueue_postgres.connections import Conn, connect

log = logging.getLogger("localqueue.postgres")

RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


class Changes:
    """Per-queue change counters and the condition waiters sleep on."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self._counts: dict[str, int] = {}
        self._epoch = 0  # moves when every queue must re-check (a reconnect)

    def token(self, queue: str) -> tuple[int, int]:
        with self.condition:
            return self._epoch, self._counts.get(queue, 0)

    def bump(self, queue: str | None) -> None:
        with self.condition:
            if queue is None:
                self._epoch += 1
            else:
                self._counts[queue] = self._counts.get(queue, 0) + 1
            self.condition.notify_all()

    def wait(self, queue: str, token: tuple[int, int], seconds: float) -> None:
        """Sleep up to ``seconds`` unless ``queue`` changed since ``token``."""
        deadline = time.monotonic() + seconds
        with self.condition:
            while (self._epoch, self._counts.get(queue, 0)) == token:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.condition.wait(remaining)


class Listener:
    """A daemon thread that LISTENs on the store's channel and bumps Changes."""

    def __init__(
        self, conninfo: str, where: str, channel: str, changes: Changes, prepare: bool = True
    ) -> None:
        self._prepare = prepare
        self._conninfo = conninfo
        self._where = where
        self._channel = channel  # a plain identifier (checked by the URL parser)
        self._changes = changes
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def ensure_running(self, wait_ready: float = 2.0) -> None:
        """Start the thread on first use (and again in a forked child)."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if alive and os.getpid() == self._pid:
                return
            if self._stop.is_set():
                return
            self._pid = os.getpid()
            self._ready.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"localqueue-listen-{self._channel}", daemon=True
            )
            self._thread.start()
        # Until LISTEN is in place a notification could be missed; the caller
        # re-checks after this anyway, and polls if the listener is down.
        self._ready.wait(wait_ready)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            conn: Conn | None = None
            try:
                conn = connect(self._conninfo, self._where, self._prepare)
                conn.execute(f"LISTEN {self._channel}")
                self._ready.set()
                if failures:
                    log.info("listening for notifications on %s again", self._where)
                    self._changes.bump(None)  # something may have been missed meanwhile
                failures = 0
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        self._changes.bump(note.payload)
            except Exception as exc:  # any failure: reconnect; waiters poll meanwhile
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                if failures == 1:
                    log.warning(
                        "lost the notification connection to %s (%s); waits poll until it is back",
                        self._where,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    )
                self._changes.bump(None)
                self._stop.wait(delay)
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and os.getpid() == self._pid:
            thread.join(timeout=2.0)
