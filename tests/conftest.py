"""Shared fixtures: one parametrized store fixture runs every contract test on
every built-in store, with an injected clock so no test sleeps for a lease."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localqueue import ManualClock, PersistentQueue, Store
from localqueue.plugins import reset_plugin_manager
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore
from localqueue_postgres.store import PostgresStore

# "postgres" runs on the server the test command starts (localqueue-postgres's
# fixtures); without one it skips, or fails where LOCALQUEUE_REQUIRE_POSTGRES=1.
STORE_KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the user's store or plugin settings, or leaks its own."""
    monkeypatch.delenv("LOCALQUEUE_STORE", raising=False)
    monkeypatch.delenv("LOCALQUEUE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("LOCALQUEUE_PLUGINS", raising=False)
    monkeypatch.delenv("LOCALQUEUE_LOG_EVENTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


StoreFactory = Callable[[], Store]


@pytest.fixture(params=STORE_KINDS)
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[StoreFactory]:
    """Opens the store under test; calling it again reopens the same data
    (a restart, for SQLite; the same named in-process store, for memory)."""
    opened: list[Store] = []
    kind = request.param
    name = f"{request.node.name}-{id(request)}"
    postgres_url = request.getfixturevalue("postgres_store_url") if kind == "postgres" else ""

    def factory() -> Store:
        store: Store
        if kind == "memory":
            store = MemoryStore(f"memory://{name}", clock=clock)
        elif kind == "postgres":
            store = PostgresStore(postgres_url, clock=clock)
        else:
            store = SQLiteStore(tmp_path / "queue.sqlite3", clock=clock)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


@pytest.fixture
def queue(store: Store) -> PersistentQueue:
    return PersistentQueue("jobs", store=store, lease_timeout=30.0, max_attempts=3)
