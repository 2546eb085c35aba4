"""The delivery contract as a test class a store author subclasses.

Override one fixture, ``open_store``: it returns a function that opens the
store under test with a given clock, and that opens the *same data* again
when called again (the state machine uses that to simulate a restart).

    class TestMyStore(StoreContract):
        @pytest.fixture
        def open_store(self, tmp_path):
            return lambda clock: MyStore(tmp_path / "q", clock=clock)
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from localqueue.clock import ManualClock
from localqueue.store import ClaimResult, EnqueueResult, Lease, NewMessage, State, Store
from localqueue_harness.state_machine import StoreOpener, machine_for

__all__ = ["StoreContract", "StoreOpener"]

Q = "contract-direct"

CLOCK_SKIP = (
    "the store does not accept an injected clock (it keeps time elsewhere, e.g. on a "
    "server), so the time-dependent contract checks cannot run here; use "
    "`localqueue harness run --mode crash-recovery` against it"
)


def opened(open_store: StoreOpener, clock: ManualClock) -> Store:
    """Open with an injected clock, or skip: accepting one is the one optional
    capability. A store factory refuses a clock with ValueError."""
    try:
        return open_store(clock)
    except ValueError as exc:
        if "clock" not in str(exc).lower():
            raise
        pytest.skip(CLOCK_SKIP)


def opened_any(open_store: StoreOpener, clock: ManualClock | None = None) -> Store:
    """Open with an injected clock (``clock``, or a new one) if the store takes
    one, else with its own: for the checks that do not depend on time."""
    try:
        return open_store(ManualClock() if clock is None else clock)
    except ValueError as exc:
        if "clock" not in str(exc).lower():
            raise
        return open_store(None)


class StoreContract:
    """Every test here is part of the delivery contract (docs/guarantees.md)."""

    max_examples = 60
    steps = 40

    @pytest.fixture
    def open_store(self) -> StoreOpener:
        raise NotImplementedError("override the open_store fixture in your subclass")

    def test_state_machine(self, open_store: StoreOpener) -> None:
        """Random sequences of every operation agree with the contract model."""
        opened(open_store, ManualClock()).close()
        run_state_machine_as_test(
            machine_for(open_store),
            settings=settings(
                max_examples=self.max_examples,
                stateful_step_count=self.steps,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )

    def test_claim_and_enqueue_return_the_protocol_results(self, open_store: StoreOpener) -> None:
        """The shapes first: every other check unpacks these results, and a
        store written for the earlier protocol (plain lists) would otherwise
        fail them in confusing ways."""
        store = opened_any(open_store)
        store.purge(Q)
        batch = [
            NewMessage(b"1"),
            NewMessage(b"2", dedupe_key="k"),
            NewMessage(b"3", dedupe_key="k"),
        ]
        enqueued = store.enqueue(Q, batch)
        assert isinstance(enqueued, EnqueueResult), (
            f"enqueue must return localqueue.store.EnqueueResult, not {type(enqueued).__name__}"
        )
        assert len(enqueued.records) == 3, "one record per message given, in order"
        assert enqueued.added == [True, True, False], "a repeated key in a batch is not added"
        assert enqueued.records[2].id == enqueued.records[1].id
        assert store.enqueue(Q, []) == EnqueueResult([], [])
        claimed = store.claim(Q, worker_id="w", limit=5, lease_seconds=30)
        assert isinstance(claimed, ClaimResult), (
            f"claim must return localqueue.store.ClaimResult, not {type(claimed).__name__}"
        )
        assert len(claimed.leased) == 2 and claimed.dead_lettered == []
        assert store.claim(Q, worker_id="w", limit=5, lease_seconds=30) == ClaimResult([], [])
        store.purge(Q)
        store.close()

    def test_a_lease_ends_exactly_at_leased_until(self, open_store: StoreOpener) -> None:
        """The fencing boundary: a lease is held while now < leased_until.
        At exactly leased_until every fenced operation is refused and the
        message is claimable again (docs/stores.md, "The rules")."""
        clock = ManualClock()
        store = opened(open_store, clock)
        store.purge(Q)
        store.enqueue(Q, [NewMessage(b"1")])
        [first] = store.claim(Q, worker_id="a", limit=1, lease_seconds=10).leased
        assert first.receipt is not None and first.leased_until == clock.now() + 10
        lease = Lease(first.id, first.receipt)
        clock.advance(10)
        assert store.extend(Q, lease, 5) is None, "extend at leased_until must be refused"
        assert store.release(Q, lease) is False, "release at leased_until must be refused"
        assert store.dead_letter(Q, lease) is False, "dead_letter at leased_until must be refused"
        assert store.ack(Q, [lease]) == [lease], "ack at leased_until must be refused"
        [again] = store.claim(Q, worker_id="b", limit=1, lease_seconds=10).leased
        assert again.id == first.id and again.attempts == 2, "claimable at leased_until"
        store.purge(Q)
        store.close()

    def test_put_claim_ack(self, open_store: StoreOpener) -> None:
        store = opened_any(open_store)
        store.purge(Q)
        [record] = store.enqueue(Q, [NewMessage(b'"x"')]).records
        [leased] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
        assert leased.id == record.id and leased.attempts == 1 and leased.receipt
        assert store.ack(Q, [Lease(leased.id, leased.receipt)]) == []
        assert store.get(Q, record.id) is None
        store.close()

    def test_expired_lease_is_claimable_again_with_a_new_receipt(
        self, open_store: StoreOpener
    ) -> None:
        clock = ManualClock()
        store = opened(open_store, clock)
        store.purge(Q)
        store.enqueue(Q, [NewMessage(b"1")])
        [first] = store.claim(Q, worker_id="a", limit=1, lease_seconds=10).leased
        assert store.claim(Q, worker_id="b", limit=1, lease_seconds=10).leased == []
        clock.advance(10)
        [second] = store.claim(Q, worker_id="b", limit=1, lease_seconds=10).leased
        assert second.id == first.id and second.attempts == 2
        assert second.receipt != first.receipt
        assert first.receipt is not None
        stale = Lease(first.id, first.receipt)
        assert store.ack(Q, [stale]) == [stale]
        assert store.get(Q, first.id) is not None
        store.close()

    def test_priority_then_available_time(self, open_store: StoreOpener) -> None:
        clock = ManualClock()
        store = opened(open_store, clock)
        store.purge(Q)
        low = store.enqueue(Q, [NewMessage(b"1", priority=0)]).records[0]
        clock.advance(1)
        high = store.enqueue(Q, [NewMessage(b"2", priority=5)]).records[0]
        later = store.enqueue(Q, [NewMessage(b"3", priority=0, delay=0.5)]).records[0]
        clock.advance(1)
        order = [
            store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased[0].id for _ in range(3)
        ]
        assert order == [high.id, low.id, later.id]
        store.close()

    def test_exhausted_lease_becomes_dead(self, open_store: StoreOpener) -> None:
        clock = ManualClock()
        store = opened(open_store, clock)
        store.purge(Q)
        store.enqueue(Q, [NewMessage(b"poison")])
        for _ in range(2):
            assert store.claim(Q, worker_id="w", limit=1, lease_seconds=5, max_attempts=2).leased
            clock.advance(5)
        assert store.claim(Q, worker_id="w", limit=1, lease_seconds=5, max_attempts=2).leased == []
        [dead] = store.list_messages(Q, state=State.DEAD)
        assert dead.attempts == 2 and dead.last_error is not None
        assert dead.last_error.type == "LeaseExpired"
        store.close()

    def test_check_reports_no_problems(self, open_store: StoreOpener) -> None:
        store = opened_any(open_store)
        store.enqueue(Q, [NewMessage(b"1"), NewMessage(b"2")])
        store.claim(Q, worker_id="w", limit=1, lease_seconds=30)
        assert store.check() == []
        store.purge(Q)
        store.close()
