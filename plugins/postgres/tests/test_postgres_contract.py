"""The conformance harness's contracts on a live PostgreSQL: the store
contract (direct tests and the state machine) and the queue contract (every
transition and error through the queue API, and its property tests)."""

from __future__ import annotations

import pytest

from localqueue.clock import ManualClock
from localqueue.store import Store
from localqueue_harness import AsyncQueueContract, QueueContract, StoreContract, StoreOpener
from localqueue_postgres.store import PostgresStore


def opener_for(url: str) -> StoreOpener:
    def opener(clock: ManualClock | None) -> Store:
        return PostgresStore(url, clock=clock)

    return opener


class TestPostgresContract(StoreContract):
    @pytest.fixture
    def open_store(self, postgres_store_url: str) -> StoreOpener:
        return opener_for(postgres_store_url)


class TestPostgresQueueContract(QueueContract):
    @pytest.fixture
    def open_store(self, postgres_store_url: str) -> StoreOpener:
        return opener_for(postgres_store_url)


class TestPostgresAsyncQueueContract(AsyncQueueContract):
    @pytest.fixture
    def open_store(self, postgres_store_url: str) -> StoreOpener:
        return opener_for(postgres_store_url)
