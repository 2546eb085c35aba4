"""Workers ride out a networked store's lost connection instead of stopping."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from localqueue import PersistentQueue
from localqueue.errors import StoreConnectionLost
from localqueue.store import ClaimResult, Lease
from localqueue.stores.memory import MemoryStore
from localqueue.worker import persistent_worker


class FlakyStore(MemoryStore):
    """A memory store whose connection 'breaks' for the first few calls."""

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
            raise StoreConnectionLost("lost the connection to the store during claim")
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
            raise StoreConnectionLost("lost the connection to the store during ack")
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
    # The first ack was lost: counted as not recorded; its message stays leased
    # (delivered again when the lease ends); the second was acked.
    assert (summary.acked, summary.lease_lost) == (1, 1)
    assert queue.stats().inflight == 1
    assert any("the result may not be recorded" in r.getMessage() for r in caplog.records)
