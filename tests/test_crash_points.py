"""Deterministic crashes: the SQLite store SIGKILLs its process at a named
point, and the file after reopen must hold exactly the expected state."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localqueue import PersistentQueue, State
from localqueue.stores.sqlite import SQLiteStore
from localqueue.stores.sqlite import faults as sqlite_faults

SETUP = """
import sys
from localqueue import PersistentQueue
from localqueue.stores.sqlite import faults as sqlite_faults
q = PersistentQueue("jobs", store=sys.argv[1], lease_timeout=3600)
"""

# point -> (what the child does after arming, what the file must then hold:
#           {value: state} of the messages left)
CASES = {
    "put:before": ("q.put('new')", {"old": State.READY}),
    "put:after_commit": ("q.put('new')", {"old": State.READY, "new": State.READY}),
    "put_many:mid": ("q.put_many(['a', 'b', 'c'])", {"old": State.READY}),
    "put_many:after_commit": (
        "q.put_many(['a', 'b'])",
        {"old": State.READY, "a": State.READY, "b": State.READY},
    ),
    "claim:after_commit": ("q.get(block=False)", {"old": State.INFLIGHT}),
    "ack:before": ("m = q.get(block=False)\nq.ack(m)", {"old": State.INFLIGHT}),
    "ack:after_commit": ("m = q.get(block=False)\nq.ack(m)", {}),
    "release:after_commit": ("m = q.get(block=False)\nq.release(m, delay=600)", {
        "old": State.DELAYED}),
    "dead_letter:after_commit": ("m = q.get(block=False)\nq.dead_letter(m, error='x')", {
        "old": State.DEAD}),
    # One transaction: a crash inside it loses both halves, after it keeps both.
    "settle_and_claim:mid": (
        "q.put('next')\nm = q.get(block=False)\nq.ack_and_get(m, block=False)",
        {"old": State.INFLIGHT, "next": State.READY}),
    "settle_and_claim:after_commit": (
        "q.put('next')\nm = q.get(block=False)\nq.ack_and_get(m, block=False)",
        {"next": State.INFLIGHT}),
}  # fmt: skip


def test_every_point_is_covered() -> None:
    assert set(CASES) == set(sqlite_faults.POINTS)


def test_points_cannot_be_armed_by_mistake() -> None:
    with pytest.raises(ValueError, match="unknown crash point"):
        sqlite_faults.arm("ack:sometimes")
    assert sqlite_faults.armed is None  # nothing in normal use arms one


@pytest.mark.parametrize("point", sorted(CASES))
def test_state_after_a_crash_at(point: str, tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite3"
    with PersistentQueue("jobs", store=SQLiteStore(db)) as q:
        q.put("old")
        q.store.close()
    action, expected = CASES[point]
    code = SETUP + f"sqlite_faults.arm({point!r})\n" + action + "\nprint('not killed')\n"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), f"sqlite://{db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stdout, out.stderr)
    store = SQLiteStore(db)
    try:
        q = PersistentQueue("jobs", store=store)
        found = {m.value: m.state for m in q.messages(limit=100)}
        assert found == expected
        assert store.check() == []
        for message in q.messages(limit=100):
            if message.state is State.INFLIGHT:
                assert message.attempts == 1  # the claim committed, and only once
    finally:
        store.close()
