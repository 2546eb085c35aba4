"""The delivery contract through the queue API, as a test class a store
author subclasses: every transition and error of docs/guarantees.md that a
:class:`PersistentQueue` user sees, with the store under test underneath.

Override one fixture, ``open_store``, exactly as for
:class:`~localqueue_harness.StoreContract` (the same function serves both):
it opens the store under test with a given clock, and opens the *same data*
again when called again.

    class TestMyStoreQueues(QueueContract):
        @pytest.fixture
        def open_store(self, tmp_path):
            return lambda clock: MyStore(tmp_path / "q", clock=clock)

The class derives ``clock``, ``make_store``, ``store`` and ``queue`` from it
(localqueue_harness.queue_fixtures); the property tests it inherits are in
localqueue_harness.queue_properties. Queue names start with
``queue-contract-`` and every test empties its queues first, so a store that
other runs used starts clean.
"""

from __future__ import annotations

import math
import queue as stdlib_queue

import pytest

from localqueue import (
    ErrorInfo,
    LeaseExpired,
    MessageFilter,
    MessageNotFound,
    PersistentQueue,
    SerializationError,
    State,
    Store,
    StoreError,
)
from localqueue.clock import ManualClock
from localqueue_harness.queue_fixtures import StoreFactory, fresh
from localqueue_harness.queue_properties import QueueProperties

__all__ = ["QueueContract"]


class QueueContract(QueueProperties):
    """Every test here is part of the delivery contract (docs/guarantees.md)."""

    def test_put_then_get_delivers_value_with_fresh_receipt(self, queue: PersistentQueue) -> None:
        put = queue.put({"n": 1})
        assert put.state is State.READY and put.attempts == 0 and put.receipt is None
        got = queue.get(block=False)
        assert got.id == put.id
        assert got.value == {"n": 1}
        assert got.state is State.INFLIGHT
        assert got.attempts == 1
        assert got.receipt and got.leased_until is not None
        assert got.leased_by == queue.worker_id

    def test_get_on_empty_queue_raises_stdlib_empty(self, queue: PersistentQueue) -> None:
        with pytest.raises(stdlib_queue.Empty):
            queue.get(block=False)
        with pytest.raises(stdlib_queue.Empty):
            queue.get(timeout=0.05)

    def test_ack_removes_and_second_ack_is_stale(self, queue: PersistentQueue) -> None:
        queue.put("x")
        msg = queue.get(block=False)
        queue.ack(msg)
        assert queue.stats().total == 0
        with pytest.raises(MessageNotFound):
            queue.inspect(msg.id)
        with pytest.raises(LeaseExpired) as info:
            queue.ack(msg)
        assert info.value.message_ids == (msg.id,)

    def test_release_makes_message_ready_again_and_keeps_error(
        self, queue: PersistentQueue
    ) -> None:
        queue.put("x")
        msg = queue.get(block=False)
        assert queue.release(msg, error=RuntimeError("flaky")) is State.READY
        again = queue.get(block=False)
        assert again.id == msg.id and again.attempts == 2 and again.receipt != msg.receipt
        assert again.last_error is not None
        assert again.last_error.type == "RuntimeError"
        assert again.last_error.message == "flaky"

    def test_release_with_delay_hides_message_until_due(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        queue.put("x")
        msg = queue.get(block=False)
        assert queue.release(msg, delay=10) is State.DELAYED
        assert queue.stats().delayed == 1
        with pytest.raises(stdlib_queue.Empty):
            queue.get(block=False)
        clock.advance(10)
        assert queue.get(block=False).id == msg.id

    def test_release_on_last_attempt_dead_letters(self, queue: PersistentQueue) -> None:
        queue.put("x")
        for attempt in (1, 2):
            msg = queue.get(block=False)
            assert msg.attempts == attempt
            assert queue.release(msg, error="nope") is State.READY
        msg = queue.get(block=False)
        assert msg.attempts == 3
        assert queue.release(msg, error=ValueError("still no")) is State.DEAD
        [dead] = queue.dead_letters()
        assert dead.attempts == 3 and dead.value == "x"
        assert dead.last_error is not None and dead.last_error.type == "ValueError"
        assert dead.failed_at is not None

    def test_error_traceback_tail_is_kept(self, queue: PersistentQueue) -> None:
        queue.put("x")
        msg = queue.get(block=False)
        try:
            raise KeyError("missing")
        except KeyError as exc:
            queue.dead_letter(msg, error=exc)
        [dead] = queue.dead_letters()
        assert dead.last_error is not None
        assert dead.last_error.traceback is not None
        assert "KeyError" in dead.last_error.traceback
        assert "test_error_traceback_tail_is_kept" in dead.last_error.traceback

    def test_dead_letter_then_requeue_resets_budget(self, queue: PersistentQueue) -> None:
        queue.put({"job": 1})
        msg = queue.get(block=False)
        queue.dead_letter(msg, error=ErrorInfo("Boom", "it broke"))
        assert queue.stats().dead == 1
        with pytest.raises(stdlib_queue.Empty):
            queue.get(block=False)
        assert queue.requeue_dead(msg.id) == [msg.id]
        back = queue.inspect(msg.id)
        assert back.state is State.READY and back.attempts == 0
        assert back.last_error is not None and back.last_error.type == "Boom"
        redelivered = queue.get(block=False)
        assert redelivered.attempts == 1 and redelivered.value == {"job": 1}

    def test_requeue_dead_variants(self, queue: PersistentQueue, clock: ManualClock) -> None:
        ids = [queue.put(n).id for n in range(4)]
        for n in range(4):
            msg = queue.get(block=False)
            queue.dead_letter(msg, error=ValueError("bad") if n % 2 else TypeError("worse"))
        with pytest.raises(ValueError, match="needs a message"):
            queue.requeue_dead()
        with pytest.raises(MessageNotFound):
            queue.requeue_dead(max(ids) + 999)  # an id no message in this queue has
        preview = queue.requeue_dead(filter=MessageFilter(error_type="TypeError"), dry_run=True)
        assert len(preview) == 2 and queue.stats().dead == 4
        moved = queue.requeue_dead(filter=MessageFilter(error_contains="WORSE"), delay=5)
        assert moved == preview
        assert queue.stats().delayed == 2 and queue.stats().dead == 2
        assert len(queue.requeue_dead(all=True)) == 2
        assert queue.stats().dead == 0
        clock.advance(5)
        assert queue.stats().ready == 4

    def test_requeue_of_non_dead_message_is_refused(self, queue: PersistentQueue) -> None:
        msg = queue.put("x")
        with pytest.raises(MessageNotFound, match="not a dead letter"):
            queue.requeue_dead(msg)

    def test_stale_receipt_after_expiry_changes_nothing(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        queue.put("x")
        first = queue.get(block=False)
        clock.advance(31)
        before = queue.stats()
        for action in (
            lambda: queue.ack(first),
            lambda: queue.release(first),
            lambda: queue.dead_letter(first),
            lambda: queue.extend_lease(first, 60),
        ):
            with pytest.raises(LeaseExpired):
                action()
            assert queue.stats() == before
        second = queue.get(block=False)
        assert second.attempts == 2 and second.receipt != first.receipt
        with pytest.raises(LeaseExpired):
            queue.ack(first)  # the old receipt never becomes valid again
        queue.ack(second)

    def test_extend_lease_keeps_message_inflight(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        queue.put("x")
        msg = queue.get(block=False)
        clock.advance(25)
        extended = queue.extend_lease(msg, 60)
        assert extended.leased_until == pytest.approx(clock.now() + 60)
        clock.advance(40)  # past the original lease, inside the extension
        with pytest.raises(stdlib_queue.Empty):
            queue.get(block=False)
        assert queue.stats().inflight == 1
        queue.ack(extended)

    def test_expired_lease_after_last_attempt_becomes_dead(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        queue.put("poison")
        for _ in range(3):
            queue.get(block=False)
            clock.advance(31)  # the worker "crashed": its lease runs out
        with pytest.raises(stdlib_queue.Empty):
            queue.get(block=False)
        [dead] = queue.dead_letters()
        assert dead.attempts == 3
        assert dead.last_error is not None and dead.last_error.type == "LeaseExpired"

    def test_expired_lease_is_claimable_and_counted_ready(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        queue.put("x")
        queue.get(block=False)
        assert queue.stats().inflight == 1
        clock.advance(30.001)
        stats = queue.stats()
        assert (stats.ready, stats.inflight) == (1, 0)

    def test_a_claim_marks_only_messages_taken_over_from_an_expired_lease(
        self, store: Store, clock: ManualClock
    ) -> None:
        q = self.queue_type(fresh(store, "jobs"), store=store, lease_timeout=30, max_attempts=2)
        q.put_many(["crashed", "released", "exhausted"])
        q.put("urgent", priority=5)
        first = q.get_many(4, block=False)
        assert [m.record.reclaimed for m in first] == [False] * 4  # first deliveries
        by_value = {m.value: m for m in first}
        q.release(by_value["released"])
        q.put("fresh")
        q.put("requeued")
        q.dead_letter(q.get(block=False))  # "released" again: its 2nd delivery
        q.requeue_dead(all=True)
        clock.advance(31)  # the leases of "crashed", "exhausted" and "urgent" run out
        again = q.get_many(10, block=False)  # across two priority levels
        assert {m.value: (m.record.reclaimed, m.attempts) for m in again} == {
            "urgent": (True, 2),
            "crashed": (True, 2),
            "exhausted": (True, 2),
            "released": (False, 1),  # requeued: a fresh attempt budget
            "fresh": (False, 1),
            "requeued": (False, 1),
        }
        # Reported by the claim only: a record read back says nothing of it.
        assert not any(r.reclaimed for r in store.list_messages(q.name))
        assert not store.get(q.name, again[0].id).reclaimed  # type: ignore[union-attr]
        clock.advance(31)  # every lease runs out again, now on its last attempt for three
        last = q.get_many(10, block=False)
        assert {m.value for m in last} == {"released", "fresh", "requeued"}
        assert all(m.record.reclaimed and m.attempts == 2 for m in last)
        assert q.stats().dead == 3  # the others were dead-lettered by the claim, not handed out

    def test_unlimited_attempts_never_dead_letters(self, store: Store, clock: ManualClock) -> None:
        q = self.queue_type(fresh(store, "forever"), store=store, max_attempts=None)
        q.put("x")
        for _ in range(10):
            msg = q.get(block=False)
            q.release(msg)
        assert q.get(block=False).attempts == 11

    def test_priority_then_fifo(self, queue: PersistentQueue, clock: ManualClock) -> None:
        low = queue.put("low", priority=0)
        clock.advance(1)
        high = queue.put("high", priority=5)
        clock.advance(1)
        low2 = queue.put("low2", priority=0)
        order = [queue.get(block=False).id for _ in range(3)]
        assert order == [high.id, low.id, low2.id]

    def test_among_ready_the_earliest_available_goes_first(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        delayed = queue.put("put first, available at t+10", delay=10)
        clock.advance(5)
        plain = queue.put("put second, available at t+5")
        clock.advance(10)
        assert [queue.get(block=False).id for _ in range(2)] == [plain.id, delayed.id]

    def test_delayed_put(self, queue: PersistentQueue, clock: ManualClock) -> None:
        msg = queue.put("later", delay=60)
        assert msg.state is State.DELAYED
        assert queue.stats().delayed == 1 and queue.qsize() == 1
        with pytest.raises(stdlib_queue.Empty):
            queue.get(block=False)
        clock.advance(59.9)
        with pytest.raises(stdlib_queue.Empty):
            queue.get(block=False)
        clock.advance(0.1)
        assert queue.get(block=False).id == msg.id

    def test_dedupe_key_returns_live_message(self, queue: PersistentQueue) -> None:
        first = queue.put({"v": 1}, dedupe_key="order-7")
        second = queue.put({"v": 2}, dedupe_key="order-7")
        assert second.id == first.id and second.value == {"v": 1}
        assert queue.stats().total == 1
        msg = queue.get(block=False)
        assert queue.put("again", dedupe_key="order-7").id == first.id  # inflight is live
        queue.dead_letter(msg)
        assert queue.put("again", dedupe_key="order-7").id == first.id  # dead is live
        queue.requeue_dead(msg.id)
        queue.ack(queue.get(block=False))
        fresh = queue.put({"v": 3}, dedupe_key="order-7")
        assert fresh.id != first.id and fresh.value == {"v": 3}

    def test_dedupe_keys_are_per_queue(self, store: Store) -> None:
        a = self.queue_type(fresh(store, "a"), store=store)
        b = self.queue_type(fresh(store, "b"), store=store)
        assert a.put(1, dedupe_key="k").id != b.put(2, dedupe_key="k").id

    def test_put_many_is_one_batch_with_dedupe(self, queue: PersistentQueue) -> None:
        existing = queue.put("old", dedupe_key="a")
        msgs = queue.put_many(["x", "y", "z", "w"], dedupe_keys=["a", "b", None, "b"], priority=2)
        assert msgs[0].id == existing.id and msgs[0].value == "old"
        assert msgs[1].id == msgs[3].id
        assert len({m.id for m in msgs}) == 3
        assert queue.stats().total == 3
        assert [m.value for m in queue.messages()] == ["old", "y", "z"]

    def test_put_many_with_unserializable_value_stores_nothing(
        self, queue: PersistentQueue
    ) -> None:
        with pytest.raises(SerializationError, match="JSON"):
            queue.put_many([1, 2, object()])
        with pytest.raises(SerializationError):
            queue.put(float("nan"))
        assert queue.stats().total == 0

    def test_get_many_returns_in_priority_order(self, queue: PersistentQueue) -> None:
        queue.put_many(["a", "b"], priority=1)
        queue.put_many(["c", "d"], priority=3)
        got = queue.get_many(3, block=False)
        assert [m.value for m in got] == ["c", "d", "a"]
        assert queue.ack_many(got) == []
        [last] = queue.get_many(5, block=False)
        assert last.value == "b"

    def test_ack_many_reports_stale_and_acks_the_rest(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        queue.put("early")
        early = queue.get(block=False)
        clock.advance(20)
        queue.put("late")
        late = queue.get(block=False)
        clock.advance(15)  # early's lease (30 s) is over, late's is not
        stale = queue.ack_many([early, late])
        assert [m.id for m in stale] == [early.id]
        assert queue.stats().ready == 1 and queue.stats().total == 1

    def test_stats_counts_every_state(self, queue: PersistentQueue, clock: ManualClock) -> None:
        queue.put_many([1, 2, 3])
        queue.put(4, delay=100)
        queue.get(block=False, leased_by="w1")
        msg = queue.get(block=False, leased_by="w2")
        queue.dead_letter(msg)
        clock.advance(7)
        stats = queue.stats()
        assert (stats.ready, stats.delayed, stats.inflight, stats.dead) == (1, 1, 1, 1)
        assert stats.inflight_by_worker == {"w1": 1}
        assert stats.oldest_ready_age == pytest.approx(7)
        as_dict = stats.as_dict()
        assert set(as_dict) >= {"ready", "delayed", "inflight", "dead", "oldest_ready_age"}
        assert queue.qsize() == 2

    def test_listing_by_state_with_paging(self, queue: PersistentQueue) -> None:
        ids = [m.id for m in queue.put_many(list(range(7)))]
        page1 = queue.messages(State.READY, limit=3)
        page2 = queue.messages("ready", after_id=page1[-1].id, limit=3)
        page3 = queue.messages("ready", after_id=page2[-1].id, limit=3)
        assert [m.id for m in page1 + page2 + page3] == ids
        assert queue.messages(State.DEAD) == []

    def test_queues_are_isolated_and_listed(self, store: Store) -> None:
        a = self.queue_type(fresh(store, "alpha"), store=store)
        b = self.queue_type(fresh(store, "beta"), store=store)
        others = store.queues()  # a store reused from other runs may hold more queues
        a.put(1)
        b.put(2)
        assert a.get(block=False).value == 1
        assert b.get(block=False).value == 2
        assert store.queues() == sorted([*others, a.name, b.name])
        b.put(3)
        with pytest.raises(ValueError, match="belongs to queue"):
            a.ack(b.get(block=False))

    def test_every_queue_name_is_listed_in_code_point_order(self, store: Store) -> None:
        # One shared prefix keeps the names' order; a reused store may hold more queues.
        names = [fresh(store, n) for n in ["\U0010ffff", "zz", "\u00e9t\u00e9", "A", "a b"]]
        dead = self.queue_type(fresh(store, "\U0010fffe"), store=store)
        others = store.queues()
        for name in names:
            self.queue_type(name, store=store).put(1)
        dead.put(1)
        dead.dead_letter(dead.get(block=False))
        assert store.queues() == sorted([*others, *names, dead.name])

    def test_purge_by_state_with_dry_run(self, queue: PersistentQueue) -> None:
        queue.put_many([1, 2, 3])
        queue.dead_letter(queue.get(block=False))
        assert queue.purge(State.DEAD, dry_run=True) == 1
        assert queue.stats().dead == 1
        assert queue.purge("dead") == 1
        assert queue.stats().total == 2
        assert queue.purge() == 2
        assert queue.stats().total == 0

    def test_purge_older_than_uses_failure_time_for_dead(
        self, store: Store, clock: ManualClock
    ) -> None:
        q = self.queue_type(fresh(store, "p"), store=store)
        q.put("old")
        clock.advance(100)
        q.dead_letter(q.get(block=False))  # failed just now, created 100 s ago
        q.put("young")
        assert store.purge(q.name, filter=MessageFilter(older_than=50), dry_run=True) == 0
        clock.advance(60)
        assert store.purge(q.name, filter=MessageFilter(older_than=50)) == 2

    def test_inspect_shows_full_record(self, queue: PersistentQueue) -> None:
        put = queue.put({"a": 1}, priority=3, dedupe_key="k")
        seen = queue.inspect(put.id)
        assert (seen.value, seen.priority, seen.dedupe_key, seen.state) == (
            {"a": 1},
            3,
            "k",
            State.READY,
        )
        missing = put.id + 12345  # no message in this queue has it
        with pytest.raises(MessageNotFound, match=f"no message {missing}"):
            queue.inspect(missing)

    def test_attempts_and_errors_survive_reopen(
        self, make_store: StoreFactory, clock: ManualClock
    ) -> None:
        store = make_store()
        q = self.queue_type(fresh(store, "jobs"), store=store, max_attempts=5)
        q.put("x")
        q.release(q.get(block=False), error="first failure")
        msg = q.get(block=False)
        store.close()
        reopened = self.queue_type(q.name, store=make_store(), max_attempts=5)
        seen = reopened.inspect(msg.id)
        assert seen.attempts == 2 and seen.state is State.INFLIGHT
        assert seen.last_error is not None and seen.last_error.message == "first failure"
        reopened.ack(msg)  # the receipt is durable too
        assert reopened.stats().total == 0

    @pytest.mark.parametrize(
        ("call", "argument"),
        [
            (lambda q: q.put(1, delay=-1), "delay"),
            (lambda q: q.put(1, delay=math.nan), "delay"),
            (lambda q: q.put(1, delay=math.inf), "delay"),
            (lambda q: q.put(1, priority=1.5), "priority"),
            (lambda q: q.put(1, dedupe_key=""), "dedupe_key"),
            (lambda q: q.get(timeout=-1), "timeout"),
            (lambda q: q.get(timeout=math.nan), "timeout"),
            (lambda q: q.get_many(0), "limit"),
            (lambda q: q.dead_letters(limit=0), "limit"),
            (lambda q: q.put_many([1, 2], dedupe_keys=["a"]), "dedupe_keys"),
            (lambda q: q.requeue_dead(all=True, delay=-5), "delay"),
            (lambda q: q.put(1, delay=False), "delay"),
            (lambda q: q.put(1, priority=None), "priority"),
            (lambda q: q.put_many([1], dedupe_keys=[]), "dedupe_keys"),
            (lambda q: q.messages("bogus"), "state must be one of"),
            (lambda q: q.purge("bogus"), "state must be one of"),
            (lambda q: q.inspect("7"), "message id"),
            (lambda q: q.messages(after_id="3"), "after_id"),
        ],
    )
    def test_invalid_arguments_name_the_argument(
        self, queue: PersistentQueue, call: object, argument: str
    ) -> None:
        with pytest.raises(ValueError, match=argument):
            call(queue)  # type: ignore[operator]

    def test_invalid_constructor_arguments(self, store: Store) -> None:
        with pytest.raises(ValueError, match="queue name"):
            self.queue_type("", store=store)
        with pytest.raises(ValueError, match="queue name"):
            self.queue_type("  ", store=store)
        name = fresh(store, "q")
        with pytest.raises(ValueError, match="lease_timeout"):
            self.queue_type(name, store=store, lease_timeout=0)
        with pytest.raises(ValueError, match="lease_timeout"):
            self.queue_type(name, store=store, lease_timeout=math.nan)
        with pytest.raises(ValueError, match="max_attempts"):
            self.queue_type(name, store=store, max_attempts=0)
        q = self.queue_type(name, store=store)
        q.put(1)
        msg = q.get(block=False)
        with pytest.raises(ValueError, match="seconds"):
            q.extend_lease(msg, -1)
        with pytest.raises(ValueError, match="delay"):
            q.release(msg, delay=math.nan)

    def test_message_not_leased_cannot_be_acked(self, queue: PersistentQueue) -> None:
        put = queue.put(1)
        with pytest.raises(ValueError, match="not leased"):
            queue.ack(put)

    def test_store_checks_clean_after_activity(self, queue: PersistentQueue, store: Store) -> None:
        queue.put_many(list(range(5)))
        queue.ack(queue.get(block=False))
        queue.release(queue.get(block=False))
        queue.dead_letter(queue.get(block=False))
        assert store.check() == []

    def test_observed_messages_carry_no_receipt(self, queue: PersistentQueue) -> None:
        queue.put("x")
        leased = queue.get(block=False)
        seen = queue.inspect(leased.id)
        assert seen.state is State.INFLIGHT and seen.leased_by == leased.leased_by
        assert seen.receipt is None
        assert [m.receipt for m in queue.messages()] == [None]
        with pytest.raises(ValueError, match="not leased"):
            queue.ack(seen)  # an operator's view cannot ack a worker's delivery
        queue.ack(leased)

    def test_batch_order_is_priority_then_id_on_every_store(self, queue: PersistentQueue) -> None:
        a = queue.put("a")
        b = queue.put("b")
        queue.release(queue.get(block=False))  # a is available again, after b
        assert [m.id for m in queue.get_many(2, block=False)] == [a.id, b.id]

    def test_closed_store_refuses_work(self, store: Store) -> None:
        q = self.queue_type(fresh(store, "q"), store=store)
        q.put(1)
        store.close()
        with pytest.raises(StoreError, match="closed"):
            q.put(2)
        with pytest.raises(StoreError, match="closed"):
            q.stats()

    def test_store_level_requeue_limit(self, store: Store) -> None:
        q = self.queue_type(fresh(store, "q"), store=store)
        q.put_many([1, 2, 3])
        for msg in q.get_many(3, block=False):
            q.dead_letter(msg)
        with pytest.raises(ValueError, match="limit"):
            store.requeue(q.name, limit=0)
        assert len(store.requeue(q.name, limit=2)) == 2

    def test_dedupe_hit_on_inflight_message_hands_out_no_receipt(
        self, queue: PersistentQueue
    ) -> None:
        queue.put("x", dedupe_key="k")
        leased = queue.get(block=False)
        again = queue.put("y", dedupe_key="k")
        [batch_hit] = queue.put_many(["z"], dedupe_keys=["k"])
        assert again.id == batch_hit.id == leased.id
        assert again.receipt is None and batch_hit.receipt is None
        with pytest.raises(ValueError, match="not leased"):
            queue.ack(again)  # the producer cannot ack the worker's delivery
        queue.ack(leased)

    def test_ack_many_matches_by_receipt(self, queue: PersistentQueue, clock: ManualClock) -> None:
        queue.put("x")
        old = queue.get(block=False)
        clock.advance(31)
        new = queue.get(block=False)
        assert queue.ack_many([old, new]) == [old]
        assert queue.stats().total == 0
        queue.put("y")
        twice = queue.get(block=False)
        assert queue.ack_many([twice, twice]) == [twice]  # the first copy acked it

    @pytest.mark.parametrize(
        ("call", "pattern"),
        [
            (lambda q: q.put(1, dedupe_key="a\x00b"), "dedupe_key"),
            (lambda q: q.put(1, dedupe_key="\udc80"), "dedupe_key"),
            (lambda q: q.inspect(2**64), "message id"),
            (lambda q: q.messages(after_id=0), "after_id"),
        ],
    )
    def test_text_and_id_checks(self, queue: PersistentQueue, call: object, pattern: str) -> None:
        with pytest.raises(ValueError, match=pattern):
            call(queue)  # type: ignore[operator]

    def test_unencodable_value_is_a_serialization_error(self, queue: PersistentQueue) -> None:
        with pytest.raises(SerializationError):
            queue.put({"x": "\ud800"})
        assert queue.stats().total == 0

    def test_queue_name_must_be_utf8(self, store: Store) -> None:
        with pytest.raises(ValueError, match="queue name"):
            self.queue_type("\udc80", store=store)

    def test_serializer_must_return_bytes(self, store: Store) -> None:
        class TextSerializer:
            name = "text"

            def dumps(self, value: object) -> str:
                return str(value)

            def loads(self, data: bytes) -> object:
                return data

        q = self.queue_type(fresh(store, "q"), store=store, serializer=TextSerializer())
        with pytest.raises(SerializationError, match="not bytes"):
            q.put(1)
        with pytest.raises(SerializationError, match="not bytes"):
            q.put_many([1, 2])
        assert q.stats().total == 0

    def test_error_filter_folds_case_beyond_ascii(self, queue: PersistentQueue) -> None:
        queue.put("x")
        queue.dead_letter(queue.get(block=False), error="Échec: ÉTAPE 2")
        assert (
            len(queue.requeue_dead(filter=MessageFilter(error_contains="étape"), dry_run=True)) == 1
        )
