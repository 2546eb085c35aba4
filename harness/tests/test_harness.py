"""The harness catches broken stores, runs from the command line and from
pytest, and skips what a store cannot support. (Its contracts on the
project's own stores are in test_builtin_stores.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hypothesis.core as hypothesis_core
import pytest
from click.testing import CliRunner
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from localqueue.cli import build_cli
from localqueue.clock import Clock
from localqueue.plugins import reset_plugin_manager
from localqueue.store import EnqueueResult, Lease, NewMessage, Store
from localqueue.stores.memory import MemoryStore
from localqueue_harness import machine_for
from localqueue_harness.runner import run

from .broken_plugins import LOSING_PLUGIN, install_plugin


class AcceptsStaleReceipts(MemoryStore):
    """Broken on purpose: acks whatever lease it is given."""

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        with self._data.changed:
            for lease in leases:
                row = self._data.rows.get(lease.id)
                if row is not None:
                    self._delete(row)
                    self._data.tally(queue, 0)  # counted like an ack: only the fence is broken
        return []


class ForgetsOnReopen(MemoryStore):
    """Broken on purpose: every open starts from nothing."""

    def __init__(self, url: str = "memory://", *, clock: Clock | None = None) -> None:
        super().__init__("memory://", clock=clock)


class IgnoresQueueNames(MemoryStore):
    """Broken on purpose: every queue sees every message."""

    def _queue_rows(self, queue: str) -> list[Any]:
        return list(self._data.rows.values())


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        (IgnoresQueueNames, "changed another|stats|lost|delivery order"),
        (AcceptsStaleReceipts, "stale receipts must be refused|ack on another queue"),
        (ForgetsOnReopen, "was lost|changed another|holding messages is listed"),
    ],
)
def test_the_state_machine_catches_a_broken_store(broken: type[Store], complaint: str) -> None:
    machine = machine_for(lambda clock: broken("memory://broken", clock=clock))  # type: ignore[call-arg]
    with pytest.raises(AssertionError, match=complaint):
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=200,
                stateful_step_count=30,
                deadline=None,
                report_multiple_bugs=False,
                phases=[phase for phase in Phase if phase is not Phase.explain],
            ),
        )


def test_pytest_pyargs_runs_the_contract_on_a_url(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/pyargs.sqlite3"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
               "localqueue_harness", "--localqueue-store", url]  # fmt: skip
    # A URL brings in the whole contract: the store contract's 20, the queue
    # contract's 73, and the same 73 through the asyncio API ...
    listed = subprocess.run([*command, "--collect-only", "-q"], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert listed.returncode == 0, listed.stdout[-3000:]
    assert "test_contract.py: 167" in listed.stdout
    # ... and runs on it (the store contract here: the whole of it runs on
    # SQLite in test_builtin_stores.py, which needs no URL).
    out = subprocess.run([*command, "-k", "TestStoreAtURL"], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    assert "21 passed, 146 deselected" in out.stdout


def test_without_a_url_the_pyargs_run_skips_with_the_reason() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--pyargs",
         "localqueue_harness"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "pass --localqueue-store URL" in out.stdout


def test_throughput_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = run(
        f"sqlite://{tmp_path}/tp.sqlite3", producers=2, consumers=2, messages=2000,
        seed=1, workdir=tmp_path / "tp",
    )  # fmt: skip
    assert report.passed, report.summary()
    assert (report.confirmed, report.handled, report.lost, report.duplicated) == (2000, 2000, 0, 0)
    assert json.loads((tmp_path / "tp" / "report.json").read_text())["passed"] is True


def test_the_process_runner_catches_a_store_that_loses_held_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store plugin installed the way any is (an entry point on sys.path),
    # so that the runner's spawned producers and consumers use it too.
    site = install_plugin(tmp_path, "losing_store", LOSING_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    reset_plugin_manager()
    report = run(
        f"losing://{tmp_path}/loses.sqlite3", mode="crash-recovery", producers=2, consumers=2,
        messages=700, kills=3, seed=5, lease=1.0, workdir=tmp_path / "run",
    )  # fmt: skip
    assert not report.passed
    assert report.lost >= 90  # about one in seven of 700
    assert report.invariants["every confirmed put was acked (0 lost)"] is False


def test_crash_recovery_with_batch_consumers(tmp_path: Path) -> None:
    report = run(
        f"sqlite://{tmp_path}/batches.sqlite3", mode="crash-recovery", producers=2,
        consumers=2, messages=1200, kills=6, seed=8, lease=1.0, workdir=tmp_path / "crash",
        prefetch=10,
    )  # fmt: skip
    assert report.prefetch == 10 and report.kills == 6
    assert report.passed, report.summary()
    assert "consumers in batches of 10" in report.summary()


@pytest.mark.slow
def test_crash_recovery_with_ten_kills(tmp_path: Path) -> None:
    report = run(
        f"sqlite://{tmp_path}/crash.sqlite3", mode="crash-recovery", producers=2, consumers=2,
        messages=3000, kills=10, seed=7, lease=1.0, workdir=tmp_path / "crash",
    )  # fmt: skip
    assert report.kills == 10
    assert report.passed, report.summary()


def test_harness_command_is_added_to_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite://{tmp_path}/cli.sqlite3"
    cli = build_cli()
    stateful = CliRunner().invoke(
        cli, ["--store", url, "harness", "run", "--examples", "20", "--seed", "9"]
    )
    assert stateful.exit_code == 0, stateful.output
    assert "PASSED" in stateful.stdout
    saved = json.loads((tmp_path / "localqueue-harness-stateful-9.json").read_text())
    assert saved["passed"] is True and saved["mode"] == "stateful"
    report_file = tmp_path / "report.json"
    result = CliRunner().invoke(
        build_cli(),
        ["harness", "run", "--store", url, "--mode", "throughput", "--messages", "300",
         "--seed", "4", "--json", "--report", str(report_file)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["passed"] is True and document["lost"] == 0 and document["seed"] == 4
    assert json.loads(report_file.read_text())["handled"] == 300


SERVER_CLOCK_SUITE = """
import pytest
from localqueue.stores.memory import MemoryStore
from localqueue_harness import QueueContract, StoreContract


class ServerClockStore(MemoryStore):
    # Like a networked store: refuses an injected clock.
    def __init__(self, url="memory://", *, clock=None):
        if clock is not None:
            raise ValueError("this store keeps time on its server; it takes no clock")
        super().__init__(url)


class TestServerClockStore(StoreContract):
    @pytest.fixture
    def open_store(self):
        return lambda clock: ServerClockStore("memory://server-clock", clock=clock)


class TestServerClockQueues(QueueContract):
    # The same named store as above: reused, as a store given by URL would be.
    @pytest.fixture
    def open_store(self):
        return lambda clock: ServerClockStore("memory://server-clock", clock=clock)
"""


@pytest.mark.parametrize(
    ("contract", "outcome"),
    [
        ("TestServerClockStore", "11 passed, 10 skipped"),
        # The tests that take no clock run on the store's own; all share one
        # named store, as runs on a URL do, and each empties its queues first.
        ("TestServerClockQueues", "53 passed, 20 skipped"),
    ],
)
def test_checks_a_store_cannot_support_are_skipped_with_the_reason(
    tmp_path: Path, contract: str, outcome: str
) -> None:
    suite = tmp_path / "test_server_clock.py"
    suite.write_text(SERVER_CLOCK_SUITE)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(suite),
         "-k", contract],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    assert outcome in out.stdout
    assert "does not accept an injected clock" in out.stdout


def test_stateful_run_is_reproduced_by_its_seed(tmp_path: Path) -> None:
    from localqueue_harness import cli_plugin

    log: list[int] = []

    class Recording(MemoryStore):
        def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
            log.append(len(messages))
            return super().enqueue(queue, messages)

    def sequence(seed: int) -> list[int]:
        log.clear()
        machine = machine_for(lambda clock: Recording("memory://seeded", clock=clock))
        hypothesis_core.global_force_seed = seed  # type: ignore[assignment]  # as --seed does
        try:
            run_state_machine_as_test(
                machine, settings=settings(max_examples=20, database=None, derandomize=False)
            )
        finally:
            hypothesis_core.global_force_seed = None
        return list(log)

    assert sequence(5) == sequence(5) != sequence(6)
    assert cli_plugin._stateful("memory://seed-check", 10, 3).passed
