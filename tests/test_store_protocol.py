"""The store protocol's results, as the queue receives them from any store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from localqueue import PersistentQueue, StoreError
from localqueue.store import ClaimResult, EnqueueResult, NewMessage, batch_order, delivery_order
from localqueue.stores.memory import MemoryStore


class OutdatedStore(MemoryStore):
    """A store written for the earlier protocol: claim and enqueue return
    plain lists of records (or, carelessly ported, tuples of records)."""

    container: type = list

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> Any:
        return self.container(super().enqueue(queue, messages).records)

    def claim(self, queue: str, **kwargs: Any) -> Any:
        return self.container(super().claim(queue, **kwargs).leased)


def test_results_unpack_as_pairs() -> None:
    store = MemoryStore()
    records, added = store.enqueue("q", [NewMessage(b"1", dedupe_key="k")] * 2)
    assert isinstance(store.enqueue("q", []), EnqueueResult)
    assert [r.id for r in records] == [records[0].id] * 2 and added == [True, False]
    leased, dead = store.claim("q", worker_id="w", limit=5, lease_seconds=30)
    assert isinstance(store.claim("q", worker_id="w", limit=1, lease_seconds=1), ClaimResult)
    assert [r.id for r in leased] == [records[0].id] and dead == []


@pytest.mark.parametrize("container", [list, tuple])
@pytest.mark.parametrize("how", ["put", "put_keyed", "put_many", "put_many_keyed", "get"])
def test_a_store_of_the_earlier_protocol_is_refused_by_name(how: str, container: type) -> None:
    """Unpacking a list of two records as (leased, dead) would mix records
    up silently; the queue says what is wrong and what to do instead."""
    inner = MemoryStore("memory://outdated")
    inner.enqueue("jobs", [NewMessage(b'"a"'), NewMessage(b'"b"')])
    outdated = OutdatedStore("memory://outdated")
    outdated.container = container
    queue = PersistentQueue("jobs", store=outdated)
    with pytest.raises(StoreError) as caught:
        if how == "put":
            queue.put("x")
        elif how == "put_keyed":
            queue.put("x", dedupe_key="k")
        elif how == "put_many":
            queue.put_many(["x", "y"])
        elif how == "put_many_keyed":
            queue.put_many(["x", "y"], dedupe_keys=["k1", "k2"])
        else:
            queue.get_many(2, block=False)
    text = str(caught.value)
    operation = "claim" if how == "get" else "enqueue"
    assert f"returned {container.__name__} from {operation}()" in text
    assert "OutdatedStore" in text and "update the store plugin" in text
    assert "\n" not in text


def test_the_two_orders_of_the_kit() -> None:
    """delivery_order picks (priority, then available_at, then id); batch_order
    returns (priority, then id): the same messages, in different orders."""
    low = MemoryStore().enqueue("q", [NewMessage(b"x")]).records[0]
    a = low._replace(id=1, priority=0, available_at=5.0)
    b = low._replace(id=2, priority=0, available_at=1.0)
    c = low._replace(id=3, priority=9, available_at=9.0)
    assert [r.id for r in sorted([a, b, c], key=delivery_order)] == [3, 2, 1]
    assert [r.id for r in sorted([a, b, c], key=batch_order)] == [3, 1, 2]
