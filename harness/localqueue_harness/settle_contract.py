"""The contract of ``settle_and_claim``: settle deliveries, then claim, as one.

Checked through the kit's ``settle_and_claim``, so a store that offers the
capability (``SupportsSettleAndClaim``) is checked on its own one-transaction
implementation, and any other store on the default the queue gives it
(``settle_then_claim``); both must behave the same. Mixed into
:class:`~localqueue_harness.StoreContract`; uses its ``open_store`` fixture.
"""

from __future__ import annotations

import pytest

from localqueue.clock import ManualClock
from localqueue.store import (
    ClaimResult,
    ErrorInfo,
    Lease,
    NewMessage,
    SettleAction,
    Settlement,
    SettleResult,
    State,
    Store,
    settle_and_claim,
)
from localqueue_harness.state_machine import StoreOpener

__all__ = ["SettleContract"]

Q = "contract-settle"

# The same words as the rest of the contract, for a store that keeps its own time.
CLOCK_SKIP = (
    "the store does not accept an injected clock, so the time-dependent "
    "settle_and_claim checks cannot run here"
)


def _open(open_store: StoreOpener, clock: ManualClock | None) -> Store:
    """With ``clock`` for the time-dependent checks (skipped on a store that
    keeps its own time); with any clock, or none, for the others."""
    try:
        store = open_store(clock if clock is not None else ManualClock())
    except ValueError as exc:
        if "clock" not in str(exc).lower():
            raise
        if clock is not None:
            pytest.skip(CLOCK_SKIP)
        store = open_store(None)
    if clock is not None and store.clock.now() != clock.now():
        store.close()
        pytest.skip(CLOCK_SKIP)
    # Runs on a URL share one store between tests: start from an empty queue.
    store.purge(Q)
    return store


def _put(store: Store, *payloads: bytes) -> list[int]:
    return [r.id for r in store.enqueue(Q, [NewMessage(p) for p in payloads]).records]


def _claim(store: Store, count: int, lease_seconds: float = 30.0) -> list[Lease]:
    records = store.claim(Q, worker_id="w", limit=count, lease_seconds=lease_seconds).leased
    assert len(records) == count, f"claim must lease {count} of the ready messages"
    return [Lease(r.id, r.receipt) for r in records if r.receipt is not None]


def _settle(store: Store, settlements: list[Settlement], limit: int = 1) -> SettleResult:
    result = settle_and_claim(
        store, Q, settlements, worker_id="w2", limit=limit, lease_seconds=30.0
    )
    assert isinstance(result, SettleResult), (
        f"settle_and_claim must return a SettleResult, got {type(result).__name__}"
    )
    assert isinstance(result.claimed, ClaimResult), (
        f"settle_and_claim's claimed must be a ClaimResult, got {type(result.claimed).__name__}"
    )
    return result


class SettleContract:
    """``settle_and_claim`` keeps the contract of the operations it combines."""

    def test_settle_and_claim_acks_then_claims_the_next(self, open_store: StoreOpener) -> None:
        store = _open(open_store, None)
        try:
            first, second, third = _put(store, b"1", b"2", b"3")
            (lease,) = _claim(store, 1)
            assert lease.id == first
            result = _settle(store, [Settlement(lease)], limit=5)
            assert result.stale == [], "a current ack is not stale"
            leased = result.claimed.leased
            assert [r.id for r in leased] == [second, third], (
                "after the ack the claim takes the next messages in delivery order"
            )
            assert all(r.state is State.INFLIGHT and r.attempts == 1 for r in leased)
            assert all(r.receipt and r.receipt != lease.receipt for r in leased), (
                "every delivery gets a fresh receipt"
            )
            assert all(r.leased_by == "w2" for r in leased)
            assert store.get(Q, first) is None, "the acked message is gone"
        finally:
            store.close()

    def test_settle_and_claim_keeps_release_delay_and_errors(self, open_store: StoreOpener) -> None:
        clock = ManualClock()
        store = _open(open_store, clock)
        try:
            released_id, dead_id, next_id = _put(store, b"r", b"d", b"n")
            release, dead = _claim(store, 2)
            error = ErrorInfo(type="Boom", message="it broke", traceback="tb", at=clock.now())
            result = _settle(
                store,
                [
                    Settlement(release, SettleAction.RELEASE, delay=60.0, error=error),
                    Settlement(dead, SettleAction.DEAD_LETTER, error=error),
                ],
                limit=5,
            )
            assert result.stale == []
            assert [r.id for r in result.claimed.leased] == [next_id], (
                "a message released with a delay is not claimed before it is due"
            )
            released = store.get(Q, released_id)
            assert released is not None and released.state is State.DELAYED
            assert released.available_at == clock.now() + 60.0
            assert released.last_error == error, "a release keeps the error it was given"
            dead_record = store.get(Q, dead_id)
            assert dead_record is not None and dead_record.state is State.DEAD
            assert dead_record.last_error == error, "a dead letter keeps the error it was given"
        finally:
            store.close()

    def test_settle_and_claim_with_a_stale_lease_claims_nothing(
        self, open_store: StoreOpener
    ) -> None:
        clock = ManualClock()
        store = _open(open_store, clock)
        try:
            first, second = _put(store, b"1", b"2")
            old_first, old_second = _claim(store, 2, lease_seconds=5.0)
            clock.advance(10.0)
            (taken_over,) = _claim(store, 1)  # another delivery of the first
            assert taken_over.id == first
            before = store.get(Q, first)
            result = _settle(
                store,
                [Settlement(old_first), Settlement(taken_over, SettleAction.RELEASE)],
                limit=5,
            )
            assert result.stale == [old_first], "only the stale lease is reported stale"
            assert result.claimed == ClaimResult([], []), (
                "nothing is claimed when a settlement was stale"
            )
            after = store.get(Q, first)
            assert before is not None and after is not None
            assert after.state is State.READY and after.attempts == before.attempts, (
                "the stale ack changed nothing; the current release in the same call was applied"
            )
            stale_second = store.get(Q, second)
            assert stale_second is not None and stale_second.attempts == 1, (
                "a message nobody settled is left as it was"
            )
            assert old_second.id == second
        finally:
            store.close()

    def test_settle_and_claim_settles_even_when_nothing_is_due(
        self, open_store: StoreOpener
    ) -> None:
        store = _open(open_store, None)
        try:
            (only,) = _put(store, b"1")
            (lease,) = _claim(store, 1)
            result = _settle(store, [Settlement(lease)])
            assert result.stale == [] and result.claimed.leased == []
            assert store.get(Q, only) is None, "the ack stands although nothing was claimed"
            assert store.stats(Q).total == 0
        finally:
            store.close()
