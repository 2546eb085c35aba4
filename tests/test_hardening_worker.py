"""Issue 15, item 3: a worker rides out a busy store instead of stopping.

Another process can hold SQLite's write lock longer than ``busy_timeout``
(a long vacuum, a backup): every write in between fails with
StoreBusyError. The worker backs off and goes on, as it does for a lost
connection, and says so in one log line.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from localqueue.errors import StoreBusyError
from localqueue.store import ClaimResult, Lease, open_store
from localqueue.stores.memory import MemoryStore
from localqueue.worker import persistent_worker


class BusyStore(MemoryStore):
    """A memory store whose write lock is 'held elsewhere' for the first few calls."""

    def __init__(self, claim_failures: int = 0, ack_failures: int = 0) -> None:
        super().__init__()
        self.claim_failures = claim_failures
        self.ack_failures = ack_failures

    def claim(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> ClaimResult:
        if self.claim_failures:
            self.claim_failures -= 1
            raise StoreBusyError("store q.db is busy: another process held the write lock")
        return super().claim(
            queue,
            worker_id=worker_id,
            limit=limit,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
        )

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        if self.ack_failures:
            self.ack_failures -= 1
            raise StoreBusyError("store q.db is busy: another process held the write lock")
        return super().ack(queue, leases)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the worker's loop logged (the heartbeat thread logs its own retries)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "localqueue.worker" and r.module == "runner"
    ]


def test_item3_a_busy_store_while_fetching_is_waited_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = BusyStore(claim_failures=2)
    queue = PersistentQueue("jobs", store=store)
    queue.put_many([1, 2, 3])
    seen: list[int] = []

    @persistent_worker(queue, handle_signals=False, poll_interval=0.01)
    def handle(value: int) -> None:
        seen.append(value)

    with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
        summary = handle.run(until_empty=True)
    assert sorted(seen) == [1, 2, 3] and summary.acked == 3
    assert store.claim_failures == 0
    warnings = _warnings(caplog)
    # One line per failed fetch, saying what happened and what the worker does.
    assert len(warnings) == 2, warnings
    assert "is busy" in warnings[0] and "fetching again in 0.1s" in warnings[0]
    assert "fetching again in 0.5s" in warnings[1]  # backing off


def test_item3_a_busy_store_while_acking_is_reported_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = BusyStore(ack_failures=1)
    queue = PersistentQueue("jobs", store=store, lease_timeout=60)
    queue.put_many([1, 2])

    @persistent_worker(queue, handle_signals=False, poll_interval=0.01)
    def handle(value: int) -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
        summary = handle.run(until_empty=True)
    # The first ack was refused: not recorded; its message stays leased and is
    # delivered again when the lease ends. The second was acked.
    assert (summary.acked, summary.lease_lost) == (1, 1)
    assert queue.stats().inflight == 1
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "is busy" in warnings[0], warnings
    assert "the result may not be recorded" in warnings[0]


def test_item3_a_real_sqlite_write_lock_held_past_busy_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "q.sqlite3"
    store = open_store(f"sqlite://{path}?busy_timeout=0.05")
    queue = PersistentQueue("jobs", store=store)
    queue.put_many([1, 2, 3])
    # Another connection (another process, say a long vacuum) takes the write
    # lock and keeps it well past the worker's busy_timeout.
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.4, lambda: holder.execute("COMMIT"))
    release.start()
    seen: list[int] = []

    @persistent_worker(queue, handle_signals=False, poll_interval=0.01)
    def handle(value: int) -> None:
        seen.append(value)

    try:
        with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
            summary = handle.run(until_empty=True)
    finally:
        release.join()
        holder.close()
    assert sorted(seen) == [1, 2, 3] and summary.acked == 3
    assert queue.stats().total == 0
    warnings = _warnings(caplog)
    assert warnings and all("is busy" in w and "fetching again in" in w for w in warnings)
    store.close()
