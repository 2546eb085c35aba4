"""settle_and_claim on PostgreSQL: the store has no native one, and the
queue's default (the ack, then the claim, as two autocommit statements) is
what workers use: one statement doing both (re-planned on every call)
measured slower, and one transaction (two more round trips) no faster; see
docs/postgres.md. (The operation's contract runs here through the harness's
StoreContract, in test_postgres_contract.py.)"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from localqueue import ManualClock, PersistentQueue
from localqueue.store import (
    Lease,
    NewMessage,
    SettleAction,
    Settlement,
    State,
    SupportsSettleAndClaim,
    settle_and_claim,
)
from localqueue.worker import persistent_worker
from localqueue_postgres.store import PostgresStore

Q = "jobs"


@pytest.fixture
def store(postgres_store_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_store_url, clock=ManualClock())
    yield opened
    opened.close()


def leases(store: PostgresStore, count: int, lease_seconds: float = 30.0) -> list[Lease]:
    records = store.claim(Q, worker_id="w", limit=count, lease_seconds=lease_seconds).leased
    return [Lease(r.id, r.receipt) for r in records if r.receipt is not None]


def test_the_store_uses_the_default(store: PostgresStore) -> None:
    assert not isinstance(store, SupportsSettleAndClaim)


def test_the_same_lease_twice_is_acked_once_and_reported_stale(store: PostgresStore) -> None:
    store.enqueue(Q, [NewMessage(b"a"), NewMessage(b"b")])
    (lease,) = leases(store, 1)
    result = settle_and_claim(
        store, Q, [Settlement(lease), Settlement(lease)], worker_id="w", limit=1, lease_seconds=30
    )
    assert result.stale == [lease]
    assert result.claimed.leased == []  # a stale settlement: nothing claimed
    assert store.get(Q, lease.id) is None


def test_many_acks_and_a_batch_claim(store: PostgresStore) -> None:
    ids = [r.id for r in store.enqueue(Q, [NewMessage(b"%d" % n) for n in range(10)]).records]
    held = leases(store, 4)
    result = settle_and_claim(
        store, Q, [Settlement(lease) for lease in held], worker_id="w2", limit=3, lease_seconds=30
    )
    assert result.stale == []
    assert [r.id for r in result.claimed.leased] == ids[4:7]
    assert all(r.leased_by == "w2" and r.attempts == 1 for r in result.claimed.leased)
    assert store.stats(Q).total == 6


def test_release_and_dead_letter_then_claim(store: PostgresStore) -> None:
    ids = [r.id for r in store.enqueue(Q, [NewMessage(b"1"), NewMessage(b"2")]).records]
    held = leases(store, 2)
    result = settle_and_claim(
        store,
        Q,
        [Settlement(held[0], SettleAction.RELEASE), Settlement(held[1], SettleAction.DEAD_LETTER)],
        worker_id="w",
        limit=2,
        lease_seconds=30,
    )
    # The released message is due at once, and the claim after it sees it.
    assert result.stale == []
    assert [r.id for r in result.claimed.leased] == [ids[0]]
    assert result.claimed.leased[0].attempts == 2
    dead = store.get(Q, ids[1])
    assert dead is not None and dead.state is State.DEAD


def test_concurrent_workers_never_hand_out_a_message_twice(postgres_store_url: str) -> None:
    setup = PersistentQueue(Q, store=postgres_store_url)
    setup.put_many(list(range(300)))
    handled: Counter[int] = Counter()
    lock = threading.Lock()

    def handle(value: int) -> None:
        with lock:
            handled[value] += 1

    def work() -> None:
        q = PersistentQueue(Q, store=postgres_store_url)
        persistent_worker(q, handle_signals=False)(handle).run(until_empty=True)
        q.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(handled) == list(range(300))
    assert set(handled.values()) == {1}
    assert setup.stats().total == 0
    setup.close()
