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
from typing import Protocol, runtime_checkable

__all__ = [
    "Clock",
    "ManualClock",
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
