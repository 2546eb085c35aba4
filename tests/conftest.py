"""Shared fixtures: one parametrized store fixture runs the core's store-using
tests (the worker's, the events') on every built-in store, with an injected
clock so no test sleeps for a lease.

The core's tests need only the core installed. The delivery contract itself
(every transition and error, through the Store protocol and through the
queue API) ships with localqueue-harness and runs on these stores in
harness/tests; PostgreSQL runs it, and its share of these tests, in
plugins/postgres/tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localqueue import ManualClock, Store
from localqueue.plugins import reset_plugin_manager
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore

STORE_KINDS = ["memory", "sqlite"]


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

    def factory() -> Store:
        store: Store
        if kind == "memory":
            store = MemoryStore(f"memory://{name}", clock=clock)
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
