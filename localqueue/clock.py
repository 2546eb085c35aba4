"""Clocks that decide leases and delays.

Every store reads time from exactly one clock so that all processes agree on
when a lease ends. The default is the machine's wall clock (shared by every
process on the host); networked stores use their server's clock instead.
Tests inject :class:`ManualClock` so that no test ever sleeps to let a lease
expire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from localqueue.errors import StoreError

__all__ = [
    "Clock",
    "ManualClock",
    "ServerClock",
    "SystemClock",
]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now()`` returning seconds since the epoch as a float."""

    def now(self) -> float: ...


class SystemClock:
    """The host's wall clock (``time.time``), shared by all local processes."""

    def now(self) -> float:
        return time.time()


class ServerClock:
    """A server's clock, read as this host's clock plus a measured offset.

    For networked stores whose lease decisions run on the server (every
    statement or script reads the server's time): callers that show ages or
    stamp errors still need a "now" that agrees with the server's, without a
    round trip each time. ``read_server_time()`` returns the server's time
    in seconds since the epoch; the offset is measured at first use and
    again every ``REFRESH`` seconds, so a drifting host clock does not skew
    it. A failed re-measure (a StoreError) keeps the last offset; a failure
    of the first one is raised.
    """

    REFRESH = 60.0

    def __init__(self, read_server_time: Callable[[], float]) -> None:
        self._read = read_server_time
        self._offset = 0.0
        self._measured_at: float | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        measured = self._measured_at
        if measured is None or time.monotonic() - measured > self.REFRESH:
            self._measure()
        return time.time() + self._offset

    def _measure(self) -> None:
        with self._lock:
            before = time.time()
            try:
                server = self._read()
            except StoreError:
                if self._measured_at is None:
                    raise
                self._measured_at = time.monotonic()  # keep the last offset for now
                return
            after = time.time()
            self._offset = server - (before + after) / 2
            self._measured_at = time.monotonic()


class ManualClock:
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to ``when``; time may not go backwards."""
        with self._lock:
            if when < self._now:
                raise ValueError(f"time may not go backwards: {when!r} < {self._now!r}")
            self._now = float(when)
