"""The harness proves it can fail: stores broken on purpose, each in exactly
one clause of the delivery contract, and every one caught.

Each mutant is a thin wrapper over a correct store (the memory store, and
the SQLite store where the wrapper only uses the protocol), and names the
checks that must catch it: the state machine (bounded, derandomized, no
shrinking) or single StoreContract / QueueContract tests, called directly.
The unmutated stores pass every one of those checks, so a check that fails
everything does not count. docs/harness.md ("Mutants") lists them.
"""

from __future__ import annotations

import inspect
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from localqueue import PersistentQueue
from localqueue.clock import Clock, ManualClock
from localqueue.store import (
    DEAD,
    INFLIGHT,
    ClaimResult,
    EnqueueResult,
    ErrorInfo,
    Lease,
    MessageRecord,
    NewMessage,
    QueueStats,
    Store,
    all_stats,
    batch_order,
    delivery_order,
    exhausted_error,
    new_receipt,
)
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore
from localqueue_harness import QueueContract, StoreContract, StoreOpener, machine_for
from localqueue_harness.contract import opened
from localqueue_harness.queue_fixtures import LEASE, MAX_ATTEMPTS, fresh

# -- the base stores --------------------------------------------------------------------

Wrap = Callable[[Store], Store]


def memory_opener(wrap: Wrap | None = None, cls: type[MemoryStore] = MemoryStore) -> StoreOpener:
    name = f"memory://mutant-{uuid.uuid4().hex}"  # opening the name again is a restart

    def opener(clock: ManualClock | None) -> Store:
        store = cls(name, clock=clock)
        return store if wrap is None else wrap(store)

    return opener


def sqlite_opener(tmp_path: Path, wrap: Wrap | None = None) -> StoreOpener:
    path = tmp_path / f"{uuid.uuid4().hex}.sqlite3"

    def opener(clock: ManualClock | None) -> Store:
        store = SQLiteStore(path, clock=clock)
        return store if wrap is None else wrap(store)

    return opener


class Delegating:
    """A store that passes every call to ``inner``; a mutant overrides one."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.clock: Clock = inner.clock
        self.url = inner.url

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        return self.inner.enqueue(queue, messages)

    def claim(self, queue: str, **kw: Any) -> ClaimResult:
        return self.inner.claim(queue, **kw)

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        return self.inner.ack(queue, leases)

    def release(self, queue: str, lease: Lease, **kw: Any) -> bool:
        return self.inner.release(queue, lease, **kw)

    def dead_letter(self, queue: str, lease: Lease, **kw: Any) -> bool:
        return self.inner.dead_letter(queue, lease, **kw)

    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        return self.inner.extend(queue, lease, seconds)

    def requeue(self, queue: str, **kw: Any) -> list[int]:
        return self.inner.requeue(queue, **kw)

    def get(self, queue: str, message_id: int) -> MessageRecord | None:
        return self.inner.get(queue, message_id)

    def list_messages(self, queue: str, **kw: Any) -> list[MessageRecord]:
        return self.inner.list_messages(queue, **kw)

    def stats(self, queue: str) -> QueueStats:
        return self.inner.stats(queue)

    def queues(self) -> list[str]:
        return self.inner.queues()

    def purge(self, queue: str, **kw: Any) -> int:
        return self.inner.purge(queue, **kw)

    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        self.inner.record_heartbeat(queue, worker_id, stopped=stopped)

    def wait(self, queue: str, timeout: float) -> None:
        self.inner.wait(queue, timeout)

    def check(self) -> list[str]:
        return self.inner.check()

    def close(self) -> None:
        self.inner.close()

    # -- helpers for mutants -------------------------------------------------------

    def current_lease(self, queue: str, lease: Lease) -> Lease:
        """The message's live receipt in place of the one given: a fence that
        checks the id but not the receipt."""
        record = self.inner.get(queue, lease.id)
        return (
            lease if record is None or record.receipt is None else Lease(lease.id, record.receipt)
        )


# -- mutants over the protocol (memory and SQLite alike) ---------------------------------


class AckIgnoresReceipt(Delegating):
    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        return self.inner.ack(queue, [self.current_lease(queue, lease) for lease in leases])


class ReleaseIgnoresReceipt(Delegating):
    def release(self, queue: str, lease: Lease, **kw: Any) -> bool:
        return self.inner.release(queue, self.current_lease(queue, lease), **kw)


class ExtendIgnoresReceipt(Delegating):
    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        return self.inner.extend(queue, self.current_lease(queue, lease), seconds)


class DeadLetterIgnoresReceipt(Delegating):
    def dead_letter(self, queue: str, lease: Lease, **kw: Any) -> bool:
        return self.inner.dead_letter(queue, self.current_lease(queue, lease), **kw)


class ClaimsOneTooMany(Delegating):
    def claim(self, queue: str, **kw: Any) -> ClaimResult:
        return self.inner.claim(queue, **{**kw, "limit": kw["limit"] + 1})


class ListIgnoresLimit(Delegating):
    def list_messages(self, queue: str, **kw: Any) -> list[MessageRecord]:
        return self.inner.list_messages(queue, **{**kw, "limit": None})


class RequeueIgnoresLimit(Delegating):
    def requeue(self, queue: str, **kw: Any) -> list[int]:
        return self.inner.requeue(queue, **{**kw, "limit": None})


class PutIgnoresDelay(Delegating):
    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        return self.inner.enqueue(queue, [m._replace(delay=0.0) for m in messages])


class ReleaseIgnoresDelay(Delegating):
    def release(self, queue: str, lease: Lease, **kw: Any) -> bool:
        return self.inner.release(queue, lease, **{**kw, "delay": 0.0})


class RequeueIgnoresDelay(Delegating):
    def requeue(self, queue: str, **kw: Any) -> list[int]:
        return self.inner.requeue(queue, **{**kw, "delay": 0.0})


class IgnoresDedupeKeys(Delegating):
    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        return self.inner.enqueue(queue, [m._replace(dedupe_key=None) for m in messages])


class KeepsKeysForever(Delegating):
    """Remembers the keys of messages that left (acked, or purged): a put with
    one returns the old record and adds nothing, as a "seen" list would."""

    on_ack = True

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.gone: dict[tuple[str, str], MessageRecord] = {}

    def _remember(self, queue: str, records: Sequence[MessageRecord | None]) -> None:
        for record in records:
            if record is not None and record.dedupe_key is not None:
                self.gone[(queue, record.dedupe_key)] = record

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        before = {lease.id: self.inner.get(queue, lease.id) for lease in leases}
        stale = self.inner.ack(queue, leases)
        if self.on_ack:
            self._remember(queue, [before[lease.id] for lease in leases if lease not in stale])
        return stale

    def purge(self, queue: str, **kw: Any) -> int:
        if not self.on_ack and not kw.get("dry_run"):
            self._remember(
                queue,
                self.inner.list_messages(queue, state=kw.get("state"), filter=kw.get("filter")),
            )
        return self.inner.purge(queue, **kw)

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        seen = [None if m.dedupe_key is None else self.gone.get((queue, m.dedupe_key))
                for m in messages]  # fmt: skip
        result = self.inner.enqueue(
            queue, [m for m, old in zip(messages, seen, strict=True) if old is None]
        )
        fresh_records, fresh_added = iter(result.records), iter(result.added)
        records, added = [], []
        for old in seen:
            records.append(next(fresh_records) if old is None else old)
            added.append(next(fresh_added) if old is None else False)
        return EnqueueResult(records, added)


class KeepsKeysAfterPurge(KeepsKeysForever):
    on_ack = False


class PurgeDryRunDeletes(Delegating):
    def purge(self, queue: str, **kw: Any) -> int:
        return self.inner.purge(queue, **{**kw, "dry_run": False})


class RequeueDryRunMoves(Delegating):
    def requeue(self, queue: str, **kw: Any) -> list[int]:
        return self.inner.requeue(queue, **{**kw, "dry_run": False})


class PurgeDryRunCountsEveryState(Delegating):
    def purge(self, queue: str, **kw: Any) -> int:
        return self.inner.purge(queue, **({**kw, "state": None} if kw.get("dry_run") else kw))


class PurgeIgnoresFilter(Delegating):
    def purge(self, queue: str, **kw: Any) -> int:
        return self.inner.purge(queue, **{**kw, "filter": None})


class RequeueIgnoresFilter(Delegating):
    def requeue(self, queue: str, **kw: Any) -> list[int]:
        return self.inner.requeue(queue, **{**kw, "filter": None})


class PagesFromAfterId(Delegating):
    """after_id off by one: a page starts at after_id instead of after it."""

    def list_messages(self, queue: str, **kw: Any) -> list[MessageRecord]:
        after = kw.get("after_id")
        return self.inner.list_messages(
            queue, **{**kw, "after_id": None if after is None else after - 1}
        )


class HandsOutExhaustedLeases(Delegating):
    def claim(self, queue: str, **kw: Any) -> ClaimResult:
        return self.inner.claim(queue, **{**kw, "max_attempts": None})


class ReleaseDropsError(Delegating):
    def release(self, queue: str, lease: Lease, **kw: Any) -> bool:
        return self.inner.release(queue, lease, **{**kw, "error": None})


class DeadLetterDropsError(Delegating):
    def dead_letter(self, queue: str, lease: Lease, **kw: Any) -> bool:
        return self.inner.dead_letter(queue, lease, **{**kw, "error": None})


class StatsCountDelayedAsReady(Delegating):
    def stats(self, queue: str) -> QueueStats:
        s = self.inner.stats(queue)
        return replace(s, ready=s.ready + s.delayed, delayed=0)


class AllStatsLeavesOutDeadOnlyQueues(Delegating):
    def all_stats(self) -> list[QueueStats]:
        return [s for s in all_stats(self.inner) if s.total > s.dead]


class AllStatsMissesTheClock(Delegating):
    """Counts as if no time passed since the first call (a stale cache)."""

    cached: list[QueueStats] | None = None

    def all_stats(self) -> list[QueueStats]:
        if self.cached is None:
            self.cached = all_stats(self.inner)
        return self.cached


class IgnoresHeartbeats(Delegating):
    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        pass


class IgnoresStoppedHeartbeats(Delegating):
    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        if not stopped:
            self.inner.record_heartbeat(queue, worker_id)


class ReportsEveryPutAdded(Delegating):
    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        result = self.inner.enqueue(queue, messages)
        return EnqueueResult(result.records, [True] * len(result.added))


class FixedLeaseLength(Delegating):
    def claim(self, queue: str, **kw: Any) -> ClaimResult:
        return self.inner.claim(queue, **{**kw, "lease_seconds": 60.0})


class ExtendsTwice(Delegating):
    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        return self.inner.extend(queue, lease, seconds * 2)


# -- mutants inside the memory store -------------------------------------------------------


class ClaimVariant(MemoryStore):
    """The memory store's claim with one knob turned (see the subclasses)."""

    def order(self, row: Any) -> tuple[float, ...]:
        return delivery_order(row)

    def due(self, available_at: float, now: float) -> bool:
        return available_at <= now

    sort_batch = True
    count_attempts = True

    def claim(
        self, queue: str, *, worker_id: str, limit: int, lease_seconds: float,
        max_attempts: int | None = None,
    ) -> ClaimResult:  # fmt: skip
        with self._data.changed:
            now = self.clock.now()
            due = [r for r in self._queue_rows(queue)
                   if r.stored != DEAD and self.due(r.available_at, now)]  # fmt: skip
            out: list[MessageRecord] = []
            dead: list[MessageRecord] = []
            for row in sorted(due, key=self.order):
                if len(out) >= limit:
                    break
                expired = row.stored == INFLIGHT
                if expired and max_attempts is not None and row.attempts >= max_attempts:
                    row.stored, row.failed_at = DEAD, now
                    row.receipt = row.leased_by = None
                    row.last_error = exhausted_error(row.attempts, now)
                    dead.append(row.record(now))
                    continue
                row.stored, row.available_at = INFLIGHT, now + lease_seconds
                row.attempts = row.attempts + 1 if self.count_attempts else 1
                row.leased_by, row.receipt = worker_id, new_receipt()
                out.append(row.record(now, reclaimed=expired))
            if self.sort_batch:
                out.sort(key=batch_order)
            return ClaimResult(out, dead)


class IgnoresPriority(ClaimVariant):
    def order(self, row: Any) -> tuple[float, ...]:
        return (row.available_at, row.id)


class NewestFirst(ClaimVariant):
    def order(self, row: Any) -> tuple[float, ...]:
        return (-row.priority, -row.available_at, -row.id)


class BatchInDeliveryOrder(ClaimVariant):
    sort_batch = False


class DelayEndsOneTickLate(ClaimVariant):
    def due(self, available_at: float, now: float) -> bool:
        return available_at < now


class CountsFirstAttemptOnly(ClaimVariant):
    count_attempts = False


class FenceIgnoresExpiry(MemoryStore):
    def _current(self, queue: str, lease: Lease, now: float) -> Any:
        return super()._current(queue, lease, -float("inf"))


class LeaseEndsOneTickLate(MemoryStore):
    def _current(self, queue: str, lease: Lease, now: float) -> Any:
        # held at exactly leased_until
        return super()._current(queue, lease, math.nextafter(now, -math.inf))


class FenceIgnoresQueue(MemoryStore):
    def _current(self, queue: str, lease: Lease, now: float) -> Any:
        row = self._data.rows.get(lease.id)
        return None if row is None else super()._current(row.queue, lease, now)


class FreesKeyWhenDead(MemoryStore):
    def dead_letter(self, queue: str, lease: Lease, *, error: ErrorInfo | None = None) -> bool:
        row = self._data.rows.get(lease.id)
        done = super().dead_letter(queue, lease, error=error)
        if done and row is not None and row.dedupe_key is not None:
            self._data.dedupe.pop((queue, row.dedupe_key), None)
        return done


class FreesKeyWhenLeased(MemoryStore):
    def claim(self, queue: str, **kw: Any) -> ClaimResult:
        result = super().claim(queue, **kw)
        for record in result.leased:
            if record.dedupe_key is not None:
                self._data.dedupe.pop((queue, record.dedupe_key), None)
        return result


class ReleaseResetsAttempts(MemoryStore):
    def release(self, queue: str, lease: Lease, **kw: Any) -> bool:
        done = super().release(queue, lease, **kw)
        if done:
            self._data.rows[lease.id].attempts = 0
        return done


class ReleaseErasesError(MemoryStore):
    def release(self, queue: str, lease: Lease, **kw: Any) -> bool:
        done = super().release(queue, lease, **kw)
        if done:
            self._data.rows[lease.id].last_error = kw.get("error")
        return done


class RequeueKeepsAttempts(MemoryStore):
    def requeue(self, queue: str, **kw: Any) -> list[int]:
        attempts = {row.id: row.attempts for row in self._data.rows.values()}
        moved = super().requeue(queue, **kw)
        for message_id in moved:
            self._data.rows[message_id].attempts = attempts[message_id]
        return moved


class RequeueKeepsFailedAt(MemoryStore):
    def requeue(self, queue: str, **kw: Any) -> list[int]:
        failed = {row.id: row.failed_at for row in self._data.rows.values()}
        moved = super().requeue(queue, **kw)
        for message_id in moved:
            self._data.rows[message_id].failed_at = failed[message_id]
        return moved


class ReusesIds(MemoryStore):
    """Takes the next id from the highest live one: an acked top id comes back."""

    def _delete(self, row: Any) -> None:
        super()._delete(row)
        self._data.next_id = max(self._data.rows, default=0) + 1


class ForgetsAttemptsOnReopen(MemoryStore):
    def __init__(self, url: str = "memory://", *, clock: Clock | None = None) -> None:
        super().__init__(url, clock=clock)
        for row in self._data.rows.values():
            row.attempts = 0


class PurgeCountsLeasedAsAcked(MemoryStore):
    """Counts a purged leased message as acked (as a delete trigger would
    that cannot tell a purge from an ack)."""

    def purge(self, queue: str, **kw: Any) -> int:
        now = self.clock.now()
        leased = [r for r in self._queue_rows(queue)
                  if r.stored == INFLIGHT and r.available_at > now]  # fmt: skip
        purged = super().purge(queue, **kw)
        if not kw.get("dry_run"):
            for row in leased:
                if row.id not in self._data.rows:
                    self._data.tally(queue, 0)
        return purged


class CountsRefusedAcks(MemoryStore):
    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        stale = super().ack(queue, leases)
        for _ in stale:
            self._data.tally(queue, 0)
        return stale


class ClaimDeadLettersUncounted(MemoryStore):
    """Forgets the dead letters a claim makes of exhausted leases."""

    def claim(self, queue: str, **kw: Any) -> ClaimResult:
        result = super().claim(queue, **kw)
        if result.dead_lettered:
            self._data.finished[queue][1] -= len(result.dead_lettered)
        return result


def forgets_on_reopen(tmp_path: Path) -> StoreOpener:
    """Every open starts from nothing."""
    return lambda clock: MemoryStore("memory://", clock=clock)


# -- the checks ---------------------------------------------------------------------------

SM = "state machine"
SM_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a caught mutant needs no shrinking
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


def call_with_fixtures(method: Callable[..., None], opener: StoreOpener) -> None:
    """Call a QueueContract test with the fixtures QueueFixtures would give it."""
    clock = ManualClock()
    stores: list[Store] = []

    def make_store() -> Store:
        stores.append(opened(opener, clock))
        return stores[-1]

    def first_store() -> Store:
        return stores[0] if stores else make_store()

    fixtures: dict[str, Callable[[], object]] = {
        "clock": lambda: clock,
        "make_store": lambda: make_store,
        "store": first_store,
        "queue": lambda: PersistentQueue(
            fresh(first_store(), "jobs"),
            store=first_store(),
            lease_timeout=LEASE,
            max_attempts=MAX_ATTEMPTS,
        ),
    }
    kwargs = {name: fixtures[name]() for name in inspect.signature(method).parameters}
    try:
        method(**kwargs)
    finally:
        for store in stores:
            store.close()


def run_check(check: str, opener: StoreOpener) -> None:
    if check == SM:
        run_state_machine_as_test(machine_for(opener), settings=SM_SETTINGS)
        return
    cls_name, test = check.split(".")
    if cls_name == "StoreContract":
        getattr(StoreContract(), test)(opener)
    else:
        call_with_fixtures(getattr(QueueContract(), test), opener)


def caught_by(check: str, opener: StoreOpener) -> BaseException | None:
    """The failure ``check`` reports on the store ``opener`` opens, if any."""
    try:
        run_check(check, opener)
    except pytest.skip.Exception as exc:  # a skip is not a catch
        raise AssertionError(f"{check} was skipped: {exc}") from exc
    except (Exception, pytest.fail.Exception) as exc:  # pytest.raises fails with the latter
        return exc
    return None


# -- the mutants ----------------------------------------------------------------------------

SC = "StoreContract."
QC = "QueueContract."
STALE = SC + "test_a_superseded_receipt_is_refused_and_changes_nothing"
EXPIRED = SC + "test_expired_lease_is_claimable_again_with_a_new_receipt"
LEASE_END = SC + "test_a_lease_ends_exactly_at_leased_until"
DELAY_END = SC + "test_a_delay_ends_exactly_at_available_at"
ORDER = SC + "test_priority_then_available_time"
LIMITS = SC + "test_claim_limit_and_listing_pages"
FILTERS = SC + "test_filters_select_the_same_messages_everywhere"
DEDUPE = SC + "test_dedupe_keys_live_until_ack_or_purge"
HEARTBEATS = SC + "test_heartbeats_show_in_stats"
ALL_STATS = SC + "test_every_queues_stats_at_once_equal_stats_per_queue"
SHAPES = SC + "test_claim_and_enqueue_return_the_protocol_results"
PUT_ACK = SC + "test_put_claim_ack"
EXHAUSTED = SC + "test_exhausted_lease_becomes_dead"
Q_EXPIRY = QC + "test_stale_receipt_after_expiry_changes_nothing"
Q_PAGES = QC + "test_listing_by_state_with_paging"
Q_REQUEUE_LIMIT = QC + "test_store_level_requeue_limit"
Q_PURGE = QC + "test_purge_by_state_with_dry_run"
Q_RELEASE = QC + "test_release_makes_message_ready_again_and_keeps_error"
Q_TRACEBACK = QC + "test_error_traceback_tail_is_kept"
Q_REOPEN = QC + "test_attempts_and_errors_survive_reopen"
Q_STATS = QC + "test_stats_counts_every_state"
FINISHED = SC + "test_finished_counts_add_acks_and_dead_letters_only"


@dataclass(frozen=True)
class Mutant:
    name: str
    opener: Callable[[Path], StoreOpener]
    checks: tuple[str, ...]  # each must catch it


def wrapped(wrap: Wrap, base: str) -> Callable[[Path], StoreOpener]:
    if base == "sqlite":
        return lambda tmp_path: sqlite_opener(tmp_path, wrap)
    return lambda tmp_path: memory_opener(wrap)


def both(wrap: type[Delegating], *checks: str) -> list[Mutant]:
    """A protocol-level mutant, over the memory and the SQLite store."""
    return [Mutant(f"{wrap.__name__}[{base}]", wrapped(wrap, base), checks)
            for base in ("memory", "sqlite")]  # fmt: skip


def one(wrap: type[Delegating], *checks: str) -> list[Mutant]:
    """A protocol-level mutant, over the memory store."""
    return [Mutant(wrap.__name__, wrapped(wrap, "memory"), checks)]


def internal(cls: type[MemoryStore], *checks: str) -> list[Mutant]:
    """A mutant inside the memory store."""
    return [Mutant(cls.__name__, lambda tmp_path: memory_opener(cls=cls), checks)]


# The state machine (SM) is listed where it catches the mutant within its
# first few examples, so that a change to its random choices cannot turn
# the test red; a targeted contract test catches every mutant.
MUTANTS: list[Mutant] = [
    # fencing and receipts
    *both(AckIgnoresReceipt, STALE, EXPIRED),
    *one(ReleaseIgnoresReceipt, STALE),
    *one(ExtendIgnoresReceipt, STALE),
    *one(DeadLetterIgnoresReceipt, STALE),
    *internal(FenceIgnoresExpiry, LEASE_END, Q_EXPIRY),
    *internal(LeaseEndsOneTickLate, LEASE_END),
    *internal(FenceIgnoresQueue, SM, STALE),
    *one(FixedLeaseLength, SM, LEASE_END),
    *one(ExtendsTwice, SM, STALE),
    # order and limits
    *internal(IgnoresPriority, SM, ORDER),
    *internal(NewestFirst, SM, ORDER),
    *internal(BatchInDeliveryOrder, ORDER),
    *both(ClaimsOneTooMany, SM, LIMITS),
    *both(ListIgnoresLimit, LIMITS, Q_PAGES),
    *one(RequeueIgnoresLimit, FILTERS, Q_REQUEUE_LIMIT),
    # delays and the delay boundary
    *both(PutIgnoresDelay, SM, DELAY_END),
    *one(ReleaseIgnoresDelay, SM, DELAY_END),
    *one(RequeueIgnoresDelay, DELAY_END),
    *internal(DelayEndsOneTickLate, DELAY_END),
    # dedupe keys, ids, the added flag
    *both(IgnoresDedupeKeys, SM, DEDUPE),
    *internal(FreesKeyWhenDead, DEDUPE),
    *internal(FreesKeyWhenLeased, DEDUPE),
    *both(KeepsKeysForever, DEDUPE),
    *one(KeepsKeysAfterPurge, DEDUPE),
    *one(ReportsEveryPutAdded, SM, SHAPES),
    *internal(ReusesIds, SM, PUT_ACK),
    # dry runs, filters, paging
    *both(PurgeDryRunDeletes, SM, FILTERS),
    *one(RequeueDryRunMoves, SM, FILTERS),
    *one(PurgeDryRunCountsEveryState, FILTERS, Q_PURGE),
    *both(PurgeIgnoresFilter, FILTERS),
    *one(RequeueIgnoresFilter, FILTERS),
    *both(PagesFromAfterId, LIMITS, Q_PAGES),
    # attempts and errors
    *internal(CountsFirstAttemptOnly, SM, EXPIRED),
    *internal(ReleaseResetsAttempts, SM, STALE, Q_RELEASE),
    *internal(RequeueKeepsAttempts, SM, FILTERS),
    *internal(RequeueKeepsFailedAt, FILTERS),
    *one(HandsOutExhaustedLeases, SM, EXHAUSTED),
    *both(ReleaseDropsError, SM, STALE, Q_RELEASE),
    *one(DeadLetterDropsError, SM, Q_TRACEBACK),
    *internal(ReleaseErasesError, STALE),
    # durability, stats, heartbeats
    Mutant("ForgetsOnReopen", forgets_on_reopen, (SM, Q_REOPEN)),
    *internal(ForgetsAttemptsOnReopen, SM, Q_REOPEN),
    *both(StatsCountDelayedAsReady, SM, Q_STATS),
    *both(AllStatsLeavesOutDeadOnlyQueues, ALL_STATS),
    *one(AllStatsMissesTheClock, SM, ALL_STATS),
    *internal(PurgeCountsLeasedAsAcked, SM, FINISHED),
    *internal(CountsRefusedAcks, SM, FINISHED),
    *internal(ClaimDeadLettersUncounted, SM, FINISHED),
    *both(IgnoresHeartbeats, HEARTBEATS),
    *one(IgnoresStoppedHeartbeats, HEARTBEATS),
]

CHECKS = sorted({check for mutant in MUTANTS for check in mutant.checks})


@pytest.fixture(params=["memory", "sqlite"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    yield memory_opener() if request.param == "memory" else sqlite_opener(tmp_path)


def test_the_correct_stores_pass_every_check_the_mutants_fail(base: StoreOpener) -> None:
    failures = {check: caught_by(check, base) for check in CHECKS}
    assert {check: repr(exc) for check, exc in failures.items() if exc is not None} == {}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_mutant_is_caught(mutant: Mutant, tmp_path: Path) -> None:
    missed = [check for check in mutant.checks if caught_by(check, mutant.opener(tmp_path)) is None]
    assert missed == [], f"{mutant.name} got past {missed}"


def test_there_are_enough_mutants() -> None:
    assert len(MUTANTS) >= 25
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
