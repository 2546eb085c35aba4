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

import math
import time

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from localqueue.clock import ManualClock
from localqueue.store import (
    ClaimResult,
    EnqueueResult,
    ErrorInfo,
    FinishedCounts,
    Lease,
    MessageFilter,
    NewMessage,
    State,
    Store,
    SupportsFinishedCounts,
    all_stats,
    finished_by_queue,
)
from localqueue_harness.settle_contract import SettleContract
from localqueue_harness.state_machine import NEIGHBOUR, StoreOpener, machine_for

__all__ = ["StoreContract", "StoreOpener", "clock_refusal"]

Q = "contract-direct"

CLOCK_SKIP = (
    "the store does not accept an injected clock (it keeps time elsewhere, e.g. on a "
    "server), so the time-dependent contract checks cannot run here; use "
    "`localqueue harness run --mode crash-recovery` against it"
)
CLOCK_IGNORED = (
    "the store does not accept an injected clock: it was given one and its clock "
    "reads another time, so the time-dependent contract checks cannot run here"
)
# The real-time check: a lease this short, and how long to wait at most for
# the store's own clock to pass its end (generous: a loaded machine or a far
# server must not make the check flaky).
REAL_LEASE = 0.3
REAL_WAIT_LIMIT = 30.0


def clock_refusal(open_store: StoreOpener) -> str | None:
    """Why the store cannot run on an injected clock, or None if it can.

    A store refuses one with a ValueError that names the clock; a store
    that takes the argument but keeps its own time is caught by its
    ``clock`` reading another time than the one it was given.
    """
    clock = ManualClock()
    try:
        store = open_store(clock)
    except ValueError as exc:
        if "clock" not in str(exc).lower():
            raise
        return CLOCK_SKIP
    try:
        return None if store.clock.now() == clock.now() else CLOCK_IGNORED
    finally:
        store.close()


def opened(open_store: StoreOpener, clock: ManualClock) -> Store:
    """Open with an injected clock, or skip: accepting one is the one optional
    capability. A store factory refuses a clock with ValueError."""
    try:
        store = open_store(clock)
    except ValueError as exc:
        if "clock" not in str(exc).lower():
            raise
        pytest.skip(CLOCK_SKIP)
    if store.clock.now() != clock.now():
        store.close()
        pytest.skip(CLOCK_IGNORED)
    return store


def opened_any(open_store: StoreOpener, clock: ManualClock | None = None) -> Store:
    """Open with an injected clock (``clock``, or a new one) if the store takes
    one, else with its own: for the checks that do not depend on time."""
    try:
        return open_store(ManualClock() if clock is None else clock)
    except ValueError as exc:
        if "clock" not in str(exc).lower():
            raise
        return open_store(None)


def leased(store: Store, count: int = 1, lease_seconds: float = 30.0) -> list[Lease]:
    """Claim ``count`` messages of the direct queue; their leases."""
    records = store.claim(Q, worker_id="w", limit=count, lease_seconds=lease_seconds).leased
    assert len(records) == count, f"claim must lease {count} of the ready messages"
    return [Lease(r.id, r.receipt) for r in records if r.receipt is not None]


def ids_of(records: object) -> list[int]:
    return [r.id for r in records]  # type: ignore[attr-defined]


class StoreContract(SettleContract):
    """Every test here is part of the delivery contract (docs/guarantees.md)."""

    max_examples = 60
    steps = 40

    @pytest.fixture
    def open_store(self) -> StoreOpener:
        raise NotImplementedError("override the open_store fixture in your subclass")

    def test_state_machine(self, open_store: StoreOpener) -> None:
        """Random sequences of every operation agree with the contract model.

        On a store that keeps its own time the machine runs without moving
        the clock (see localqueue_harness.state_machine)."""
        own_clock = clock_refusal(open_store) is not None
        run_state_machine_as_test(
            machine_for(open_store, own_clock=own_clock),
            settings=settings(
                max_examples=self.max_examples,
                stateful_step_count=self.steps,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
                # Not the explain phase: it re-runs a failing machine hundreds
                # of times to annotate its steps; the shrunk steps are the story.
                phases=[phase for phase in Phase if phase is not Phase.explain],
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
        clock.set(math.nextafter(first.leased_until, -math.inf))  # the last instant it is held
        assert store.claim(Q, worker_id="b", limit=1, lease_seconds=10).leased == [], (
            "a lease is held until leased_until"
        )
        held = store.get(Q, first.id)
        assert held is not None and held.state is State.INFLIGHT, "inflight until leased_until"
        clock.set(first.leased_until)
        gone = store.get(Q, first.id)
        assert gone is not None and gone.state is State.READY, "ready at leased_until"
        assert store.extend(Q, lease, 5) is None, "extend at leased_until must be refused"
        assert store.release(Q, lease) is False, "release at leased_until must be refused"
        assert store.dead_letter(Q, lease) is False, "dead_letter at leased_until must be refused"
        assert store.ack(Q, [lease]) == [lease], "ack at leased_until must be refused"
        [again] = store.claim(Q, worker_id="b", limit=1, lease_seconds=10).leased
        assert again.id == first.id and again.attempts == 2, "claimable at leased_until"
        store.purge(Q)
        store.close()

    def test_a_delay_ends_exactly_at_available_at(self, open_store: StoreOpener) -> None:
        """The delay boundary: a message is delayed while now < available_at
        and ready (claimable) from exactly available_at on, whether the delay
        came from put, release or requeue."""
        clock = ManualClock()
        store = opened(open_store, clock)
        store.purge(Q)

        def comes_due(message_id: int, available_at: float, how: str) -> None:
            clock.set(math.nextafter(available_at, -math.inf))
            record = store.get(Q, message_id)
            assert record is not None and record.state is State.DELAYED, (
                f"delayed by {how} until available_at"
            )
            assert store.stats(Q).delayed == 1
            assert store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased == [], (
                f"not claimable before the end of a delay given to {how}"
            )
            clock.set(available_at)
            record = store.get(Q, message_id)
            assert record is not None and record.state is State.READY, (
                f"ready at exactly the end of a delay given to {how}"
            )
            assert store.stats(Q).ready == 1

        [put] = store.enqueue(Q, [NewMessage(b"1", delay=10)]).records
        assert put.available_at == clock.now() + 10, "available_at is put time plus delay"
        comes_due(put.id, put.available_at, "put")
        [lease] = leased(store)
        released_at = clock.now()
        assert store.release(Q, lease, delay=7)
        comes_due(put.id, released_at + 7, "release")
        [lease] = leased(store)
        assert store.dead_letter(Q, lease)
        requeued_at = clock.now()
        assert store.requeue(Q, filter=MessageFilter(ids=[put.id]), delay=3) == [put.id]
        comes_due(put.id, requeued_at + 3, "requeue")
        assert leased(store)[0].id == put.id
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
        [after] = store.enqueue(Q, [NewMessage(b'"y"')]).records
        assert after.id != record.id, "ids are never reused, not even the latest acked one"
        store.purge(Q)
        store.close()

    def test_a_superseded_receipt_is_refused_and_changes_nothing(
        self, open_store: StoreOpener
    ) -> None:
        """Each delivery has a fresh receipt; once the message is delivered
        again, the earlier receipt is stale for ack, release, extend and
        dead_letter, and a lease is stale on any other queue. A release or
        dead-letter without an error keeps the latest one."""
        store = opened_any(open_store)
        store.purge(Q)
        [put] = store.enqueue(Q, [NewMessage(b"1")]).records
        [first] = leased(store)
        error = ErrorInfo("Flaky", "first failure", "tail", store.clock.now())
        assert store.release(Q, first, error=error)
        [second] = leased(store)
        assert second.id == put.id and second.receipt != first.receipt, "a fresh receipt"
        before = store.get(Q, put.id)
        assert before is not None and before.attempts == 2 and before.last_error == error
        assert store.ack(Q, [first]) == [first], "ack with a superseded receipt"
        assert store.release(Q, first) is False, "release with a superseded receipt"
        assert store.extend(Q, first, 60) is None, "extend with a superseded receipt"
        assert store.dead_letter(Q, first) is False, "dead_letter with a superseded receipt"
        assert store.ack(NEIGHBOUR, [second]) == [second], "ack on another queue"
        assert store.release(NEIGHBOUR, second) is False, "release on another queue"
        assert store.extend(NEIGHBOUR, second, 60) is None, "extend on another queue"
        assert store.dead_letter(NEIGHBOUR, second) is False, "dead_letter on another queue"
        assert store.get(Q, put.id) == before, "refused calls change nothing"
        low = store.clock.now()
        until = store.extend(Q, second, 3600)
        assert until is not None and low + 3600 <= until <= store.clock.now() + 3600, (
            "extend sets the lease to end seconds from now, and returns that end"
        )
        assert store.release(Q, second), "the current receipt still works"
        [third] = leased(store)
        kept = store.get(Q, put.id)
        assert kept is not None and kept.last_error == error, "release without an error keeps it"
        assert store.dead_letter(Q, third)
        dead = store.get(Q, put.id)
        assert dead is not None and dead.last_error == error, "so does dead_letter"
        assert dead.attempts == 3 and dead.state is State.DEAD
        store.purge(Q)
        store.close()

    def test_claim_limit_and_listing_pages(self, open_store: StoreOpener) -> None:
        """A claim leases at most ``limit``; list_messages returns id order,
        at most ``limit``, strictly after ``after_id``, in the given state."""
        store = opened_any(open_store)
        store.purge(Q)
        ids = ids_of(store.enqueue(Q, [NewMessage(str(n).encode()) for n in range(7)]).records)
        assert ids == sorted(ids) and len(set(ids)) == 7, "ids grow with every new message"
        first_two = leased(store, 2)
        assert [lease.id for lease in first_two] == ids[:2], "claim leases exactly limit"
        for lease in first_two:
            assert store.dead_letter(Q, lease)
        assert ids_of(store.list_messages(Q)) == ids, "listing is in id order"
        assert ids_of(store.list_messages(Q, limit=3)) == ids[:3], "listing keeps its limit"
        assert ids_of(store.list_messages(Q, after_id=ids[2], limit=3)) == ids[3:6], (
            "a page starts strictly after after_id"
        )
        assert ids_of(store.list_messages(Q, after_id=ids[5])) == ids[6:]
        assert store.list_messages(Q, after_id=ids[6]) == []
        assert ids_of(store.list_messages(Q, state=State.DEAD)) == ids[:2]
        assert ids_of(store.list_messages(Q, state=State.DEAD, after_id=ids[0])) == ids[1:2]
        assert ids_of(store.list_messages(Q, state=State.READY, limit=2)) == ids[2:4]
        assert store.list_messages(Q, state=State.INFLIGHT) == []
        store.purge(Q)
        store.close()

    def test_filters_select_the_same_messages_everywhere(self, open_store: StoreOpener) -> None:
        """Every MessageFilter field, in list_messages, requeue and purge
        alike, dry runs changing nothing, and requeue's limit."""
        clock = ManualClock()
        store = opened(open_store, clock)
        store.purge(Q)
        t0 = clock.now()
        m1, m2, m4 = ids_of(store.enqueue(Q, [NewMessage(b"1"), NewMessage(b"2"),
                                              NewMessage(b"4")]).records)  # fmt: skip
        first, second, third = leased(store, 3)
        clock.advance(10)
        assert store.dead_letter(Q, first, error=ErrorInfo("TypeError", "Bad Input", None, t0))
        assert store.release(Q, second, error=ErrorInfo("ValueError", "other", None, t0))
        assert store.release(Q, third, error=ErrorInfo("ValueError", "retry", None, t0))
        clock.advance(10)
        [again] = leased(store)  # m2, its second delivery
        assert again.id == m2
        assert store.dead_letter(Q, again)  # no error given: "other" is kept
        clock.advance(10)
        [m3] = ids_of(store.enqueue(Q, [NewMessage(b"3")]).records)
        clock.advance(10)  # now t0 + 40: m1 failed at +10, m2 at +20, m3 created at +30
        everything = ids_of(store.list_messages(Q))
        cases = [
            (MessageFilter(ids=[m1, m3]), [m1, m3]),
            (MessageFilter(ids=[]), []),
            (MessageFilter(error_type="ValueError"), [m2, m4]),
            (MessageFilter(error_contains="bad INPUT"), [m1]),
            (MessageFilter(error_contains="valueerror: oth"), [m2]),
            (MessageFilter(min_attempts=2), [m2]),
            (MessageFilter(failed_after=t0 + 20), [m2]),
            (MessageFilter(failed_after=t0 + 5), [m1, m2]),
            (MessageFilter(older_than=15), [m1, m2, m4]),
            (MessageFilter(older_than=25), [m1, m4]),
            (MessageFilter(error_type="ValueError", min_attempts=1, older_than=15), [m2, m4]),
            (MessageFilter(), everything),
        ]
        dead = {m1, m2}
        for flt, expected in cases:
            assert ids_of(store.list_messages(Q, filter=flt)) == expected, f"list with {flt}"
            assert store.purge(Q, filter=flt, dry_run=True) == len(expected), f"purge {flt}"
            assert store.purge(Q, state=State.DEAD, filter=flt, dry_run=True) == len(
                dead & set(expected)
            ), f"purge of dead letters with {flt}"
            assert store.requeue(Q, filter=flt, dry_run=True) == [
                i for i in expected if i in dead
            ], f"requeue dry run with {flt}"
        assert ids_of(store.list_messages(Q)) == everything, "dry runs change nothing"
        assert store.stats(Q).dead == 2, "dry runs change nothing"
        assert store.requeue(Q, filter=MessageFilter(), limit=1, dry_run=True) == [m1]
        assert store.requeue(Q, filter=MessageFilter(error_type="ValueError")) == [m2]
        requeued = store.get(Q, m2)
        assert requeued is not None and requeued.state is State.READY
        assert requeued.attempts == 0 and requeued.failed_at is None, "a fresh attempt budget"
        assert requeued.last_error is not None and requeued.last_error.message == "other"
        assert store.purge(Q, filter=MessageFilter(ids=[m3, m1])) == 2
        assert ids_of(store.list_messages(Q)) == [m2, m4], "purge deletes exactly the matches"
        store.purge(Q)
        store.close()

    def test_dedupe_keys_live_until_ack_or_purge(self, open_store: StoreOpener) -> None:
        """A key is live while its message exists in any state, and free
        once the message is acked or purged."""
        store = opened_any(open_store)
        store.purge(Q)

        def put(key: str, delay: float = 0.0) -> tuple[int, bool]:
            [record], [added] = store.enqueue(Q, [NewMessage(b"v", delay=delay, dedupe_key=key)])
            return record.id, added

        k1, added = put("k1")
        assert added
        assert put("k1") == (k1, False), "live while ready"
        [lease] = leased(store)
        assert put("k1") == (k1, False), "live while inflight"
        assert store.dead_letter(Q, lease)
        assert put("k1") == (k1, False), "live while dead"
        k2, _ = put("k2", delay=10**6)
        assert put("k2") == (k2, False), "live while delayed"
        assert store.requeue(Q, filter=MessageFilter(ids=[k1])) == [k1]
        assert put("k1") == (k1, False), "live again after a requeue"
        [lease] = leased(store)
        assert store.ack(Q, [lease]) == []
        after_ack, added = put("k1")
        assert added and after_ack not in (k1, k2), "free once acked"
        assert store.purge(Q, filter=MessageFilter(ids=[k2])) == 1
        after_purge, added = put("k2")
        assert added and after_purge not in (k1, k2, after_ack), "free once purged"
        store.purge(Q)
        store.close()

    def test_every_queues_stats_at_once_equal_stats_per_queue(
        self, open_store: StoreOpener
    ) -> None:
        """all_stats (the store's SupportsAllStats, where it has it) lists every
        queue that holds a message, one holding only dead letters included,
        with the counts stats gives, and follows the clock with no write."""
        clock = ManualClock()
        store = opened(open_store, clock)
        for name in (Q, NEIGHBOUR):
            store.purge(name)
        store.enqueue(Q, [NewMessage(b"1"), NewMessage(b"2", delay=60), NewMessage(b"3")])
        leased(store, 1)
        store.enqueue(NEIGHBOUR, [NewMessage(b"d")])
        [dead] = store.claim(NEIGHBOUR, worker_id="w", limit=1, lease_seconds=30).leased
        assert dead.receipt is not None
        store.dead_letter(NEIGHBOUR, Lease(dead.id, dead.receipt))

        def counts() -> dict[str, tuple[int, int, int, int]]:
            every = all_stats(store)
            assert [s.queue for s in every] == store.queues(), "all_stats lists queues()"
            found = {s.queue: (s.ready, s.delayed, s.inflight, s.dead) for s in every}
            for name, numbers in found.items():
                alone = store.stats(name)
                assert numbers == (alone.ready, alone.delayed, alone.inflight, alone.dead), (
                    f"all_stats and stats disagree on {name!r}"
                )
            return found

        found = counts()
        assert found[Q] == (1, 1, 1, 0) and found[NEIGHBOUR] == (0, 0, 0, 1)
        clock.advance(61)  # the delay ends and the lease expires, with no write
        found = counts()
        assert found[Q] == (3, 0, 0, 0), "ready, delayed and inflight follow the clock"
        for name in (Q, NEIGHBOUR):
            store.purge(name)
        assert not {Q, NEIGHBOUR} & {s.queue for s in all_stats(store)}, "emptied queues go"
        store.close()

    def test_finished_counts_add_acks_and_dead_letters_only(self, open_store: StoreOpener) -> None:
        """A store that keeps finished counts (SupportsFinishedCounts, for
        throughput) adds one per ack of a current lease (alone or in a
        batch) and one per dead letter (by dead_letter, or by a claim that
        finds a lease expired on its last attempt), and nothing for a
        refused ack, a release, a requeue or a purge; the totals survive
        reopening. A store without the capability is not asked."""
        clock = ManualClock()
        store = opened(open_store, clock)
        if not isinstance(store, SupportsFinishedCounts):
            store.close()
            pytest.skip("the store keeps no finished counts (an optional capability)")
        for name in (Q, NEIGHBOUR):
            store.purge(name)

        def grown() -> tuple[int, int]:
            now = finished_by_queue(store) or {}
            found = now.get(Q, FinishedCounts(Q))
            old = start.get(Q, FinishedCounts(Q))
            other = now.get(NEIGHBOUR, FinishedCounts(NEIGHBOUR))
            assert other == start.get(NEIGHBOUR, FinishedCounts(NEIGHBOUR)), (
                "finished counts of one queue changed by work on another"
            )
            return found.acked - old.acked, found.dead_lettered - old.dead_lettered

        start = finished_by_queue(store) or {}
        store.enqueue(Q, [NewMessage(str(n).encode()) for n in range(7)])
        first, second, third = store.claim(Q, worker_id="w", limit=3, lease_seconds=30).leased
        assert first.receipt and second.receipt and third.receipt
        assert store.ack(Q, [Lease(first.id, first.receipt)]) == []
        assert grown() == (1, 0), "an ack adds one acked"
        assert store.ack(Q, [Lease(first.id, first.receipt)]) != []
        assert store.ack(NEIGHBOUR, [Lease(second.id, second.receipt)]) != []
        assert grown() == (1, 0), "a refused ack adds nothing"
        assert store.dead_letter(Q, Lease(second.id, second.receipt))
        assert grown() == (1, 1), "a dead letter adds one dead-lettered"
        assert store.release(Q, Lease(third.id, third.receipt))
        assert grown() == (1, 1), "a release adds nothing"
        batch = store.claim(Q, worker_id="w", limit=3, lease_seconds=30).leased
        assert store.ack(Q, [Lease(r.id, r.receipt) for r in batch if r.receipt]) == []
        assert grown() == (4, 1), "a batch ack adds one per message"
        [doomed] = store.claim(Q, worker_id="w", limit=1, lease_seconds=5, max_attempts=1).leased
        [purged] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
        clock.advance(5)
        claim = store.claim(Q, worker_id="w", limit=1, lease_seconds=30, max_attempts=1)
        assert [r.id for r in claim.dead_lettered] == [doomed.id]
        assert grown() == (4, 2), "a claim that dead-letters an exhausted lease adds one"
        assert store.requeue(Q) == [second.id, doomed.id]
        store.purge(Q)  # the leased ones too
        assert purged.receipt is not None
        assert grown() == (4, 2), "a requeue or a purge adds nothing, leased messages included"
        store.close()
        store = opened(open_store, clock)
        assert grown() == (4, 2), "finished counts survive reopening"
        store.close()

    def test_heartbeats_show_in_stats(self, open_store: StoreOpener) -> None:
        """record_heartbeat puts the worker in stats().workers at the store
        clock's time, per queue; stopped=True removes it."""
        store = opened_any(open_store)
        for worker in store.stats(Q).workers:  # a reused store: start clean
            store.record_heartbeat(Q, worker, stopped=True)

        def beat(worker: str) -> tuple[float, float]:
            before = store.clock.now()
            store.record_heartbeat(Q, worker)
            return before, store.clock.now()

        low, high = beat("w1")
        [(name, seen)] = store.stats(Q).workers.items()
        assert name == "w1" and low <= seen <= high, "a heartbeat is noted at the store's now"
        beat("w2")
        low, high = beat("w1")
        workers = store.stats(Q).workers
        assert set(workers) == {"w1", "w2"} and low <= workers["w1"] <= high, (
            "a later heartbeat moves the worker's time"
        )
        assert not {"w1", "w2"} & set(store.stats(NEIGHBOUR).workers), "heartbeats are per queue"
        store.record_heartbeat(Q, "w1", stopped=True)
        assert set(store.stats(Q).workers) == {"w2"}, "stopped=True removes the worker"
        store.record_heartbeat(Q, "w2", stopped=True)
        assert store.stats(Q).workers == {}
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

    def test_a_stalled_consumer_loses_its_lease_in_real_time(self, open_store: StoreOpener) -> None:
        """On the store's own clock, real time: a consumer that stalls past a
        short lease has its late ack (and release, extend, dead-letter)
        refused, the message goes to the next claim with a new receipt, and
        a message whose last lease ran out is dead-lettered by that claim."""
        store = open_store(None)
        store.purge(Q)
        last, slow = ids_of(store.enqueue(Q, [NewMessage(b"last", priority=1),
                                              NewMessage(b"slow")]).records)  # fmt: skip
        [lease] = leased(store)
        assert lease.id == last and store.release(Q, lease)
        # One claim leases both: "last" on its last allowed attempt, "slow" on its first.
        both = store.claim(
            Q, worker_id="w", limit=2, lease_seconds=REAL_LEASE, max_attempts=2
        ).leased
        assert [(r.id, r.attempts) for r in both] == [(last, 2), (slow, 1)]
        [stalled] = [Lease(r.id, r.receipt) for r in both if r.id == slow and r.receipt]
        ends = [r.leased_until for r in both if r.leased_until is not None]
        assert len(ends) == 2, "a claimed record shows its lease's end"
        give_up = time.monotonic() + REAL_WAIT_LIMIT
        while store.clock.now() <= max(ends):  # the stall: both leases run out
            assert time.monotonic() < give_up, "the store's clock did not pass the leases' end"
            time.sleep(0.05)
        before = store.get(Q, slow)
        assert store.ack(Q, [stalled]) == [stalled], "a late ack is refused"
        assert store.release(Q, stalled) is False, "a late release is refused"
        assert store.extend(Q, stalled, 30) is None, "a late extend is refused"
        assert store.dead_letter(Q, stalled) is False, "a late dead_letter is refused"
        assert store.get(Q, slow) == before, "refused calls change nothing"
        assert before is not None and before.state is State.READY, "an expired lease is ready"
        taken, dead = store.claim(Q, worker_id="w2", limit=2, lease_seconds=30, max_attempts=2)
        assert ids_of(taken) == [slow], "the next claim takes the stalled message"
        assert taken[0].attempts == 2 and taken[0].receipt != stalled.receipt
        assert ids_of(dead) == [last], "an expired last attempt is dead-lettered by the claim"
        assert dead[0].last_error is not None and dead[0].last_error.type == "LeaseExpired"
        assert store.ack(Q, [stalled]) == [stalled], "the stale receipt stays stale"
        assert taken[0].receipt is not None
        assert store.ack(Q, [Lease(slow, taken[0].receipt)]) == []
        store.purge(Q)
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
        store.purge(Q)
        # A batch comes back by priority, then id, not in the order it was chosen.
        first, second = ids_of(store.enqueue(Q, [NewMessage(b"a"), NewMessage(b"b")]).records)
        [lease] = leased(store)
        clock.advance(1)
        assert store.release(Q, lease)  # first is available after second now
        batch = store.claim(Q, worker_id="w", limit=2, lease_seconds=30).leased
        assert ids_of(batch) == [first, second], "a batch is sorted by priority, then id"
        store.purge(Q)
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
