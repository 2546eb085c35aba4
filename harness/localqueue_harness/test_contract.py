"""Run by ``pytest --pyargs localqueue_harness --localqueue-store URL``: the
store contract and the queue contract (through the blocking and the asyncio
API), on the store that URL opens."""

from __future__ import annotations

import pytest

from localqueue.clock import ManualClock
from localqueue.store import Store
from localqueue.store import open_store as open_url
from localqueue_harness.async_contract import AsyncQueueContract
from localqueue_harness.contract import StoreContract, StoreOpener
from localqueue_harness.plugin import OPTION
from localqueue_harness.queue_contract import QueueContract


def url_opener(request: pytest.FixtureRequest) -> StoreOpener:
    url = request.config.getoption(OPTION)
    if not url:
        pytest.skip(f"no store to check: pass {OPTION} URL")

    def opener(clock: ManualClock | None) -> Store:
        return open_url(url, clock=clock)

    return opener


class TestStoreAtURL(StoreContract):
    @pytest.fixture
    def open_store(self, request: pytest.FixtureRequest) -> StoreOpener:
        return url_opener(request)


class TestQueueAtURL(QueueContract):
    @pytest.fixture
    def open_store(self, request: pytest.FixtureRequest) -> StoreOpener:
        return url_opener(request)


class TestAsyncQueueAtURL(AsyncQueueContract):
    @pytest.fixture
    def open_store(self, request: pytest.FixtureRequest) -> StoreOpener:
        return url_opener(request)
