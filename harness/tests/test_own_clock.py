"""Stores that keep their own time: a store that refuses an injected clock
(or takes one and ignores it) still runs the state machine, without moving
the clock, and the real-time check of a consumer that stalls past a short
lease; both catch broken stores of that kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from localqueue.clock import ManualClock, SystemClock
from localqueue.store import ClaimResult, Lease, Store
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore
from localqueue_harness import StoreContract, StoreOpener, machine_for
from localqueue_harness.contract import CLOCK_IGNORED, CLOCK_SKIP, clock_refusal, opened

SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


def refusing(make: Callable[[], Store]) -> StoreOpener:
    """Like a networked store that keeps time on its server: no clock taken."""

    def opener(clock: ManualClock | None) -> Store:
        if clock is not None:
            raise ValueError("this store keeps time on its server; it takes no clock")
        return make()

    return opener


def ignoring(make: Callable[[], Store]) -> StoreOpener:
    """Takes a clock and keeps its own time anyway."""
    return lambda clock: make()


def memory(cls: type[MemoryStore] = MemoryStore) -> Callable[[], Store]:
    name = f"memory://own-clock-{uuid.uuid4().hex}"
    return lambda: cls(name, clock=SystemClock())


def sqlite(path: Path) -> Callable[[], Store]:
    return lambda: SQLiteStore(path, clock=None)


class AcksSupersededReceipts(MemoryStore):
    """Broken: the fence checks the message id, not the receipt."""

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        current = []
        for lease in leases:
            row = self._data.rows.get(lease.id)
            receipt = row.receipt if row is not None and row.receipt else lease.receipt
            current.append(Lease(lease.id, receipt))
        stale = super().ack(queue, current)
        return [lease for lease in leases if lease.id in {s.id for s in stale}]


class FenceIgnoresExpiry(MemoryStore):
    """Broken: a lease is current as long as nobody claimed the message again."""

    def _current(self, queue: str, lease: Lease, now: float) -> Any:
        return super()._current(queue, lease, -float("inf"))


class NeverDeadLettersExpiredLeases(MemoryStore):
    def claim(self, queue: str, **kw: Any) -> ClaimResult:
        return super().claim(queue, **{**kw, "max_attempts": None})


class SlowClock:
    """A clock that lags behind real time: a store that took the injected
    clock's place with its own notion of now."""

    def now(self) -> float:
        return SystemClock().now() - 5.0


def run_machine(opener: StoreOpener) -> None:
    run_state_machine_as_test(machine_for(opener, own_clock=True), settings=SETTINGS)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_store_that_refuses_a_clock_runs_the_state_machine(kind: str, tmp_path: Path) -> None:
    make = memory() if kind == "memory" else sqlite(tmp_path / "own.sqlite3")
    opener = refusing(make)
    assert clock_refusal(opener) == CLOCK_SKIP

    class Contract(StoreContract):
        max_examples = 25

    Contract().test_state_machine(opener)  # picks the own-clock machine by itself


def test_a_store_that_ignores_the_clock_is_told_apart(tmp_path: Path) -> None:
    def make() -> Store:
        store = MemoryStore(f"memory://{uuid.uuid4().hex}")
        store.clock = SlowClock()
        return store

    opener = ignoring(make)
    assert clock_refusal(opener) == CLOCK_IGNORED
    assert clock_refusal(lambda clock: MemoryStore("memory://", clock=clock)) is None
    with pytest.raises(pytest.skip.Exception, match="its clock reads another time"):
        opened(opener, ManualClock())
    run_machine(ignoring(memory()))


def test_the_own_clock_machine_catches_superseded_receipts() -> None:
    with pytest.raises(AssertionError, match="stale receipts must be refused"):
        run_machine(refusing(memory(AcksSupersededReceipts)))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_real_time_check_passes_on_a_correct_store(kind: str, tmp_path: Path) -> None:
    make = memory() if kind == "memory" else sqlite(tmp_path / "real.sqlite3")
    StoreContract().test_a_stalled_consumer_loses_its_lease_in_real_time(refusing(make))


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        (FenceIgnoresExpiry, "a late ack is refused"),
        (NeverDeadLettersExpiredLeases, "the next claim takes the stalled message"),
    ],
)
def test_the_real_time_check_catches_a_store_that_ignores_lease_ends(
    broken: type[MemoryStore], complaint: str
) -> None:
    opener = refusing(memory(broken))
    with pytest.raises(AssertionError, match=complaint):
        StoreContract().test_a_stalled_consumer_loses_its_lease_in_real_time(opener)
    run_machine(opener)  # without moving time, the machine cannot see these
