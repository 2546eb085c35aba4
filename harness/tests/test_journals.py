"""The runner tells a redelivery the contract allows (the previous lease had
ended, the previous delivery was not acked) from one it does not, whatever
made the lease end: a killed consumer, or a live one a slow store kept past
its lease."""

from __future__ import annotations

from pathlib import Path

import pytest

from localqueue.plugins import reset_plugin_manager
from localqueue_harness.journals import read_journals, unexplained_redeliveries
from localqueue_harness.runner import Report, run

from .broken_plugins import DOUBLE_DELIVERY_PLUGIN, SLOW_PLUGIN, install_plugin

LEASE = 1.0


def journal(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_live_consumer_outliving_its_lease_explains_the_redelivery(tmp_path: Path) -> None:
    # c1 held m past its lease (claimed at 100, leased to 101), its ack was
    # refused; c2 claimed it at 101.2, after the lease ended.
    paths = [
        journal(tmp_path / "c1.log", "start m 5.0 101.0", "acking m", "refused m"),
        journal(tmp_path / "c2.log", "start m 5.0 102.2", "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    assert journals.starts["m"] == 2
    assert journals.outlived_leases() == {"m"}
    assert unexplained_redeliveries(journals, LEASE, put_again=set()) == {}


def test_a_killed_holder_explains_the_redelivery_once_its_lease_ended(tmp_path: Path) -> None:
    paths = [
        journal(tmp_path / "c1.log", "start m 5.0 101.0", "acking m"),
        journal(tmp_path / "c2.log", "start m 5.0 102.0", "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[tmp_path / "c1.log"])
    assert journals.held_by_killed() == {"m"}
    assert journals.ack_cut_short() == {"m"}
    assert unexplained_redeliveries(journals, LEASE, put_again=set()) == {}


def test_a_claim_while_the_previous_lease_ran_is_reported_with_its_history(
    tmp_path: Path,
) -> None:
    # c2 claimed m at 100.5, while c1's lease ran to 101: even though c1 was
    # killed, the store handed out a message someone still held.
    paths = [
        journal(tmp_path / "c1.log", "start m 5.0 101.0"),
        journal(tmp_path / "c2.log", "start m 5.0 101.5", "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[tmp_path / "c1.log"])
    found = unexplained_redeliveries(journals, LEASE, put_again=set())
    assert list(found) == ["m"]
    assert found["m"].startswith("claimed again 0.500s before the previous lease ended: ")
    assert "c1 (killed) claimed it at 100.000, leased until 101.000, last word 'held'" in found["m"]
    assert "c2 claimed it at 100.500" in found["m"]


def test_a_redelivery_after_an_ack_that_returned_is_reported(tmp_path: Path) -> None:
    paths = [
        journal(tmp_path / "c1.log", "start m 5.0 101.0", "acking m", "acked m"),
        journal(tmp_path / "c2.log", "start m 5.0 105.0", "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    found = unexplained_redeliveries(journals, LEASE, put_again=set())
    assert found["m"].startswith("delivered again after an ack that returned")
    # ... unless the message may have been put twice: then it is two messages.
    assert unexplained_redeliveries(journals, LEASE, put_again={"m"}) == {}


def test_a_claim_within_the_clock_slack_of_the_lease_end_counts_as_after_it(
    tmp_path: Path,
) -> None:
    paths = [
        journal(tmp_path / "c1.log", "start m 5.0 101.0", "acking m", "refused m"),
        journal(tmp_path / "c2.log", "start m 5.0 101.995", "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    assert unexplained_redeliveries(journals, LEASE, put_again=set()) == {}


def test_lines_a_kill_cut_short_are_skipped(tmp_path: Path) -> None:
    paths = [journal(tmp_path / "c1.log", "start m 5.0 101.0", "acking m", "ack")]
    journals = read_journals([*paths, tmp_path / "c9.log"], killed=[])
    assert journals.deliveries["m"][0].outcome == "acking"


def run_with_plugin(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    source: str,
    progress: list[str] | None = None,
) -> Report:
    # Installed as any plugin is, so that the spawned processes load it too.
    site = install_plugin(tmp_path, f"{scheme}_store", source)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    reset_plugin_manager()
    return run(
        f"{scheme}://{tmp_path}/{scheme}.sqlite3", producers=1, consumers=2, messages=160,
        seed=3, lease=LEASE, workdir=tmp_path / "run",
        progress=None if progress is None else progress.append,
    )  # fmt: skip


def test_a_slow_but_correct_store_passes_with_the_outlived_leases_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_with_plugin(tmp_path, monkeypatch, "slow", SLOW_PLUGIN)
    assert report.passed, report.summary()
    # Four messages (ids 40, 80, 120, 160) were held past their lease and
    # taken over by the other consumer.
    assert report.leases_outlived >= 1, report.summary()
    assert report.duplicated == report.leases_outlived
    assert "outlived their lease" in report.summary()


def test_a_store_that_hands_out_a_held_message_fails_with_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    report = run_with_plugin(tmp_path, monkeypatch, "double", DOUBLE_DELIVERY_PLUGIN, said)
    name = "a message came back only after its lease ended, never after an ack"
    assert report.invariants[name] is False
    assert not report.passed
    found = [line for line in said if line.startswith("redelivered against the contract: p0-")]
    assert found, said
    assert "before the previous lease ended" in found[0]
