"""Fixtures: a store with something in every state, and the dashboard on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localqueue_web.history import History
from starlette.testclient import TestClient
from web_fixtures import client_for, fill

from localqueue.store import Store, open_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path}/web.db"
    fill(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with client_for(store, history=History()) as c:
        yield c
