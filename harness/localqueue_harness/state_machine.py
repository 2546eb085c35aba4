"""A hypothesis state machine that checks a store against the contract model.

Rules put, put_many, claim, ack, release, dead-letter, extend, requeue, purge,
advance the injected clock, and reopen the store (a restart); after every
step the store's stats must equal the model's, and every message the model
holds must be in the store with the same state and attempt count. A failure
shrinks to a short sequence of these rules.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from localqueue.clock import ManualClock
from localqueue.store import ErrorInfo, Lease, MessageFilter, NewMessage, State, Store
from localqueue_harness.model import DEAD, Model, ModelMessage

QUEUE = "contract"
# A second queue with fixed contents: nothing done to QUEUE may touch it
# (claims, purges, requeues, dedupe keys are all per queue).
NEIGHBOUR = "contract-neighbour"
LEASE = 30.0
MAX_ATTEMPTS = 3

# Opens the store under test with this clock; called with None when the
# store refused an injected clock (ValueError naming the clock), to open it
# with its own for the checks that do not move time.
StoreOpener = Callable[[ManualClock | None], Store]

delays = st.sampled_from([0.0, 0.0, 5.0, 40.0])
# Small values make ties likely; the extremes check that all 32 bits are kept.
priorities = st.one_of(
    st.integers(min_value=-1, max_value=2), st.sampled_from([-(2**31), 2**31 - 1])
)
keys = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))


class StoreStateMachine(RuleBasedStateMachine):
    """Subclass with ``open_store`` set (see ``machine_for``)."""

    open_store: StoreOpener

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.store = type(self).open_store(self.clock)
        self.store.purge(QUEUE)  # a reused store starts empty
        self.store.purge(NEIGHBOUR)
        self.store.enqueue(
            NEIGHBOUR,
            [NewMessage(b'"kept"', dedupe_key="a"), NewMessage(b'"dead"', dedupe_key="b"),
             NewMessage(b'"far"', delay=10**7, dedupe_key="c")],
        )  # fmt: skip
        [held] = self.store.claim(NEIGHBOUR, worker_id="n", limit=1, lease_seconds=10**7).leased
        assert held.receipt is not None
        self.store.dead_letter(NEIGHBOUR, Lease(held.id, held.receipt))
        self.neighbour = {r.id: r for r in self.store.list_messages(NEIGHBOUR)}
        self.model = Model(max_attempts=MAX_ATTEMPTS)
        self.leases: list[Lease] = []  # every receipt ever handed out, current or stale
        self.counter = 0

    def teardown(self) -> None:
        self.store.close()

    # -- helpers -----------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def _payload(self) -> bytes:
        self.counter += 1
        return f'{{"n":{self.counter}}}'.encode()

    def _put(self, batch: list[tuple[float, int, str | None]]) -> None:
        news = [NewMessage(self._payload(), d, p, k) for d, p, k in batch]
        records, added = self.store.enqueue(QUEUE, news)
        assert len(records) == len(news), "enqueue must return one record per message"
        assert len(added) == len(news), "enqueue must say of each message whether it was added"
        now = self.now()
        for new, record, was_added in zip(news, records, added, strict=True):
            existing = self.model.live_key(new.dedupe_key)
            if existing is not None:
                assert record.id == existing.id, (
                    "a live dedupe key must return the existing message"
                )
                assert not was_added, "a dedupe hit must be reported as not added"
                continue
            assert was_added, "a new message must be reported as added"
            assert record.id not in self.model.messages, "ids are never reused"
            self.model.messages[record.id] = ModelMessage(
                record.id, new.payload, new.priority, now + new.delay, new.dedupe_key
            )

    # -- rules -------------------------------------------------------------

    @rule(delay=delays, priority=priorities, key=keys)
    def put(self, delay: float, priority: int, key: str | None) -> None:
        self._put([(delay, priority, key)])

    @rule(batch=st.lists(st.tuples(delays, priorities, keys), min_size=1, max_size=4))
    def put_many(self, batch: list[tuple[float, int, str | None]]) -> None:
        self._put(batch)

    @rule(limit=st.integers(min_value=1, max_value=3))
    def claim(self, limit: int) -> None:
        now = self.now()
        expected: list[ModelMessage] = []
        expected_dead: list[int] = []
        for message in self.model.claimable(now):
            if len(expected) == limit:
                break
            if message.leased and message.attempts >= MAX_ATTEMPTS:
                message.dead, message.leased, message.receipt = True, False, None
                message.error = None  # the store's own LeaseExpired error; checked below
                message.expired = True
                expected_dead.append(message.id)
                continue
            expected.append(message)
        records, dead = self.store.claim(
            QUEUE, worker_id="w", limit=limit, lease_seconds=LEASE, max_attempts=MAX_ATTEMPTS
        )
        assert sorted(r.id for r in records) == sorted(m.id for m in expected), (
            "claim must lease the first messages in delivery order"
        )
        assert [(r.priority, r.id) for r in records] == sorted(
            ((r.priority, r.id) for r in records), key=lambda pair: (-pair[0], pair[1])
        ), "claim must return its leases sorted by priority (highest first), then id"
        assert sorted(r.id for r in dead) == sorted(expected_dead), (
            "claim must report exactly the expired leases on their last attempt it dead-lettered"
        )
        assert all(r.state is State.DEAD for r in dead), "a dead-lettered record is DEAD"
        for record in records:
            message = self.model.messages[record.id]
            assert record.attempts == message.attempts + 1, "each delivery counts one attempt"
            assert record.payload == message.payload, "claim must return the stored payload"
            assert record.priority == message.priority
            assert record.state is State.INFLIGHT and record.leased_until == now + LEASE
            assert record.receipt and all(record.receipt != lease.receipt for lease in self.leases)
            message.attempts += 1
            message.leased, message.receipt = True, record.receipt
            message.available_at = now + LEASE
            self.leases.append(Lease(record.id, record.receipt))

    def _snapshot(self, message_id: int) -> object:
        return self.store.get(QUEUE, message_id)

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        batch = data.draw(st.lists(st.sampled_from(self.leases), min_size=1, max_size=3))
        now = self.now()
        expected_stale: list[Lease] = []
        acked: set[int] = set()
        for lease in batch:  # the store acks in order: a repeat finds its lease gone
            live = self.model.current(lease.id, lease.receipt, now)
            if live is None or lease.id in acked:
                expected_stale.append(lease)
            else:
                acked.add(lease.id)
        untouched = {lease.id: self._snapshot(lease.id) for lease in expected_stale
                     if lease.id not in acked}  # fmt: skip
        stale = self.store.ack(QUEUE, batch)
        assert stale == expected_stale, "exactly the stale receipts must be refused"
        for message_id, before in untouched.items():
            assert self._snapshot(message_id) == before, "a refused ack changes nothing"
        for message_id in acked:
            del self.model.messages[message_id]

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), delay=delays)
    def release(self, data: st.DataObject, delay: float) -> None:
        lease = data.draw(st.sampled_from(self.leases))
        live = self.model.current(lease.id, lease.receipt, self.now())
        before = self._snapshot(lease.id)
        error = ErrorInfo("Released", f"release {self.counter}", None, self.now())
        done = self.store.release(QUEUE, lease, delay=delay, error=error)
        assert done is (live is not None)
        if live is None:
            assert self._snapshot(lease.id) == before, "a refused release changes nothing"
        else:
            live.leased, live.receipt, live.available_at = False, None, self.now() + delay
            live.error = error

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def dead_letter(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self.leases))
        live = self.model.current(lease.id, lease.receipt, self.now())
        before = self._snapshot(lease.id)
        error = ErrorInfo("Dead", f"dead {self.counter}", "tail", self.now())
        done = self.store.dead_letter(QUEUE, lease, error=error)
        assert done is (live is not None)
        if live is None:
            assert self._snapshot(lease.id) == before, "a refused dead_letter changes nothing"
        else:
            live.dead, live.leased, live.receipt = True, False, None
            live.error = error

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), seconds=st.sampled_from([10.0, 60.0]))
    def extend(self, data: st.DataObject, seconds: float) -> None:
        lease = data.draw(st.sampled_from(self.leases))
        live = self.model.current(lease.id, lease.receipt, self.now())
        before = self._snapshot(lease.id)
        until = self.store.extend(QUEUE, lease, seconds)
        assert (until is not None) is (live is not None)
        if live is None:
            assert self._snapshot(lease.id) == before, "a refused extend changes nothing"
        else:
            live.available_at = self.now() + seconds

    @rule(delay=st.sampled_from([0.0, 5.0]))
    def requeue_all(self, delay: float) -> None:
        ids = self.store.requeue(QUEUE, filter=MessageFilter(), delay=delay)
        expected = sorted(m.id for m in self.model.messages.values() if m.dead)
        assert sorted(ids) == expected
        for message_id in ids:
            message = self.model.messages[message_id]
            message.dead, message.attempts = False, 0
            message.available_at = self.now() + delay

    @rule(state=st.sampled_from(list(State)))
    def purge_dry_run(self, state: State) -> None:
        count = self.store.purge(QUEUE, state=state, dry_run=True)
        now = self.now()
        assert count == sum(1 for m in self.model.messages.values() if m.state(now) == state.value)

    @rule()
    def requeue_dry_run(self) -> None:
        ids = self.store.requeue(QUEUE, filter=MessageFilter(), dry_run=True)
        assert sorted(ids) == sorted(m.id for m in self.model.messages.values() if m.dead)

    @rule()
    def purge_dead(self) -> None:
        count = self.store.purge(QUEUE, state=State.DEAD)
        dead = [m.id for m in self.model.messages.values() if m.dead]
        assert count == len(dead)
        for message_id in dead:
            del self.model.messages[message_id]

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = type(self).open_store(self.clock)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.store.stats(QUEUE)
        expected = self.model.counts(self.now())
        found = {"ready": stats.ready, "delayed": stats.delayed, "inflight": stats.inflight,
                 "dead": stats.dead}  # fmt: skip
        assert found == expected, f"stats {found} != model {expected}"
        now = self.now()
        ready = [m.available_at for m in self.model.messages.values() if m.state(now) == "ready"]
        oldest = max(0.0, now - min(ready)) if ready else None
        assert stats.oldest_ready_age == oldest, "oldest_ready_age follows the oldest ready message"
        inflight = expected["inflight"]
        assert dict(stats.inflight_by_worker) == ({"w": inflight} if inflight else {})

    @invariant()
    def other_queues_are_untouched(self) -> None:
        now_records = {r.id: r for r in self.store.list_messages(NEIGHBOUR)}
        assert now_records == self.neighbour, "an operation on one queue changed another"
        assert not set(now_records) & set(self.model.messages)

    @invariant()
    def no_confirmed_message_is_lost(self) -> None:
        now = self.now()
        for message in self.model.messages.values():
            record = self.store.get(QUEUE, message.id)
            assert record is not None, f"message {message.id} was lost"
            assert record.payload == message.payload
            assert record.attempts == message.attempts, "attempts never change on their own"
            assert record.state.value == message.state(now)
            if message.state(now) == DEAD:
                assert record.failed_at is not None
            if message.error is not None:
                assert record.last_error == message.error, "the latest error is kept"
            if message.expired and message.dead:
                assert record.last_error is not None and record.last_error.type == "LeaseExpired"


def machine_for(
    open_store: StoreOpener, name: str = "StoreStateMachine"
) -> type[StoreStateMachine]:
    """A state machine class bound to a store opener (called again on reopen)."""
    return type(name, (StoreStateMachine,), {"open_store": staticmethod(open_store)})
