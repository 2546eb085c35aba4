"""What :class:`~localqueue_harness.QueueContract` derives from its one
fixture, ``open_store`` (the same one :class:`~localqueue_harness.StoreContract`
takes): a function that opens the store under test with a given clock, and
opens the *same data* again when called again.

From it the class builds ``clock`` (a :class:`ManualClock`), ``make_store``
(opens the store; calling it again reopens the same data, a restart),
``store`` (one open store) and ``queue`` (a :class:`PersistentQueue` on it).
A test that takes ``clock`` needs the store to accept an injected clock and
is skipped with the harness's reason when the store refuses one; every other
test runs on the store's own clock if it has to.

A URL given on the command line may name a store that other runs (or the
store contract) have used: every queue these tests touch is named with
:data:`PREFIX` and emptied before the test uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from localqueue import PersistentQueue
from localqueue.clock import ManualClock
from localqueue.store import Store
from localqueue_harness.contract import StoreOpener, opened, opened_any

__all__ = ["LEASE", "MAX_ATTEMPTS", "PREFIX", "QueueFixtures", "StoreFactory", "fresh"]

PREFIX = "queue-contract-"
LEASE = 30.0  # the ``queue`` fixture's lease_timeout
MAX_ATTEMPTS = 3  # the ``queue`` fixture's max_attempts

StoreFactory = Callable[[], Store]


def fresh(store: Store, name: str) -> str:
    """The contract's name for queue ``name``, emptied first: a reused store
    starts clean."""
    full = PREFIX + name
    store.purge(full)
    return full


class QueueFixtures:
    """The fixtures of the queue contract; subclasses override ``open_store``.

    ``queue_type`` makes every queue the tests use: PersistentQueue, or
    anything with its constructor and methods (the async contract runs the
    same tests through AsyncPersistentQueue this way).
    """

    queue_type: ClassVar[Callable[..., PersistentQueue]] = PersistentQueue

    @pytest.fixture
    def open_store(self) -> StoreOpener:
        raise NotImplementedError("override the open_store fixture in your subclass")

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def make_store(
        self, open_store: StoreOpener, request: pytest.FixtureRequest
    ) -> Iterator[StoreFactory]:
        """Opens the store under test; calling it again reopens the same data.

        The store gets the test's ``clock`` if the test asks for one (and the
        test is skipped if the store refuses it); otherwise a clock of its own
        choosing is fine, so a store that keeps time on a server still runs
        every check that does not move time.
        """
        needs_clock = "clock" in request.fixturenames
        clock: ManualClock = request.getfixturevalue("clock") if needs_clock else ManualClock()
        stores: list[Store] = []

        def factory() -> Store:
            store = opened(open_store, clock) if needs_clock else opened_any(open_store, clock)
            stores.append(store)
            return store

        yield factory
        for store in stores:
            store.close()

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Store:
        return make_store()

    @pytest.fixture
    def queue(self, store: Store) -> PersistentQueue:
        return self.queue_type(
            fresh(store, "jobs"), store=store, lease_timeout=LEASE, max_attempts=MAX_ATTEMPTS
        )
