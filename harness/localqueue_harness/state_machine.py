"""A hypothesis state machine that checks a store against the contract model.

Rules put (one message or a batch), claim, settle (ack, release,
dead-letter or extend with a current, superseded or expired receipt, or a
lease presented on another queue), requeue and purge (with filters, limits
and dry runs), advance the injected clock, and reopen the store (a
restart); after every step the store's stats must equal the model's, and
every message the model holds must be in the store with the same state,
times and attempt count. A failure shrinks to a short sequence of these
rules.

Two modes. With an injected :class:`ManualClock` (the default) time moves
only when the ``advance`` rule moves it, so every time is compared exactly.
With the store's own clock (``machine_for(opener, own_clock=True)``, for a
store that refuses or ignores an injected clock) there is no ``advance``
rule: every delay and lease is long (days), so nothing comes due while the
machine runs, stale receipts come from claim, release (or ack, dead-letter)
and claim again, and each time a store reports is checked to lie between
the store clock's readings just before and just after the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from localqueue.clock import ManualClock
from localqueue.store import (
    ErrorInfo,
    FinishedCounts,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    Settlement,
    State,
    Store,
    all_stats,
    finished_by_queue,
    settle_and_claim,
)
from localqueue_harness.model import DEAD, INFLIGHT, READY, Model, ModelMessage

QUEUE = "contract"
# A second queue with fixed contents: nothing done to QUEUE may touch it
# (claims, purges, requeues, dedupe keys and fences are all per queue).
NEIGHBOUR = "contract-neighbour"
LEASE = 30.0
# Two attempts, so that a message reaches "exhausted" (claim, expire, claim,
# expire, claim) within a few steps and the exhausted paths come up often.
MAX_ATTEMPTS = 2
# On the store's own clock every positive duration is pushed this far out,
# so that nothing comes due while the machine runs.
FAR = 1_000_000.0

# Opens the store under test with this clock; called with None when the
# store refused an injected clock (ValueError naming the clock), to open it
# with its own.
StoreOpener = Callable[[ManualClock | None], Store]

T = TypeVar("T")

delays = st.sampled_from([0.0, 0.0, 5.0, 40.0])
# Small values make ties likely; the extremes check that all 32 bits are kept.
priorities = st.one_of(
    st.integers(min_value=-1, max_value=2), st.sampled_from([-(2**31), 2**31 - 1])
)
keys = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))
FENCED = ["ack", "release", "dead_letter", "extend"]


class StoreStateMachine(RuleBasedStateMachine):
    """Subclass with ``open_store`` set (see ``machine_for``)."""

    open_store: StoreOpener
    own_clock: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.clock: ManualClock | None = None if self.own_clock else ManualClock()
        self.store = type(self).open_store(self.clock)
        self.lease = FAR if self.own_clock else LEASE
        self.store.purge(QUEUE)  # a reused store starts empty
        self.store.purge(NEIGHBOUR)
        neighbours = self.store.enqueue(
            NEIGHBOUR,
            [NewMessage(b'"kept"', dedupe_key="a"), NewMessage(b'"dead"', dedupe_key="b"),
             NewMessage(b'"far"', delay=10**7, dedupe_key="c")],
        )  # fmt: skip
        leased = self.store.claim(NEIGHBOUR, worker_id="n", limit=1, lease_seconds=10**7).leased
        assert len(leased) == 1, "claim must lease one of the neighbour queue's ready messages"
        held = leased[0]
        assert held.receipt is not None, "every delivery has a receipt"
        self.store.dead_letter(NEIGHBOUR, Lease(held.id, held.receipt))
        self.neighbour = {r.id: r for r in self.store.list_messages(NEIGHBOUR)}
        self.model = Model(max_attempts=MAX_ATTEMPTS)
        self.leases: list[Lease] = []  # every receipt ever handed out, current or stale
        self.ids: set[int] = {r.id for r in neighbours.records}  # every id ever handed out
        self.counter = 0
        # Finished counts (a store that keeps them): the totals as this run
        # began, and what the model says finished since: [acked, dead-lettered].
        totals = finished_by_queue(self.store)
        self.finished_at_start = None if totals is None else self._finished_pair(totals)
        self.finished = [0, 0]

    @staticmethod
    def _finished_pair(totals: dict[str, FinishedCounts]) -> dict[str, tuple[int, int]]:
        return {
            name: (totals[name].acked, totals[name].dead_lettered) if name in totals else (0, 0)
            for name in (QUEUE, NEIGHBOUR)
        }

    def teardown(self) -> None:
        self.store.close()

    # -- helpers -----------------------------------------------------------

    def now(self) -> float:
        return self.clock.now() if self.clock is not None else self.store.clock.now()

    def seconds(self, amount: float) -> float:
        """A duration drawn for the manual clock, as this mode uses it."""
        return amount + FAR if self.own_clock and amount > 0 else amount

    def timed(self, call: Callable[[], T]) -> tuple[T, float, float]:
        """The result of ``call`` and the store-clock readings around it: the
        store's own "now" for the call lies between them (they are equal on
        an injected clock, so every check below is exact there)."""
        before = self.now()
        result = call()
        return result, before, self.now()

    def _payload(self) -> bytes:
        self.counter += 1
        return f'{{"n":{self.counter}}}'.encode()

    def _put(self, batch: list[tuple[float, int, str | None]]) -> None:
        news = [NewMessage(self._payload(), self.seconds(d), p, k) for d, p, k in batch]
        (records, added), before, after = self.timed(lambda: self.store.enqueue(QUEUE, news))
        assert len(records) == len(news), "enqueue must return one record per message"
        assert len(added) == len(news), "enqueue must say of each message whether it was added"
        for new, record, was_added in zip(news, records, added, strict=True):
            existing = self.model.live_key(new.dedupe_key)
            if existing is not None:
                assert record.id == existing.id, (
                    "a live dedupe key must return the existing message"
                )
                assert not was_added, "a dedupe hit must be reported as not added"
                continue
            assert was_added, "a new message must be reported as added"
            assert record.id not in self.ids, "ids are never reused"
            assert before + new.delay <= record.available_at <= after + new.delay, (
                "a put's available_at is the time of the put plus its delay"
            )
            self.ids.add(record.id)
            self.model.messages[record.id] = ModelMessage(
                record.id, new.payload, new.priority, record.available_at, new.dedupe_key
            )

    def _pick(self, data: st.DataObject) -> Lease:
        """A lease handed out earlier: current, superseded (its message was
        delivered again since, so a newer receipt is live) or any, so that
        every kind of stale receipt comes up often."""
        now = self.now()
        current = [
            lease
            for lease in self.leases
            if self.model.current(lease.id, lease.receipt, now) is not None
        ]
        superseded = [lease for lease in self.leases
                      if (m := self.model.messages.get(lease.id)) is not None
                      and m.leased and m.receipt != lease.receipt]  # fmt: skip
        # Current leases are listed twice: an operation that acts is where
        # errors must be kept and attempts counted, so it comes up half the time.
        pools = [pool for pool in (current, current, superseded, self.leases) if pool]
        pool = pools[data.draw(st.integers(min_value=0, max_value=len(pools) - 1))]
        return data.draw(st.sampled_from(pool))

    def _untouched(self, lease: Lease) -> object:
        return self.store.get(QUEUE, lease.id)

    # -- rules -------------------------------------------------------------

    @initialize(
        batch=st.lists(st.tuples(delays, priorities, keys), min_size=2, max_size=5),
        one_dead=st.booleans(),
    )
    def first_puts(self, batch: list[tuple[float, int, str | None]], one_dead: bool) -> None:
        """Every run starts with messages, so that no run is spent on an empty
        queue, and half start with a dead letter too, so that requeue, purge
        and their dry runs have one to act on from the first step."""
        self._put(batch)
        if one_dead:
            self.claim(1)
            live = [m for m in self.model.messages.values() if m.leased]
            for message in live:
                assert message.receipt is not None, "the model keeps a leased message's receipt"
                assert self.store.dead_letter(QUEUE, Lease(message.id, message.receipt)), (
                    "dead_letter must act on the lease a claim just handed out"
                )
                message.dead, message.leased, message.receipt = True, False, None
                self.finished[1] += 1

    @rule(batch=st.lists(st.tuples(delays, priorities, keys), min_size=1, max_size=4))
    def put(self, batch: list[tuple[float, int, str | None]]) -> None:
        self._put(batch)

    @rule(limit=st.integers(min_value=1, max_value=3))
    def claim(self, limit: int) -> None:
        expected, expected_dead = self._expected_claim(limit)
        (records, dead), before, after = self.timed(
            lambda: self.store.claim(
                QUEUE, worker_id="w", limit=limit, lease_seconds=self.lease,
                max_attempts=MAX_ATTEMPTS,
            )
        )  # fmt: skip
        self._check_claim(limit, records, dead, expected, expected_dead, before, after)

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), limit=st.integers(min_value=1, max_value=3))
    def ack_and_claim(self, data: st.DataObject, limit: int) -> None:
        """Acks and the next claim in one operation (``settle_and_claim``, or
        the kit's default for a store without it): what a batch worker does."""
        batch = [self._pick(data) for _ in range(data.draw(st.integers(1, 3)))]
        expected_stale, acked, untouched = self._expected_acks(batch)
        # The acks apply first; a claim follows only if none was stale.
        for message_id in acked:
            del self.model.messages[message_id]
        self.finished[0] += len(acked)
        expected, expected_dead = self._expected_claim(limit) if not expected_stale else ([], [])
        result, before, after = self.timed(
            lambda: settle_and_claim(
                self.store, QUEUE, [Settlement(lease) for lease in batch], worker_id="w",
                limit=limit, lease_seconds=self.lease, max_attempts=MAX_ATTEMPTS,
            )
        )  # fmt: skip
        # Worded as the ack rule's check: the same clause, the same failure.
        assert result.stale == expected_stale, (
            "exactly the stale receipts must be refused (settle_and_claim)"
        )
        for message_id, before_record in untouched.items():
            assert self.store.get(QUEUE, message_id) == before_record, (
                "a refused settlement changes nothing"
            )
        records, dead = result.claimed
        if expected_stale:
            assert (records, dead) == ([], []), (
                "settle_and_claim must claim nothing when a settlement was stale"
            )
            return
        self._check_claim(limit, records, dead, expected, expected_dead, before, after)

    def _expected_claim(self, limit: int) -> tuple[list[ModelMessage], list[int]]:
        """What a claim of ``limit`` must lease and dead-letter now (the
        model is updated for the dead-lettered ones)."""
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
                self.finished[1] += 1
                continue
            expected.append(message)
        return expected, expected_dead

    def _check_claim(
        self,
        limit: int,
        records: list[MessageRecord],
        dead: list[MessageRecord],
        expected: list[ModelMessage],
        expected_dead: list[int],
        before: float,
        after: float,
    ) -> None:
        assert len(records) <= limit, "claim must lease at most limit messages"
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
            assert record.priority == message.priority, "claim must return the stored priority"
            assert record.state is State.INFLIGHT and record.leased_until is not None, (
                "a claimed message is INFLIGHT, with leased_until set"
            )
            assert before + self.lease <= record.leased_until <= after + self.lease, (
                "a lease ends lease_seconds after the claim"
            )
            assert record.receipt and all(
                record.receipt != lease.receipt for lease in self.leases
            ), "every delivery has a receipt never handed out before"
            message.attempts += 1
            message.leased, message.receipt = True, record.receipt
            message.available_at = record.leased_until
            self.leases.append(Lease(record.id, record.receipt))

    @precondition(lambda self: self.leases)
    @rule(
        data=st.data(),
        operation=st.sampled_from([*FENCED, "elsewhere"]),
        delay=delays,
        with_error=st.booleans(),
        seconds=st.sampled_from([10.0, 60.0]),
    )
    def settle(
        self, data: st.DataObject, operation: str, delay: float, with_error: bool, seconds: float
    ) -> None:
        """One fenced operation with a lease handed out earlier (current or
        stale); ``elsewhere`` presents it on another queue."""
        if operation == "ack":
            self._ack(data)
        elif operation == "release":
            self._release(data, delay, with_error)
        elif operation == "dead_letter":
            self._dead_letter(data, with_error)
        elif operation == "extend":
            self._extend(data, seconds)
        else:
            self._elsewhere(data, data.draw(st.sampled_from(FENCED)))

    # Weights: hypothesis draws among the rules evenly (after switching a
    # random subset off for each run), and claims and fenced operations are
    # where stores go wrong: each is listed three times.
    claim_again = claim
    claim_thrice = claim
    settle_again = settle
    settle_thrice = settle

    def _expected_acks(self, batch: list[Lease]) -> tuple[list[Lease], set[int], dict[int, object]]:
        """The leases of ``batch`` an ack must refuse, the ids it must delete,
        and the records of refused ones as they are now (to check that a
        refusal changed nothing)."""
        now = self.now()
        expected_stale: list[Lease] = []
        acked: set[int] = set()
        for lease in batch:  # the store acks in order: a repeat finds its lease gone
            live = self.model.current(lease.id, lease.receipt, now)
            if live is None or lease.id in acked:
                expected_stale.append(lease)
            else:
                acked.add(lease.id)
        untouched = {lease.id: self._untouched(lease) for lease in expected_stale
                     if lease.id not in acked}  # fmt: skip
        return expected_stale, acked, untouched

    def _ack(self, data: st.DataObject) -> None:
        batch = [self._pick(data) for _ in range(data.draw(st.integers(1, 3)))]
        expected_stale, acked, untouched = self._expected_acks(batch)
        stale = self.store.ack(QUEUE, batch)
        assert stale == expected_stale, "exactly the stale receipts must be refused"
        for message_id, before in untouched.items():
            assert self.store.get(QUEUE, message_id) == before, "a refused ack changes nothing"
        for message_id in acked:
            del self.model.messages[message_id]
        self.finished[0] += len(acked)

    def _release(self, data: st.DataObject, delay: float, with_error: bool) -> None:
        lease = self._pick(data)
        live = self.model.current(lease.id, lease.receipt, self.now())
        before_record = self._untouched(lease)
        error = ErrorInfo("Released", f"release {self.counter}", None, self.now())
        seconds = self.seconds(delay)
        done, before, after = self.timed(
            lambda: self.store.release(
                QUEUE, lease, delay=seconds, error=error if with_error else None
            )
        )
        assert done is (live is not None), "release must act exactly on a current lease"
        if live is None:
            assert self._untouched(lease) == before_record, "a refused release changes nothing"
            return
        record = self.store.get(QUEUE, lease.id)
        assert record is not None, f"message {lease.id} was lost by a release"
        assert before + seconds <= record.available_at <= after + seconds, (
            "a released message is available its delay after the release"
        )
        live.leased, live.receipt, live.available_at = False, None, record.available_at
        if with_error:
            live.error = error  # without one, the previous error is kept

    def _dead_letter(self, data: st.DataObject, with_error: bool) -> None:
        lease = self._pick(data)
        live = self.model.current(lease.id, lease.receipt, self.now())
        before = self._untouched(lease)
        error = ErrorInfo("Dead", f"dead {self.counter}", "tail", self.now())
        done = self.store.dead_letter(QUEUE, lease, error=error if with_error else None)
        assert done is (live is not None), "dead_letter must act exactly on a current lease"
        if live is None:
            assert self._untouched(lease) == before, "a refused dead_letter changes nothing"
        else:
            live.dead, live.leased, live.receipt = True, False, None
            self.finished[1] += 1
            if with_error:
                live.error = error  # without one, the previous error is kept

    def _extend(self, data: st.DataObject, seconds: float) -> None:
        lease = self._pick(data)
        live = self.model.current(lease.id, lease.receipt, self.now())
        before_record = self._untouched(lease)
        seconds = self.seconds(seconds)
        until, before, after = self.timed(lambda: self.store.extend(QUEUE, lease, seconds))
        assert (until is not None) is (live is not None), (
            "extend must act exactly on a current lease"
        )
        if live is None:
            assert self._untouched(lease) == before_record, "a refused extend changes nothing"
        else:
            assert until is not None and before + seconds <= until <= after + seconds, (
                "extend sets the lease to end seconds from now and returns that end"
            )
            live.available_at = until

    def _elsewhere(self, data: st.DataObject, operation: str) -> None:
        """A lease presented on another queue is stale there, current or not."""
        lease = self._pick(data)
        before = self._untouched(lease)
        if operation == "ack":
            assert self.store.ack(NEIGHBOUR, [lease]) == [lease], "ack on another queue"
        elif operation == "release":
            assert self.store.release(NEIGHBOUR, lease) is False, "release on another queue"
        elif operation == "dead_letter":
            assert self.store.dead_letter(NEIGHBOUR, lease) is False, "dead_letter elsewhere"
        else:
            assert self.store.extend(NEIGHBOUR, lease, 10.0) is None, "extend on another queue"
        assert self._untouched(lease) == before, "a lease refused on another queue changes nothing"

    def _id_filter(self, data: st.DataObject) -> list[int] | None:
        pool = sorted(self.ids)
        return data.draw(
            st.one_of(st.none(), st.lists(st.sampled_from(pool), max_size=3)) if pool
            else st.none()
        )  # fmt: skip

    @rule(
        data=st.data(),
        delay=st.sampled_from([0.0, 5.0]),
        limit=st.sampled_from([None, None, 1, 2]),
        dry_run=st.booleans(),
    )
    def requeue(self, data: st.DataObject, delay: float, limit: int | None, dry_run: bool) -> None:
        ids = self._id_filter(data)
        seconds = self.seconds(delay)
        listed = self.store.list_messages(QUEUE)
        moved, before, after = self.timed(
            lambda: self.store.requeue(
                QUEUE, filter=MessageFilter(ids=ids), delay=seconds, dry_run=dry_run, limit=limit
            )
        )
        dead = sorted(m.id for m in self.model.messages.values()
                      if m.dead and (ids is None or m.id in ids))  # fmt: skip
        assert moved == dead[:limit], (
            "requeue moves the matching dead letters, lowest id first, at most limit"
        )
        if dry_run:
            assert self.store.list_messages(QUEUE) == listed, "a dry run changes nothing"
            return
        for message_id in moved:
            record = self.store.get(QUEUE, message_id)
            assert record is not None, f"message {message_id} was lost by a requeue"
            assert before + seconds <= record.available_at <= after + seconds, (
                "a requeued message is available its delay after the requeue"
            )
            message = self.model.messages[message_id]
            message.dead, message.attempts = False, 0
            message.available_at = record.available_at

    @rule(
        data=st.data(),
        state=st.sampled_from([State.DEAD, State.DEAD, State.READY, State.DELAYED,
                               State.INFLIGHT, None]),
        dry_run=st.booleans(),
    )  # fmt: skip
    def purge(self, data: st.DataObject, state: State | None, dry_run: bool) -> None:
        ids = self._id_filter(data)
        now = self.now()
        listed = self.store.list_messages(QUEUE)
        count = self.store.purge(QUEUE, state=state, filter=MessageFilter(ids=ids), dry_run=dry_run)
        doomed = [m.id for m in self.model.messages.values()
                  if (state is None or m.state(now) == state.value)
                  and (ids is None or m.id in ids)]  # fmt: skip
        assert count == len(doomed), "purge counts exactly the matching messages"
        if dry_run:
            assert self.store.list_messages(QUEUE) == listed, "a dry run changes nothing"
            return
        for message_id in doomed:
            del self.model.messages[message_id]  # its dedupe key is free again

    @precondition(lambda self: not self.own_clock)
    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0, 61.0]))  # half outlast a lease
    def advance(self, seconds: float) -> None:
        assert self.clock is not None, "time moves only on an injected clock"
        self.clock.advance(seconds)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = type(self).open_store(self.clock)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def stats_match_the_model(self) -> None:
        stats, before, after = self.timed(lambda: self.store.stats(QUEUE))
        expected = self.model.counts(before)
        found = {"ready": stats.ready, "delayed": stats.delayed, "inflight": stats.inflight,
                 "dead": stats.dead}  # fmt: skip
        assert found == expected, f"stats {found} != model {expected}"
        ready = [m.available_at for m in self.model.messages.values()
                 if m.state(before) == READY]  # fmt: skip
        if not ready:
            assert stats.oldest_ready_age is None, "no ready message, no oldest_ready_age"
        else:
            oldest = min(ready)
            assert stats.oldest_ready_age is not None and (
                max(0.0, before - oldest) <= stats.oldest_ready_age <= max(0.0, after - oldest)
            ), "oldest_ready_age follows the oldest ready message"
        inflight = expected["inflight"]
        assert dict(stats.inflight_by_worker) == ({"w": inflight} if inflight else {}), (
            f"stats inflight_by_worker {dict(stats.inflight_by_worker)} must count the "
            f"{inflight} inflight messages under the worker that claimed them"
        )

    @invariant()
    def every_queues_stats_match_one_queues(self) -> None:
        # all_stats is a store's fast path for counting every queue at once
        # (kept counts where it has them); it must say what stats says.
        every = {s.queue: s for s in all_stats(self.store)}
        names = self.store.queues()
        assert sorted(every) == names, f"all_stats covers {sorted(every)}, queues() {names}"
        assert (QUEUE in every) == bool(self.model.messages), "a queue holding messages is listed"
        for name, found in every.items():
            alone = self.store.stats(name)
            assert (found.ready, found.delayed, found.inflight, found.dead) == (
                alone.ready, alone.delayed, alone.inflight, alone.dead,
            ), f"all_stats {found} != stats {alone}"  # fmt: skip

    @invariant()
    def finished_counts_follow_acks_and_dead_letters(self) -> None:
        # A store that keeps finished counts (for throughput) must add
        # exactly the acks and dead-letters, in any form, and nothing for a
        # purge, a requeue or a refused operation.
        if self.finished_at_start is None:
            return
        totals = finished_by_queue(self.store)
        assert totals is not None, "a store that kept finished counts keeps them after every step"
        now = self._finished_pair(totals)
        start = self.finished_at_start
        found = [now[QUEUE][0] - start[QUEUE][0], now[QUEUE][1] - start[QUEUE][1]]
        assert found == self.finished, (
            f"finished counts grew by {found} (acked, dead-lettered) since the run began; "
            f"the operations acked and dead-lettered {self.finished}"
        )
        assert now[NEIGHBOUR] == start[NEIGHBOUR], (
            "an operation on one queue changed another's finished counts"
        )

    @invariant()
    def other_queues_are_untouched(self) -> None:
        now_records = {r.id: r for r in self.store.list_messages(NEIGHBOUR)}
        assert now_records == self.neighbour, "an operation on one queue changed another"
        assert not set(now_records) & set(self.model.messages), (
            "a message of one queue showed up in another"
        )

    @invariant()
    def no_confirmed_message_is_lost(self) -> None:
        now = self.now()
        for message in self.model.messages.values():
            record = self.store.get(QUEUE, message.id)
            assert record is not None, f"message {message.id} was lost"
            assert record.payload == message.payload, "a message keeps its payload"
            assert (record.priority, record.dedupe_key) == (
                message.priority, message.dedupe_key,
            ), "a message keeps its priority and dedupe key"  # fmt: skip
            assert record.attempts == message.attempts, "attempts never change on their own"
            state = message.state(now)
            assert record.state.value == state, (
                f"message {message.id} must be {state}, not {record.state.value}"
            )
            if state == DEAD:
                assert record.failed_at is not None, "a dead letter has failed_at"
            else:
                assert record.failed_at is None, "only a dead letter has failed_at"
                assert record.available_at == message.available_at, (
                    "available_at is the time the message becomes (or became) claimable"
                )
            if state == INFLIGHT:
                assert record.leased_until == record.available_at, "leased_until is available_at"
                assert record.leased_by == "w", "leased_by names the claiming worker"
            else:
                assert record.leased_until is None and record.receipt is None, (
                    "only an inflight message shows a lease"
                )
            if message.error is not None:
                assert record.last_error == message.error, "the latest error is kept"
            if message.expired and message.dead:
                assert record.last_error is not None and record.last_error.type == "LeaseExpired", (
                    "a message dead-lettered because its last lease expired says LeaseExpired"
                )


def machine_for(
    open_store: StoreOpener, name: str = "StoreStateMachine", *, own_clock: bool = False
) -> type[StoreStateMachine]:
    """A state machine class bound to a store opener (called again on reopen).

    ``own_clock=True`` opens the store with ``open_store(None)`` and runs
    without the ``advance`` rule, for a store that keeps its own time.
    """
    return type(
        name,
        (StoreStateMachine,),
        {"open_store": staticmethod(open_store), "own_clock": own_clock},
    )
