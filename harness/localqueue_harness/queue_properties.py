"""Property tests of the delivery contract, through the queue API.

Each test drives a :class:`PersistentQueue` on the store under test with a
random sequence of operations and checks it against a small pure-Python
model of the contract. Function-scoped fixtures (the store, the queue, the
manual clock) are shared by all the examples of one test, so every example
starts with ``_fresh`` (an empty queue) and reads times relative to the
clock's current reading. :class:`~localqueue_harness.QueueContract` includes
these tests; this module only keeps them apart from the direct ones.
"""

from __future__ import annotations

import queue as stdlib_queue
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from localqueue import LeaseExpired, Message, PersistentQueue, QueueStats, State
from localqueue.clock import ManualClock
from localqueue_harness.queue_fixtures import LEASE, MAX_ATTEMPTS, QueueFixtures

__all__ = ["QueueProperties"]

# The fixtures are function-scoped on purpose (see above). Each subclass (one
# per store) calls these methods on its own instance: a "differing executor"
# to hypothesis, which then replays one store's saved examples on another -
# harmless, and more examples.
PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
)

# Durations: exact small values make ties (same available_at) common; floats
# exercise arbitrary arithmetic. Both are compared exactly, because the model
# does the same float additions as the stores. Positive floats stay >= 1 ms so
# that ``now + delay > now`` (test_put_reports_ready_when_the_delay_is_below_
# clock_resolution covers the rest).
durations = st.one_of(
    st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0]),
    st.floats(min_value=0.001, max_value=10.0, allow_nan=False, allow_infinity=False),
)


def _fresh(queue: PersistentQueue) -> None:
    queue.purge()
    assert queue.stats().total == 0


def _drain(queue: PersistentQueue) -> list[Message]:
    got: list[Message] = []
    while True:
        try:
            message = queue.get(block=False)
        except stdlib_queue.Empty:
            return got
        queue.ack(message)
        got.append(message)


# -- 1. priority, then earliest available_at, then lowest id ------------------------

put_step = st.tuples(
    durations,  # clock advance before the put
    st.integers(min_value=-2, max_value=2),  # priority
    durations,  # delay
    st.integers(min_value=1, max_value=3),  # batch size (put for 1, put_many otherwise)
)


# -- 2. delays -------------------------------------------------------------------------

delay_op = st.one_of(
    st.tuples(st.just("put"), durations),
    st.tuples(st.just("advance"), durations),
    st.tuples(st.just("get"), st.just(0.0)),
)


# -- 3. dedupe keys ----------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", None])
no_keys: st.SearchStrategy[list[str | None]] = st.just([])
which = st.integers(min_value=0, max_value=99)  # picks one of the held messages
dedupe_op = st.one_of(
    st.tuples(st.just("put"), st.lists(keys, min_size=1, max_size=1), st.just(0)),
    st.tuples(st.just("put_many"), st.lists(keys, min_size=2, max_size=4), st.just(0)),
    st.tuples(st.just("get"), no_keys, st.just(0)),
    st.tuples(st.just("ack"), no_keys, which),
    st.tuples(st.just("dead_letter"), no_keys, which),
)


@dataclass
class _Live:
    key: str | None
    state: State


# -- 4. leases and receipts ----------------------------------------------------------------


@dataclass
class _Model:
    """What the store should hold for one message."""

    stored: str  # "queued" | "inflight" | "dead"
    available_at: float
    attempts: int = 0
    receipt: str | None = None
    error_type: str | None = None

    def state(self, now: float) -> State:
        if self.stored == "dead":
            return State.DEAD
        if self.available_at > now:
            return State.INFLIGHT if self.stored == "inflight" else State.DELAYED
        return State.READY


# Weighted by repetition: gets and clock jumps past the lease are what drive a
# message through re-deliveries to its death, so they come often.
LEASE_OPS = ["put", "get", "get", "get", "ack", "release", "extend", "advance", "advance"]
# 30 lands exactly on the end of a lease taken 30 s earlier (expired: leases
# are held while leased_until > now).
ADVANCES = [1.0, 10.0, 29.0, 30.0, 31.0, 31.0, 45.0]
lease_op = st.tuples(st.sampled_from(LEASE_OPS), st.integers(min_value=0, max_value=99))

EXPIRE_THREE_TIMES = [("get", 0), ("advance", 4)] * 3 + [("get", 0)]


class QueueProperties(QueueFixtures):
    """The property tests (see the module's docstring); part of QueueContract."""

    @PROPERTY_SETTINGS
    @given(steps=st.lists(put_step, min_size=1, max_size=25))
    def test_delivery_order_is_priority_then_available_at_then_id(
        self,
        queue: PersistentQueue,
        clock: ManualClock,
        steps: list[tuple[float, int, float, int]],
    ) -> None:
        _fresh(queue)
        model: list[tuple[int, float, int]] = []  # (priority, available_at, id)
        values: dict[int, object] = {}
        for n, (advance, priority, delay, size) in enumerate(steps):
            clock.advance(advance)
            now = clock.now()
            batch = [{"step": n, "k": k} for k in range(size)]
            if size == 1:
                put = [queue.put(batch[0], priority=priority, delay=delay)]
            else:
                put = queue.put_many(batch, priority=priority, delay=delay)
            assert len(put) == size
            for message, value in zip(put, batch, strict=True):
                assert message.available_at == now + delay
                assert message.priority == priority
                assert message.id not in values
                model.append((priority, now + delay, message.id))
                values[message.id] = value

        clock.advance(max(available_at for _, available_at, _ in model) - clock.now() + 1.0)
        delivered = _drain(queue)

        expected = [id_ for _, _, id_ in sorted(model, key=lambda m: (-m[0], m[1], m[2]))]
        assert [m.id for m in delivered] == expected
        assert [m.value for m in delivered] == [values[id_] for id_ in expected]
        assert all(m.attempts == 1 for m in delivered)
        assert queue.stats().total == 0

    @PROPERTY_SETTINGS
    @given(ops=st.lists(delay_op, min_size=1, max_size=40))
    def test_delayed_messages_wait_for_the_clock(
        self, queue: PersistentQueue, clock: ManualClock, ops: list[tuple[str, float]]
    ) -> None:
        _fresh(queue)
        pending: dict[int, float] = {}  # id -> available_at, not yet delivered
        delivered: list[int] = []
        put_ids: list[int] = []

        def check_stats() -> None:
            now = clock.now()
            ready = [at for at in pending.values() if at <= now]
            stats = queue.stats()
            assert stats.ready == len(ready)
            assert stats.delayed == len(pending) - len(ready)
            assert stats.inflight == 0 and stats.dead == 0
            if ready:
                assert stats.oldest_ready_age == now - min(ready)
            else:
                assert stats.oldest_ready_age is None

        for op, amount in ops:
            if op == "put":
                now = clock.now()
                message = queue.put(len(put_ids), delay=amount)
                assert message.available_at == now + amount
                assert message.state is (State.DELAYED if now + amount > now else State.READY)
                pending[message.id] = now + amount
                put_ids.append(message.id)
            elif op == "advance":
                clock.advance(amount)
            else:
                now = clock.now()
                ready = sorted((at, id_) for id_, at in pending.items() if at <= now)
                if not ready:
                    event("get: nothing due yet")
                    with pytest.raises(stdlib_queue.Empty):
                        queue.get(block=False)
                else:
                    message = queue.get(block=False)
                    assert message.id == ready[0][1]
                    assert pending[message.id] <= now  # its delay has passed
                    assert message.leased_until == now + LEASE
                    queue.ack(message)
                    del pending[message.id]
                    delivered.append(message.id)
            check_stats()

        if pending:
            clock.advance(max(0.0, max(pending.values()) - clock.now()) + 0.5)
            check_stats()
        rest = _drain(queue)
        assert sorted(m.id for m in rest) == sorted(pending)
        assert sorted(delivered + [m.id for m in rest]) == put_ids
        assert queue.stats().total == 0

    @PROPERTY_SETTINGS
    @given(ops=st.lists(dedupe_op, min_size=1, max_size=30))
    def test_dedupe_key_is_unique_while_live(
        self, queue: PersistentQueue, ops: list[tuple[str, list[str | None], int]]
    ) -> None:
        _fresh(queue)
        live: dict[int, _Live] = {}
        by_key: dict[str, int] = {}
        held: list[Message] = []
        max_id = 0
        retired: set[int] = set()  # ids that were acked: never handed out again

        def check_stats() -> None:
            stats = queue.stats()
            states = [m.state for m in live.values()]
            assert stats.ready == states.count(State.READY)
            assert stats.inflight == states.count(State.INFLIGHT)
            assert stats.dead == states.count(State.DEAD)
            assert stats.delayed == 0
            assert stats.total == len(live)

        for op, op_keys, index in ops:
            if op in ("put", "put_many"):
                total_before = queue.stats().total
                values = [f"v{i}" for i in range(len(op_keys))]
                if op == "put":
                    result = [queue.put(values[0], dedupe_key=op_keys[0])]
                else:
                    result = queue.put_many(values, dedupe_keys=op_keys)
                assert len(result) == len(op_keys)
                added = 0
                for key, message in zip(op_keys, result, strict=True):
                    if key is not None and key in by_key:
                        existing = by_key[key]
                        event(f"dedupe hit on a {live[existing].state.value} message")
                        assert message.id == existing
                        assert message.dedupe_key == key
                        assert message.state is live[existing].state
                    else:
                        assert message.id > max_id
                        assert message.id not in retired
                        assert message.dedupe_key == key
                        max_id = message.id
                        live[message.id] = _Live(key, State.READY)
                        if key is not None:
                            by_key[key] = message.id
                        added += 1
                assert queue.stats().total == total_before + added
            elif op == "get":
                ready = sorted(id_ for id_, m in live.items() if m.state is State.READY)
                if not ready:
                    with pytest.raises(stdlib_queue.Empty):
                        queue.get(block=False)
                else:
                    message = queue.get(block=False)
                    assert message.id == ready[0]
                    live[message.id].state = State.INFLIGHT
                    held.append(message)
            elif held:
                message = held.pop(index % len(held))
                if op == "ack":
                    queue.ack(message)
                    gone = live.pop(message.id)
                    retired.add(message.id)
                    if gone.key is not None:
                        del by_key[gone.key]
                else:
                    queue.dead_letter(message, error="gave up")
                    live[message.id].state = State.DEAD
            check_stats()

    @settings(PROPERTY_SETTINGS, max_examples=500)
    @given(puts=st.integers(min_value=1, max_value=3), ops=st.lists(lease_op, max_size=40))
    # Always cover: death by lease expiry on the last attempt, stale receipts after
    # expiry and after re-delivery, a lease ending exactly at "now", and release
    # on the last attempt.
    @example(puts=1, ops=[*EXPIRE_THREE_TIMES, ("ack", 0), ("ack", 2)])
    @example(puts=1, ops=[("get", 0), ("advance", 3), ("ack", 0), ("release", 0), ("get", 0)])
    @example(puts=2, ops=[("get", 0), ("release", 0)] * 3 + [("get", 0), ("ack", 0)])
    def test_stale_receipts_are_fenced_and_expired_leases_retry_then_die(
        self, queue: PersistentQueue, clock: ManualClock, puts: int, ops: list[tuple[str, int]]
    ) -> None:
        assert queue.max_attempts == MAX_ATTEMPTS and queue.lease_timeout == LEASE
        _fresh(queue)
        model: dict[int, _Model] = {}
        deliveries: list[Message] = []  # every Message get() returned, current or stale
        receipts_seen: set[str] = set()
        attempts_seen: dict[int, int] = {}

        def is_current(message: Message) -> bool:
            entry = model.get(message.id)
            return (
                entry is not None
                and entry.stored == "inflight"
                and entry.receipt == message.receipt
                and entry.available_at > clock.now()
            )

        def expected_stats() -> tuple[int, int, int, int]:
            now = clock.now()
            states = [m.state(now) for m in model.values()]
            return (
                states.count(State.READY),
                states.count(State.DELAYED),
                states.count(State.INFLIGHT),
                states.count(State.DEAD),
            )

        def stale(action: str, message: Message) -> None:
            before: QueueStats = queue.stats()
            record_before = queue.inspect(message.id) if message.id in model else None
            event(f"stale {action} (attempt {message.attempts})")
            with pytest.raises(LeaseExpired):
                if action == "ack":
                    queue.ack(message)
                elif action == "release":
                    queue.release(message, error="late")
                else:
                    queue.extend_lease(message, LEASE)
            assert queue.stats() == before
            if record_before is not None:
                assert queue.inspect(message.id) == record_before

        for op, arg in [("put", 0)] * puts + ops:
            now = clock.now()
            if op == "put":
                message = queue.put("job")
                model[message.id] = _Model("queued", now)
            elif op == "advance":
                clock.advance(ADVANCES[arg % len(ADVANCES)])
            elif op == "get":
                due = sorted(
                    (m.available_at, id_)
                    for id_, m in model.items()
                    if m.stored != "dead" and m.available_at <= now
                )
                expected: int | None = None
                for _, id_ in due:
                    entry = model[id_]
                    if entry.stored == "inflight" and entry.attempts >= MAX_ATTEMPTS:
                        event("lease expired on the last attempt: dead on claim")
                        entry.stored, entry.available_at = "dead", now
                        entry.receipt, entry.error_type = None, "LeaseExpired"
                        continue
                    expected = id_
                    break
                if expected is None:
                    with pytest.raises(stdlib_queue.Empty):
                        queue.get(block=False)
                else:
                    message = queue.get(block=False)
                    assert message.id == expected
                    entry = model[expected]
                    if entry.stored == "inflight":
                        event("re-delivered after lease expiry")
                    entry.attempts += 1
                    entry.stored, entry.available_at = "inflight", now + LEASE
                    assert message.attempts == entry.attempts
                    assert message.leased_until == now + LEASE
                    assert message.receipt is not None and message.receipt not in receipts_seen
                    receipts_seen.add(message.receipt)
                    entry.receipt = message.receipt
                    deliveries.append(message)
            elif deliveries:
                message = deliveries[arg % len(deliveries)]
                if not is_current(message):
                    stale(op, message)
                elif op == "ack":
                    queue.ack(message)
                    del model[message.id]
                elif op == "extend":
                    renewed = queue.extend_lease(message, LEASE)
                    assert renewed.leased_until == now + LEASE
                    model[message.id].available_at = now + LEASE
                else:
                    entry = model[message.id]
                    went = queue.release(message, error="retry me")
                    entry.receipt, entry.error_type = None, "Error"
                    if entry.attempts >= MAX_ATTEMPTS:
                        assert went is State.DEAD
                        entry.stored, entry.available_at = "dead", now
                    else:
                        assert went is State.READY
                        entry.stored, entry.available_at = "queued", now

            stats = queue.stats()
            assert (stats.ready, stats.delayed, stats.inflight, stats.dead) == expected_stats()
            for id_, entry in model.items():
                record = queue.inspect(id_)
                assert record.attempts >= attempts_seen.get(id_, 0), "attempts went down"
                attempts_seen[id_] = record.attempts
                assert record.attempts == entry.attempts
                assert record.state is entry.state(clock.now())
                if entry.stored == "dead":
                    assert record.last_error is not None
                    assert record.last_error.type == entry.error_type
                    if entry.error_type == "LeaseExpired":
                        assert record.attempts == MAX_ATTEMPTS

    # -- regression: state of a put whose delay is below the clock's resolution ------------

    def test_put_reports_ready_when_the_delay_is_below_clock_resolution(
        self, queue: PersistentQueue, clock: ManualClock
    ) -> None:
        message = queue.put("x", delay=1e-7)  # 1e-7 s is below a float's resolution at ~1.7e9
        assert message.available_at == clock.now()
        stats = queue.stats()
        assert (stats.ready, stats.delayed) == (1, 0)
        assert message.state is State.READY
