"""The conformance harness's contracts on a live Redis: the store contract
(direct tests and the state machine, on an injected clock passed to every
script) and the queue contract (every transition and error through the
queue API, and its property tests)."""

from __future__ import annotations

import pytest

from localqueue.clock import ManualClock
from localqueue.store import Store
from localqueue_harness import QueueContract, StoreContract, StoreOpener
from localqueue_redis.store import RedisStore


def opener_for(url: str) -> StoreOpener:
    def opener(clock: ManualClock | None) -> Store:
        return RedisStore(url, clock=clock)

    return opener


class TestRedisContract(StoreContract):
    @pytest.fixture
    def open_store(self, redis_store_url: str) -> StoreOpener:
        return opener_for(redis_store_url)


class TestRedisQueueContract(QueueContract):
    @pytest.fixture
    def open_store(self, redis_store_url: str) -> StoreOpener:
        return opener_for(redis_store_url)
