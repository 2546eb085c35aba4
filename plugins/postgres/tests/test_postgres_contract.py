"""The conformance harness's contract and state machine, on a live PostgreSQL."""

from __future__ import annotations

import pytest

from localqueue.clock import ManualClock
from localqueue.store import Store
from localqueue_harness.contract import StoreContract, StoreOpener
from localqueue_postgres.store import PostgresStore


class TestPostgresContract(StoreContract):
    @pytest.fixture
    def open_store(self, postgres_store_url: str) -> StoreOpener:
        def opener(clock: ManualClock) -> Store:
            return PostgresStore(postgres_store_url, clock=clock)

        return opener
