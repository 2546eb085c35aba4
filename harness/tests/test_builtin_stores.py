"""The harness's contracts on the project's own memory and SQLite stores.

(PostgreSQL runs them in plugins/postgres/tests; any store by URL with
``pytest --pyargs localqueue_harness --localqueue-store URL``.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore
from localqueue_harness import AsyncQueueContract, QueueContract, StoreContract, StoreOpener


def memory_opener() -> StoreOpener:
    # A named in-process store: opening the name again sees the same data.
    name = f"memory://contract-{uuid.uuid4().hex}"
    return lambda clock: MemoryStore(name, clock=clock)


class TestMemoryStoreContract(StoreContract):
    max_examples = 100

    @pytest.fixture
    def open_store(self) -> StoreOpener:
        return memory_opener()


class TestSQLiteStoreContract(StoreContract):
    max_examples = 40

    @pytest.fixture
    def open_store(self, tmp_path: Path) -> StoreOpener:
        return lambda clock: SQLiteStore(tmp_path / "contract.sqlite3", clock=clock)


class TestMemoryQueueContract(QueueContract):
    @pytest.fixture
    def open_store(self) -> StoreOpener:
        return memory_opener()


class TestSQLiteQueueContract(QueueContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> StoreOpener:
        return lambda clock: SQLiteStore(tmp_path / "queue.sqlite3", clock=clock)


class TestMemoryAsyncQueueContract(AsyncQueueContract):
    @pytest.fixture
    def open_store(self) -> StoreOpener:
        return memory_opener()


class TestSQLiteAsyncQueueContract(AsyncQueueContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> StoreOpener:
        return lambda clock: SQLiteStore(tmp_path / "queue.sqlite3", clock=clock)
