"""The jsonfile store against the delivery contract: the harness, wired in as
a store author would in their own repository, plus the rules the state
machine reaches only by luck (the exact lease boundary, ids after the top
message is acked) pinned down directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from localqueue.store import (
    Lease,
    ManualClock,
    NewMessage,
    State,
    Store,
    StoreNotFound,
    open_store,
)
from localqueue_harness import StoreContract, StoreOpener
from localqueue_jsonstore import JsonFileStore

Q = "jobs"


class TestJsonFileContract(StoreContract):
    # `scripts/test.sh` runs the full harness (pytest --pyargs localqueue_harness
    # --localqueue-store jsonfile://...); this is the quick in-repository pass.
    max_examples = 15

    @pytest.fixture
    def open_store(self, tmp_path: Path) -> StoreOpener:
        return lambda clock: JsonFileStore(tmp_path / "q.json", clock=clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> JsonFileStore:
    return JsonFileStore(tmp_path / "q.json", clock=clock)


def leased_one(store: Store, lease_seconds: float = 30.0) -> Lease:
    store.enqueue(Q, [NewMessage(b"x")])
    [got] = store.claim(Q, worker_id="w", limit=1, lease_seconds=lease_seconds).leased
    assert got.receipt is not None
    return Lease(got.id, got.receipt)


@pytest.mark.parametrize("operation", ["ack", "release", "dead_letter", "extend"])
def test_at_exactly_leased_until_the_lease_is_over(
    store: JsonFileStore, clock: ManualClock, operation: str
) -> None:
    """The fence is ``leased_until > now``, strictly: at the instant the lease
    ends, the message belongs to the next claim, and a late answer is stale."""
    lease = leased_one(store)
    clock.advance(30.0)  # now == leased_until
    before = store.get(Q, lease.id)
    assert before is not None and before.state is State.READY
    refused = {
        "ack": lambda: store.ack(Q, [lease]) == [lease],
        "release": lambda: store.release(Q, lease) is False,
        "dead_letter": lambda: store.dead_letter(Q, lease) is False,
        "extend": lambda: store.extend(Q, lease, 10) is None,
    }
    assert refused[operation](), f"{operation} at exactly leased_until must be refused"
    assert store.get(Q, lease.id) == before, "a refused operation changes nothing"


def test_just_before_leased_until_the_lease_is_held(
    store: JsonFileStore, clock: ManualClock
) -> None:
    lease = leased_one(store)
    clock.advance(29.5)
    assert store.extend(Q, lease, 10) == clock.now() + 10


def test_a_claim_takes_the_head_in_delivery_order_and_returns_it_by_priority_then_id(
    store: JsonFileStore, clock: ManualClock
) -> None:
    a = store.enqueue(Q, [NewMessage(b"a", delay=0.5)]).records[0]
    b = store.enqueue(Q, [NewMessage(b"b")]).records[0]
    c = store.enqueue(Q, [NewMessage(b"c", delay=1)]).records[0]
    h = store.enqueue(Q, [NewMessage(b"h", priority=1, delay=1)]).records[0]
    clock.advance(1)
    # Delivery order: h (priority), b (earliest available_at), a, then c.
    leased = store.claim(Q, worker_id="w", limit=3, lease_seconds=30).leased
    assert [r.id for r in leased] == [h.id, a.id, b.id]
    left = store.get(Q, c.id)
    assert left is not None and left.state is State.READY


def test_ids_are_never_reused_even_after_the_highest_is_acked_and_the_store_reopened(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = JsonFileStore(tmp_path / "q.json", clock=clock)
    lease = leased_one(store)
    assert store.ack(Q, [lease]) == []
    store.close()
    again = JsonFileStore(tmp_path / "q.json", clock=clock)
    [fresh] = again.enqueue(Q, [NewMessage(b"y")]).records
    assert fresh.id == lease.id + 1


def test_dedupe_hits_report_not_added_in_any_state_and_within_a_batch(
    store: JsonFileStore,
) -> None:
    first = store.enqueue(Q, [NewMessage(b"1", dedupe_key="k"), NewMessage(b"2", dedupe_key="k")])
    assert first.added == [True, False]
    assert first.records[0].id == first.records[1].id
    [got] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
    assert got.receipt is not None
    store.dead_letter(Q, Lease(got.id, got.receipt))
    again = store.enqueue(Q, [NewMessage(b"3", dedupe_key="k")])
    assert again.added == [False] and again.records[0].state is State.DEAD
    assert again.records[0].id == got.id
    store.purge(Q)
    assert store.enqueue(Q, [NewMessage(b"4", dedupe_key="k")]).added == [True]


def test_the_scheme_is_registered_through_the_entry_point(tmp_path: Path) -> None:
    url = f"jsonfile://{tmp_path}/via-url.json"
    with PersistentQueue(Q, store=url) as queue:
        queue.put({"n": 1})
        assert queue.get(timeout=1).value == {"n": 1}
    existing = open_store(url, existing=True)
    assert isinstance(existing, JsonFileStore)
    existing.close()


def test_open_existing_creates_nothing(tmp_path: Path) -> None:
    url = f"jsonfile://{tmp_path}/missing/dir/q.json"
    with pytest.raises(StoreNotFound):
        open_store(url, existing=True)
    with pytest.raises(StoreNotFound):
        open_store(url, as_found=True)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_value_errors_and_change_nothing(store: JsonFileStore) -> None:
    bad_calls: list[Callable[[], object]] = [
        lambda: store.enqueue("", [NewMessage(b"x")]),
        lambda: store.enqueue(Q, [NewMessage(b"x", delay=float("nan"))]),
        lambda: store.enqueue(Q, [NewMessage(b"x", priority=2**40)]),
        lambda: store.enqueue(Q, [NewMessage("text", dedupe_key="k")]),  # type: ignore[arg-type]
        lambda: store.claim(Q, worker_id="w", limit=0, lease_seconds=30),
        lambda: store.claim(Q, worker_id="w", limit=1, lease_seconds=0),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            call()
    assert store.queues() == []
