"""What the charts draw: every queue's counts, sampled by the server while it
runs, for the last hour.

A sample is one ``all_stats`` call (the store's kept counts where it keeps
them, so a sample costs the same at any backlog) and, where the store keeps
them (``SupportsFinishedCounts``), one read of its running totals of acked
and dead-lettered messages: two samples' totals give the throughput between
them. Nothing is written to the store: the history starts when the server
starts and ends with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from localqueue.store import (
    FinishedCounts,
    QueueStats,
    Store,
    StoreError,
    all_stats,
    finished_by_queue,
)

log = logging.getLogger(__name__)

WINDOW = 3600.0  # seconds of history kept and drawn


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the epoch, this host's clock
    ready: int
    delayed: int
    inflight: int
    dead: int
    # Running totals (None where the store keeps none).
    acked: int | None = None
    dead_lettered: int | None = None

    @property
    def waiting(self) -> int:
        """Messages not yet done: ready, delayed and inflight (dead apart)."""
        return self.ready + self.delayed + self.inflight


class History:
    """Samples per queue, oldest first, at most ``window`` seconds old."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._samples: dict[str, deque[Sample]] = {}

    def add(
        self,
        at: float,
        stats: Sequence[QueueStats],
        finished: Mapping[str, FinishedCounts] | None = None,
    ) -> None:
        """One sample of every queue in ``stats``; with ``finished`` (the
        store's totals by queue), also of a charted queue that has since
        emptied, so that its throughput chart runs on to zero - until a whole
        window passed with the queue empty and nothing finished, when it is
        left to age out like any queue (the totals never go away, so
        sampling it for ever would keep every queue that ever finished a
        message in memory)."""
        with self._lock:
            by_queue = {s.queue: s for s in stats}
            if finished is not None:
                for name in finished.keys() & self._samples.keys() - by_queue.keys():
                    if not self._idle_for_a_window(self._samples[name], finished[name]):
                        by_queue[name] = QueueStats(name)
            for name, s in by_queue.items():
                totals = None if finished is None else finished.get(name, FinishedCounts(name))
                found = self._samples.setdefault(name, deque())
                found.append(
                    Sample(
                        at, s.ready, s.delayed, s.inflight, s.dead,
                        None if totals is None else totals.acked,
                        None if totals is None else totals.dead_lettered,
                    )
                )  # fmt: skip
            for found in self._samples.values():
                while found and found[0].at < at - self.window:
                    found.popleft()
            # A queue that emptied and left no sample in the window is gone.
            for name in [name for name, found in self._samples.items() if not found]:
                del self._samples[name]

    @staticmethod
    def _idle_for_a_window(found: deque[Sample], totals: FinishedCounts) -> bool:
        """The oldest sample kept was already empty with these totals."""
        oldest = found[0] if found else None
        return (
            oldest is not None
            and oldest.waiting == 0
            and oldest.dead == 0
            and (oldest.acked, oldest.dead_lettered) == (totals.acked, totals.dead_lettered)
        )

    def series(self, queue: str) -> list[Sample]:
        with self._lock:
            return list(self._samples.get(queue, ()))


class Sampler:
    """A daemon thread that adds a sample of every queue each ``every`` s."""

    def __init__(
        self,
        store: Store,
        history: History,
        every: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.history = history
        self.every = every
        self.clock = clock
        self._stop = threading.Event()
        self._warned = False  # about finished counts the store cannot give
        self._thread = threading.Thread(
            target=self._run, name="localqueue-web-sampler", daemon=True
        )

    def sample_once(self) -> None:
        stats = all_stats(self.store)
        try:
            finished = finished_by_queue(self.store)
        except Exception as exc:  # an older SQLite file, a store's bug: the depth goes on
            if not self._warned:
                reason = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
                log.warning("localqueue-web: no throughput: %s", reason)
                self._warned = True
            finished = None
        self.history.add(self.clock(), stats, finished)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception as exc:  # a store that is away now may be back next time
                log.warning("localqueue-web: sampling the queues failed: %s", exc)
            self._stop.wait(self.every)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
