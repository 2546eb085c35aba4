"""Workers ride out transient store errors (a networked store's lost connection,
SQLite's write lock held past busy_timeout) instead of stopping."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from localqueue.aio import AsyncPersistentQueue, async_worker
from localqueue.errors import StoreBusyError, StoreConnectionLost, StoreError
from localqueue.store import ClaimResult, Lease, open_store
from localqueue.stores.memory import MemoryStore
from localqueue.worker import persistent_worker


def lost_connection(operation: str) -> StoreError:
    return StoreConnectionLost(f"lost the connection to the store during {operation}")


def busy(operation: str) -> StoreError:
    return StoreBusyError("store q.db is busy: another process held the write lock")


class FlakyStore(MemoryStore):
    """A memory store whose first few calls fail with a transient store error:
    a lost connection by default, or the write lock held elsewhere (``busy``)."""

    def __init__(
        self,
        claim_failures: int = 0,
        ack_failures: int = 0,
        fail: Callable[[str], StoreError] = lost_connection,
    ) -> None:
        super().__init__()
        self.claim_failures = claim_failures
        self.ack_failures = ack_failures
        self.fail = fail

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
            raise self.fail("claim")
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
            raise self.fail("ack")
        return super().ack(queue, leases)


def test_a_lost_connection_while_fetching_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(claim_failures=2)
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
    warnings = [r.getMessage() for r in caplog.records]
    assert any("during claim; fetching again in 0.1s" in w for w in warnings)
    assert any("fetching again in 0.5s" in w for w in warnings)  # backing off


def test_a_lost_connection_while_acking_is_reported_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore(ack_failures=1)
    queue = PersistentQueue("jobs", store=store, lease_timeout=60)
    queue.put_many([1, 2])

    @persistent_worker(queue, handle_signals=False, poll_interval=0.01)
    def handle(value: int) -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
        summary = handle.run(until_empty=True)
    # The first ack failed: the worker kept the job, leased, and acked it with
    # its next fetch, so nothing runs twice and nothing is left leased.
    assert (summary.acked, summary.lease_lost) == (2, 0)
    assert queue.stats().total == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert any("lost the connection" in w and "fetching again in" in w for w in warnings)


# A busy store (another process held SQLite's write lock past busy_timeout,
# e.g. a long vacuum) is ridden out the same way: issue 15, item 3.


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
    store = FlakyStore(claim_failures=2, fail=busy)
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


def test_item3_the_async_worker_waits_out_a_busy_store_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The async worker shares the threaded worker's outage handling: the
    same back-off and the same one line per failed fetch."""
    store = FlakyStore(claim_failures=2, fail=busy)
    seen: list[int] = []

    async def main() -> int:
        queue = AsyncPersistentQueue("jobs", store=store)
        await queue.put_many([1, 2, 3])

        @async_worker(queue, handle_signals=False, poll_interval=0.01)
        async def handle(value: int) -> None:
            seen.append(value)

        summary = await handle.run(until_empty=True)
        await queue.close()
        return summary.acked

    with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
        acked = asyncio.run(main())
    assert sorted(seen) == [1, 2, 3] and acked == 3
    assert store.claim_failures == 0
    warnings = _warnings(caplog)
    assert len(warnings) == 2, warnings
    assert "is busy" in warnings[0] and "fetching again in 0.1s" in warnings[0]


def test_item3_a_busy_store_while_acking_is_reported_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore(ack_failures=1, fail=busy)
    queue = PersistentQueue("jobs", store=store, lease_timeout=60)
    queue.put_many([1, 2])

    @persistent_worker(queue, handle_signals=False, poll_interval=0.01)
    def handle(value: int) -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="localqueue.worker"):
        summary = handle.run(until_empty=True)
    # The first ack was refused (a busy store commits nothing): the worker
    # kept the job, leased, and acked it with its next fetch. Both are acked.
    assert (summary.acked, summary.lease_lost) == (2, 0)
    assert queue.stats().total == 0
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "is busy" in warnings[0], warnings
    # The ack rides on the next claim, so one line says both.
    assert "fetching again in 0.1s" in warnings[0]
    assert "may not be recorded" not in warnings[0]


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
