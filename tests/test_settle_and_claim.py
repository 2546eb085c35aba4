"""One transaction per job: settle deliveries and claim the next (issue 16, item 2).

The store operation (``settle_and_claim``, native on memory and SQLite; the
kit's ``settle_then_claim`` for any other store), the queue's
``ack_and_get``, and the worker, which acks a job with the claim of the next.
The harness checks the operation on every store as part of the contract.
"""

from __future__ import annotations

import queue as stdlib_queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from localqueue import LeaseExpired, ManualClock, PersistentQueue, State, Store, StoreError
from localqueue.store import (
    ClaimResult,
    ErrorInfo,
    Lease,
    NewMessage,
    SettleAction,
    Settlement,
    SettleResult,
    SupportsSettleAndClaim,
    settle_and_claim,
    settle_then_claim,
)
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore
from localqueue.worker import persistent_worker


class ProtocolOnly:
    """A store with the protocol and nothing more: no settle_and_claim."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.clock = inner.clock
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        if name == "settle_and_claim":
            raise AttributeError(name)
        return getattr(self._inner, name)


class Counting:
    """Counts the store calls a worker makes (and forwards everything)."""

    def __init__(self, inner: SQLiteStore) -> None:
        self._inner = inner
        self.clock = inner.clock
        self.url = inner.url
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted

    def settle_and_claim(
        self, queue: str, settlements: Sequence[Settlement], **kwargs: Any
    ) -> SettleResult:
        self.calls["settle_and_claim"] += 1
        return self._inner.settle_and_claim(queue, settlements, **kwargs)


def put(store: Store, *values: bytes, priority: int = 0) -> list[int]:
    records = store.enqueue("q", [NewMessage(v, priority=priority) for v in values]).records
    return [r.id for r in records]


def claim(store: Store, limit: int = 1) -> list[Lease]:
    leased = store.claim("q", worker_id="w", limit=limit, lease_seconds=30).leased
    return [Lease(r.id, r.receipt) for r in leased if r.receipt is not None]


@pytest.fixture(params=["native", "default"])
def settle(request: pytest.FixtureRequest) -> Any:
    """The native operation, and the kit's default made of single operations."""
    if request.param == "native":
        return lambda store, *args, **kwargs: settle_and_claim(store, *args, **kwargs)
    return settle_then_claim


def test_the_builtin_stores_offer_the_capability(store: Store) -> None:
    assert isinstance(store, SupportsSettleAndClaim)
    assert not isinstance(ProtocolOnly(store), SupportsSettleAndClaim)


def test_ack_and_claim_the_next(store: Store, settle: Any) -> None:
    first, second = put(store, b"a", b"b")
    (lease,) = claim(store)
    assert lease.id == first
    result = settle(store, "q", [Settlement(lease)], worker_id="w", limit=1, lease_seconds=30)
    assert result.stale == []
    assert isinstance(result.claimed, ClaimResult)
    (next_record,) = result.claimed.leased
    assert next_record.id == second and next_record.attempts == 1
    assert next_record.receipt is not None and next_record.receipt != lease.receipt
    assert store.get("q", first) is None
    assert store.stats("q").inflight == 1


def test_release_and_dead_letter_settlements_keep_delay_and_error(
    store: Store, settle: Any, clock: ManualClock
) -> None:
    ids = put(store, b"a", b"b", b"c")
    leases = claim(store, limit=2)
    error = ErrorInfo(type="Boom", message="it broke", traceback=None, at=clock.now())
    result = settle(
        store,
        "q",
        [
            Settlement(leases[0], SettleAction.RELEASE, delay=60, error=error),
            Settlement(leases[1], SettleAction.DEAD_LETTER, error=error),
        ],
        worker_id="w",
        limit=5,
        lease_seconds=30,
    )
    assert result.stale == []
    assert [r.id for r in result.claimed.leased] == [ids[2]]  # the delayed one is not due
    released, dead = store.get("q", ids[0]), store.get("q", ids[1])
    assert released is not None and released.state is State.DELAYED
    assert released.available_at == clock.now() + 60 and released.last_error == error
    assert dead is not None and dead.state is State.DEAD and dead.last_error == error


def test_a_stale_settlement_claims_nothing_and_changes_nothing_it_names(
    store: Store, settle: Any, clock: ManualClock
) -> None:
    ids = put(store, b"a", b"b", b"c")
    leases = claim(store, limit=2)
    clock.advance(31)  # both leases expire
    fresh = claim(store, limit=1)  # another worker takes the first over
    before = store.get("q", ids[0])
    result = settle(
        store,
        "q",
        [Settlement(leases[0]), Settlement(fresh[0], SettleAction.RELEASE)],
        worker_id="w",
        limit=5,
        lease_seconds=30,
    )
    assert result.stale == [leases[0]]
    assert result.claimed == ClaimResult([], [])
    assert store.get("q", ids[0]) is not None  # the stale ack removed nothing
    after = store.get("q", ids[0])
    assert after is not None and before is not None and after.state is State.READY
    # The current settlement in the same call was applied.
    assert after.receipt is None
    stats = store.stats("q")
    # Released, an expired lease (claimable again), and one never claimed.
    assert (stats.ready, stats.inflight) == (3, 0)


def test_the_claim_dead_letters_exhausted_leases_as_claim_does(
    store: Store, settle: Any, clock: ManualClock
) -> None:
    first, second = put(store, b"a", b"b")
    (lease,) = claim(store, limit=1)
    (other,) = store.claim("q", worker_id="x", limit=1, lease_seconds=5).leased
    assert (lease.id, other.id) == (first, second)
    clock.advance(10)  # the second's lease expired, on its last allowed attempt
    result = settle(
        store, "q", [Settlement(lease)], worker_id="w", limit=1, lease_seconds=30,
        max_attempts=1,
    )  # fmt: skip
    assert result.stale == [] and result.claimed.leased == []
    assert [r.id for r in result.claimed.dead_lettered] == [second]
    assert store.stats("q").dead == 1 and store.get("q", first) is None


# --- the queue: ack_and_get ------------------------------------------------------


@pytest.mark.parametrize("wrap", [False, True], ids=["native", "protocol-only"])
def test_ack_and_get_walks_the_queue(store: Store, wrap: bool) -> None:
    q = PersistentQueue("q", store=ProtocolOnly(store) if wrap else store)
    q.put_many([1, 2, 3])
    message = q.get(block=False)
    seen = [message.value]
    while True:
        try:
            message = q.ack_and_get(message, block=False)
        except stdlib_queue.Empty:
            break
        seen.append(message.value)
        assert message.attempts == 1
    assert seen == [1, 2, 3]
    assert q.stats().total == 0  # the last ack stood although nothing came next


def test_ack_and_get_on_a_lost_lease_raises_and_leases_nothing(
    store: Store, clock: ManualClock
) -> None:
    q = PersistentQueue("q", store=store, lease_timeout=5)
    q.put_many([1, 2])
    message = q.get(block=False)
    clock.advance(6)
    with pytest.raises(LeaseExpired):
        q.ack_and_get(message, block=False)
    stats = q.stats()
    assert (stats.ready, stats.inflight) == (2, 0)  # the expired one is claimable again


def test_ack_and_get_blocks_like_get(tmp_path: Any) -> None:
    q = PersistentQueue("q", store=SQLiteStore(tmp_path / "q.db"))
    q.put(1)
    message = q.get(block=False)
    started = time.monotonic()
    with pytest.raises(stdlib_queue.Empty):
        q.ack_and_get(message, timeout=0.2)
    assert time.monotonic() - started >= 0.2
    assert q.stats().total == 0
    q.put(2)
    message = q.get(block=False)
    threading.Timer(0.2, lambda: PersistentQueue("q", store=q.store).put(3)).start()
    assert q.ack_and_get(message, timeout=10).value == 3
    q.close()


# --- the worker: one transaction per job -------------------------------------------


def test_the_worker_acks_with_the_next_claim(tmp_path: Any) -> None:
    store = Counting(SQLiteStore(tmp_path / "q.db"))
    q = PersistentQueue("q", store=store)
    q.put_many(list(range(20)))
    done: list[int] = []
    summary = persistent_worker(q, handle_signals=False)(done.append).run(until_empty=True)
    assert sorted(done) == list(range(20)) and summary.acked == 20
    assert q.stats().total == 0
    # 1 claim for the first job, then one transaction per job (the last one's
    # ack rides on a claim that finds nothing), and no separate ack.
    assert store.calls["claim"] == 1
    assert store.calls["settle_and_claim"] == 20
    assert store.calls["ack"] == 0


def test_a_worker_stopping_acks_its_last_job(tmp_path: Any) -> None:
    store = Counting(SQLiteStore(tmp_path / "q.db"))
    q = PersistentQueue("q", store=store)
    q.put_many([1, 2, 3])
    summary = persistent_worker(q, handle_signals=False)(lambda v: None).run(max_jobs=2)
    assert summary.acked == 2
    assert q.stats().total == 1  # both acked, the third untouched
    assert store.calls["ack"] == 1  # the budget was spent: the last ack went alone


def test_failures_are_recorded_at_once_not_with_the_next_claim(tmp_path: Any) -> None:
    store = Counting(SQLiteStore(tmp_path / "q.db"))
    q = PersistentQueue("q", store=store)
    q.put_many([1, 2])

    def handle(value: int) -> None:
        raise RuntimeError("no")

    summary = persistent_worker(q, handle_signals=False, max_retries=0)(handle).run(
        until_empty=True
    )
    assert summary.dead == 2
    assert store.calls["dead_letter"] == 2 and store.calls["settle_and_claim"] == 0


def test_protocol_only_store_workers_still_work(store: Store) -> None:
    q = PersistentQueue("q", store=ProtocolOnly(store))
    q.put_many([1, 2, 3])
    done: list[int] = []
    summary = persistent_worker(q, handle_signals=False)(done.append).run(until_empty=True)
    assert sorted(done) == [1, 2, 3] and summary.acked == 3 and q.stats().total == 0


def test_memory_store_is_used_natively() -> None:
    assert isinstance(MemoryStore(), SupportsSettleAndClaim)


class FailingCommit:
    """A connection whose next COMMIT fails, as on a full disk."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.fail = True

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT" and self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.parametrize("operation", ["settle_and_claim", "transaction"])
def test_a_failed_commit_rolls_back_and_the_store_goes_on(
    tmp_path: Any, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    ids = put(store, b"a", b"b")
    (lease,) = claim(store)
    real = store._pool.get()
    failing = FailingCommit(real)
    monkeypatch.setattr(store._pool, "get", lambda: failing)
    with pytest.raises(StoreError, match="full"):
        if operation == "settle_and_claim":
            store.settle_and_claim(
                "q", [Settlement(lease)], worker_id="w", limit=1, lease_seconds=30
            )
        else:
            store.enqueue("q", [NewMessage(b"c"), NewMessage(b"d")])  # one transaction
    assert not real.in_transaction  # rolled back, not left open
    # Nothing of the failed transaction stayed, and the store works on.
    assert store.get("q", ids[0]) is not None and store.stats("q").total == 2
    assert store.ack("q", [lease]) == []
    store.close()
