"""The runner tells a redelivery the contract allows (the previous lease
could have ended, the previous delivery was not acked) from one it does not,
whatever made the lease end: a killed consumer, or a live one a slow store
kept past its lease; and a refused ack that the lease explains from one it
does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from localqueue.plugins import reset_plugin_manager
from localqueue_harness.journals import early_refusals, read_journals, unexplained_redeliveries
from localqueue_harness.runner import Report, run

from .broken_plugins import (
    DOUBLE_DELIVERY_PLUGIN,
    REFUSING_PLUGIN,
    SLOW_PLUGIN,
    install_plugin,
)

LEASE = 1.0


def journal(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def start(ident: str, leased_until: float | None, asked: float, got: float) -> str:
    """A start line: the store's lease end, and the host clock around the claim."""
    until = "-" if leased_until is None else repr(leased_until)
    return f"start {ident} 5.0 {until} {asked!r} {got!r} ."


def test_a_live_consumer_outliving_its_lease_explains_the_redelivery(tmp_path: Path) -> None:
    # c1 claimed m at 100 and held it past its lease; its ack was refused
    # at 101.2; c2 claimed it at 101.2, after the lease ended.
    paths = [
        journal(
            tmp_path / "c1.log", start("m", 101.0, 99.99, 100.01), "acking m", "refused m 101.2"
        ),
        journal(tmp_path / "c2.log", start("m", 102.2, 101.15, 101.21), "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    assert journals.starts["m"] == 2
    assert journals.outlived_leases() == {"m"}
    assert unexplained_redeliveries(journals, LEASE, put_again=set()) == {}
    assert early_refusals(journals, LEASE) == {}


def test_an_ack_refused_before_the_lease_could_end_is_reported(tmp_path: Path) -> None:
    # The store refused c1's ack 30 ms after the claim: a valid ack refused.
    # Its own timestamps agree with themselves; the host clock does not.
    paths = [
        journal(
            tmp_path / "c1.log", start("m", 101.0, 99.99, 100.01), "acking m", "refused m 100.03"
        ),
        journal(tmp_path / "c2.log", start("m", 102.2, 101.15, 101.21), "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    found = early_refusals(journals, LEASE)
    assert list(found) == ["m"]
    assert found["m"] == (
        "c1's ack was refused 0.040s after the call that claimed it began, before a lease "
        "of 1s could have ended"
    )


def test_a_killed_holder_explains_the_redelivery_once_its_lease_ended(tmp_path: Path) -> None:
    paths = [
        journal(tmp_path / "c1.log", start("m", 101.0, 99.99, 100.01), "acking m"),
        journal(tmp_path / "c2.log", start("m", 102.0, 100.5, 101.01), "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[tmp_path / "c1.log"])
    assert journals.held_by_killed() == {"m"}
    assert journals.ack_cut_short() == {"m"}
    assert unexplained_redeliveries(journals, LEASE, put_again=set()) == {}


def test_a_message_handed_out_again_too_soon_is_reported_with_its_history(
    tmp_path: Path,
) -> None:
    # c2 got m back 0.5 s after c1's claim began, although the store's own
    # numbers agree with themselves (it ended the lease early on its clock).
    paths = [
        journal(tmp_path / "c1.log", start("m", 101.0, 100.0, 100.01)),
        journal(tmp_path / "c2.log", start("m", 102.0, 100.45, 100.5), "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[tmp_path / "c1.log"])
    found = unexplained_redeliveries(journals, LEASE, put_again=set())
    assert list(found) == ["m"]
    assert found["m"].startswith(
        "handed out again 0.500s after the call that claimed it before began, before a lease "
        "of 1s could have ended: "
    )
    assert (
        "c1 (killed) claimed it between 100.000 and 100.010 (host clock), leased until "
        "101.000, last word 'held'" in found["m"]
    )


def test_a_store_whose_lease_and_claim_disagree_is_reported(tmp_path: Path) -> None:
    # On the host clock c2 came 1.5 s later, but by the store's own numbers
    # it claimed m (at 100.5) while c1's lease (to 101) ran.
    paths = [
        journal(tmp_path / "c1.log", start("m", 101.0, 100.0, 100.01)),
        journal(tmp_path / "c2.log", start("m", 101.5, 101.45, 101.5), "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[tmp_path / "c1.log"])
    found = unexplained_redeliveries(journals, LEASE, put_again=set())
    assert found["m"].startswith(
        "claimed again 0.500s before the previous lease ended, by the store's own clock"
    )


def test_a_redelivery_after_an_ack_that_returned_is_reported(tmp_path: Path) -> None:
    paths = [
        journal(tmp_path / "c1.log", start("m", 101.0, 100.0, 100.01), "acking m", "acked m"),
        journal(tmp_path / "c2.log", start("m", 105.0, 104.0, 104.01), "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    found = unexplained_redeliveries(journals, LEASE, put_again=set())
    assert found["m"].startswith("delivered again after an ack that returned")
    # ... unless the message may have been put twice: then it is two messages.
    assert unexplained_redeliveries(journals, LEASE, put_again={"m"}) == {}


def test_a_holder_stalled_after_its_claim_does_not_reorder_the_deliveries(
    tmp_path: Path,
) -> None:
    # c1 claimed m at 100 but stalled 1.5 s before its get returned; c2 took
    # it over at 101.0, legitimately, and its get returned first.
    paths = [
        journal(
            tmp_path / "c1.log", start("m", 101.0, 99.99, 101.5), "acking m", "refused m 101.6"
        ),
        journal(tmp_path / "c2.log", start("m", 102.0, 100.99, 101.01), "acking m", "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    assert unexplained_redeliveries(journals, LEASE, put_again=set()) == {}
    assert early_refusals(journals, LEASE) == {}


def test_within_the_clock_slack_counts_as_after(tmp_path: Path) -> None:
    paths = [
        journal(tmp_path / "c1.log", start("m", 101.0, 100.0, 100.01), "refused m 100.995"),
        journal(tmp_path / "c2.log", start("m", 101.995, 100.99, 100.995), "acked m"),
    ]
    journals = read_journals(paths, killed=[])
    assert unexplained_redeliveries(journals, LEASE, put_again=set()) == {}
    assert early_refusals(journals, LEASE) == {}


def test_a_store_that_gives_no_lease_end_is_still_checked_by_the_host_clock(
    tmp_path: Path,
) -> None:
    paths = [
        journal(tmp_path / "c1.log", start("m", None, 100.0, 100.01)),
        journal(tmp_path / "c2.log", start("m", None, 100.2, 100.3), "acked m"),
    ]
    journals = read_journals(paths, killed=[tmp_path / "c1.log"])
    assert journals.deliveries["m"][0].leased_until is None
    assert "handed out again 0.300s" in unexplained_redeliveries(journals, LEASE, set())["m"]


@pytest.mark.parametrize(
    "line",
    ["start m 5.0 101.0 100.0", "start m 5.0 101.0 100.0 100.01", "start m 5.0 nan 1 2 .",
     "start m 5.0 101.0 100.0 100.01 x", "start m 5.0 101.0 10x 100.01 ."],
)  # fmt: skip
def test_lines_a_kill_cut_short_are_skipped(tmp_path: Path, line: str) -> None:
    paths = [journal(tmp_path / "c1.log", start("k", 101.0, 100.0, 100.01), "acking k", line,
                     "refused k 10")]  # fmt: skip
    journals = read_journals([*paths, tmp_path / "c9.log"], killed=[])
    assert "m" not in journals.deliveries
    assert journals.deliveries["k"][0].outcome == "refused"
    cut = read_journals(
        [journal(tmp_path / "c2.log", start("k", 101.0, 100.0, 100.01), "refused k 1")], []
    )
    assert cut.deliveries["k"][0].refused_at == 1.0


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
        f"{scheme}://{tmp_path}/{scheme}.sqlite3", producers=1, consumers=2, messages=80,
        seed=3, lease=LEASE, workdir=tmp_path / "run",
        progress=None if progress is None else progress.append,
    )  # fmt: skip


def test_a_slow_but_correct_store_passes_with_the_outlived_leases_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_with_plugin(tmp_path, monkeypatch, "slow", SLOW_PLUGIN)
    assert report.passed, report.summary()
    # Two messages (ids 40 and 80) were held past their lease and
    # taken over by the other consumer.
    assert report.leases_outlived >= 1, report.summary()
    assert report.duplicated >= report.leases_outlived
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
    assert "before a lease of 1s could have ended" in found[0]


def test_a_store_that_refuses_valid_acks_fails_although_it_redelivers_late(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its redeliveries come after the lease, so only the refusals give it away.
    said: list[str] = []
    report = run_with_plugin(tmp_path, monkeypatch, "refusing", REFUSING_PLUGIN, said)
    assert report.invariants["an ack was refused only once its lease could have ended"] is False
    assert report.invariants[
        "a message came back only after its lease ended, never after an ack"
    ], report.summary()
    found = [line for line in said if line.startswith("ack refused against the contract: p0-")]
    assert found and "before a lease of 1s could have ended" in found[0], said
