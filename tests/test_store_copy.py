"""``localqueue store copy`` and store_copy.copy_messages on the built-in stores.
(The SQLite -> PostgreSQL -> SQLite round trip is in plugins/postgres/tests.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from localqueue.cli.app import build_cli
from localqueue.clock import ManualClock
from localqueue.store import ErrorInfo, Lease, NewMessage, State
from localqueue.store.copy import CopyConflict, copy_messages
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore


def test_memory_to_sqlite_keeps_every_state_and_field(tmp_path: Path) -> None:
    clock = ManualClock()
    source = MemoryStore(clock=clock)
    source.enqueue("q", [NewMessage(b"1", priority=3), NewMessage(b"2", delay=50, dedupe_key="k")])
    source.enqueue("q", [NewMessage(b"3"), NewMessage(b"4")])
    [a, b] = source.claim("q", worker_id="w", limit=2, lease_seconds=60).leased
    error = ErrorInfo("KeyError", "'x'", "tb", at=clock.now())
    source.dead_letter("q", Lease(b.id, b.receipt or ""), error=error)
    destination = SQLiteStore(tmp_path / "d.sqlite3", clock=clock)
    report = copy_messages(source, destination)
    assert report.as_dict()["totals"] == {"ready": 1, "delayed": 1, "inflight": 1, "dead": 1}
    before = [r._replace(receipt=None) for r in source.list_messages("q")]
    after = [r._replace(receipt=None) for r in destination.list_messages("q")]
    assert after == before
    [copied] = destination.list_messages("q", state=State.INFLIGHT)
    assert copied.receipt is not None and copied.receipt != a.receipt  # a new delivery's token
    assert destination.check() == []
    with pytest.raises(CopyConflict, match="message id"):
        copy_messages(source, destination)
    destination.close()


def _store_with(path: Path, n: int) -> None:
    store = SQLiteStore(path)
    store.enqueue("jobs", [NewMessage(str(i).encode()) for i in range(n)])
    store.close()


def test_copy_command_between_sqlite_files(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    _store_with(src, 3)
    runner = CliRunner()
    preview = runner.invoke(build_cli(), ["store", "copy", str(src), str(dst), "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert "would copy 3 message(s)" in preview.stdout
    assert not dst.exists()  # a preview creates nothing
    done = runner.invoke(build_cli(), ["store", "copy", str(src), str(dst), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["queues"]["jobs"]["ready"] == 3
    again = runner.invoke(build_cli(), ["store", "copy", str(src), str(dst)])
    assert again.exit_code == 1
    assert (
        again.stderr.startswith("Error: refusing to copy") and "message id 1 exists" in again.stderr
    )
    assert SQLiteStore(dst).stats("jobs").ready == 3  # nothing doubled


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing.sqlite3", "b.sqlite3"], "no store at"),
        (["a.sqlite3", "a.sqlite3"], "name the same store"),
        (["a.sqlite3", "b.sqlite3", "--queue", "nope"], "'nope' hold no messages"),
        (["a.sqlite3", "nosuch://x"], "no installed plugin provides store scheme 'nosuch'"),
    ],
)
def test_copy_command_bad_input_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _store_with(tmp_path / "a.sqlite3", 1)
    result = CliRunner().invoke(build_cli(), ["store", "copy", *args])
    assert result.exit_code == 1, result.output
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "missing.sqlite3").exists()
    assert not (tmp_path / "b.sqlite3").exists()
