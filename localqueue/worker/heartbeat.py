"""LeaseKeeper: one thread per worker that keeps its running jobs leased.

Every ``interval`` seconds it extends the lease of each job still running
and records the worker's heartbeat in the store, so a job longer than its
lease is never handed to another worker while this one is alive, and an
operator can see which workers are alive. If an extension finds the lease
already lost, the job is marked lost and the worker will not ack it.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from localqueue.errors import LeaseExpired
from localqueue.message import Message
from localqueue.queue import PersistentQueue

log = logging.getLogger("localqueue.worker")


class TrackedLease:
    """A running job's lease; ``current`` follows extensions."""

    def __init__(self, message: Message) -> None:
        self.current = message
        self.lost = False


class LeaseKeeper:
    def __init__(self, queue: PersistentQueue, interval: float, worker_id: str) -> None:
        self._queue = queue
        self._interval = interval
        self._worker_id = worker_id
        self._tracked: set[TrackedLease] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        self._beat()
        self._thread = threading.Thread(
            target=self._run, name=f"{self._worker_id}/heartbeat", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._queue.store.record_heartbeat(self._queue.name, self._worker_id, stopped=True)
        except Exception:
            log.warning("could not record that worker %s stopped", self._worker_id)

    def track(self, message: Message) -> TrackedLease:
        tracked = TrackedLease(message)
        with self._lock:
            self._tracked.add(tracked)
        return tracked

    def forget(self, tracked: TrackedLease) -> None:
        with self._lock:
            self._tracked.discard(tracked)

    def _beat(self) -> None:
        try:
            self._queue.store.record_heartbeat(self._queue.name, self._worker_id)
        except Exception as exc:  # a third-party store may raise its driver's errors
            log.warning("could not record heartbeat of worker %s: %s", self._worker_id, exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()
            with self._lock:
                running = list(self._tracked)
            for tracked in running:
                self._extend(tracked)

    def _extend(self, tracked: TrackedLease) -> None:
        # Under the lock: the worker forgets a lease (taking the lock) before
        # it acks or gives the message back, so an extension never meets a
        # lease the worker itself just ended and calls it lost.
        with self._lock:
            if tracked.lost or tracked not in self._tracked:
                return
            self._extend_tracked(tracked)

    def _extend_tracked(self, tracked: TrackedLease) -> None:
        try:
            extended = self._queue.extend_lease(tracked.current, self._queue.lease_timeout)
        except LeaseExpired:
            tracked.lost = True
            log.warning(
                "lease of message %s in %r was lost before it could be extended",
                tracked.current.id,
                tracked.current.queue,
            )
            return
        except Exception as exc:  # e.g. busy, or a network blip: try again next beat
            log.warning("could not extend lease of message %s: %s", tracked.current.id, exc)
            return
        tracked.current = extended
