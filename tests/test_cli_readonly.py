"""Issue 15 item 9: commands that only look (or only remove) never create a
store, and ``queue health`` tells "unhealthy" (1) from "could not check" (3).

Each test runs the CLI through CliRunner against a path in a temporary
directory and then checks the directory itself: a mistyped path must stay
a mistake, not become a new, empty SQLite file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from localqueue import ManualClock, PersistentQueue
from localqueue.cli import build_cli
from localqueue.stores.sqlite import SQLiteStore

NOT_CHECKED = 3

# Every command that reads the store, or only removes from it: none of them
# may create a store. (`metrics` has its own tests in its plugin.)
NO_CREATE = [
    ("queue", "stats", "jobs"),
    ("queue", "stats", "jobs", "--json"),
    ("queue", "dead", "jobs"),
    ("queue", "dead", "jobs", "--summary", "--json"),
    ("queue", "list"),
    ("queue", "list", "--json"),
    ("queue", "inspect", "jobs"),
    ("queue", "inspect", "jobs", "1"),
    ("queue", "requeue-dead", "jobs", "--all"),
    ("queue", "purge", "jobs", "--yes"),
    ("queue", "purge", "jobs", "--dry-run"),
    ("queue", "retention", "jobs"),
    ("queue", "retention", "jobs", "--json"),
    ("queue", "acked", "jobs"),
    ("queue", "acked", "jobs", "--json"),
]


def run(store: Path | str, *args: str) -> Result:
    return CliRunner().invoke(build_cli(), ["--store", str(store), *args])


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An existing store with one ready message in ``jobs``."""
    path = tmp_path / "real.sqlite3"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put({"n": 1})
    store.close()
    return path


@pytest.mark.parametrize("args", NO_CREATE, ids=" ".join)
def test_read_only_commands_do_not_create_a_mistyped_store(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    typo = tmp_path / "typo.sqlite3"
    error = one_line_error(run(typo, *args), 1)
    assert "no store at" in error and str(typo) in error
    assert tree(tmp_path) == []


@pytest.mark.parametrize("args", NO_CREATE, ids=" ".join)
def test_read_only_commands_do_not_create_a_missing_directory(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    one_line_error(run(tmp_path / "nodir" / "typo.sqlite3", *args), 1)
    assert tree(tmp_path) == []


def test_health_on_a_missing_store_could_not_check_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "nodir" / "typo.sqlite3"
    error = one_line_error(run(typo, "queue", "health", "jobs", "--max-dead", "0"), NOT_CHECKED)
    assert error.startswith("Error: could not check queue 'jobs': no store at")
    assert tree(tmp_path) == []
    result = run(typo, "queue", "health", "jobs", "--json")
    assert result.exit_code == NOT_CHECKED
    document = json.loads(result.stdout)
    assert document["checked"] is False and document["healthy"] is None
    assert "no store at" in document["error"]
    assert tree(tmp_path) == []


def test_health_on_a_bad_url_or_a_damaged_store_could_not_check(tmp_path: Path) -> None:
    error = one_line_error(
        run("sqlit:///" + str(tmp_path / "q.db"), "queue", "health", "jobs"), NOT_CHECKED
    )
    assert "store scheme 'sqlit'" in error
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database" * 100)
    error = one_line_error(run(damaged, "queue", "health", "jobs"), NOT_CHECKED)
    assert "not a SQLite database" in error
    assert damaged.read_bytes() == b"this is not a database" * 100


def test_health_on_a_queue_the_store_does_not_know_could_not_check(db: Path) -> None:
    error = one_line_error(run(db, "queue", "health", "jbos"), NOT_CHECKED)
    assert "'jbos' holds no messages" in error and "queues with messages: jobs" in error
    assert "--allow-empty" in error
    # Opt in: a queue that may be drained with no worker running.
    allowed = run(db, "queue", "health", "jbos", "--allow-empty", "--max-dead", "0", "--json")
    assert allowed.exit_code == 0, allowed.output
    document = json.loads(allowed.stdout)
    assert document["healthy"] is True and document["queue_state"] == "unseen"
    assert "note: queue 'jbos' holds no messages" in allowed.stderr


def test_health_of_a_drained_queue_with_a_worker_stays_green(db: Path) -> None:
    store = SQLiteStore(db)
    q = PersistentQueue("jobs", store=store)
    q.ack(q.get(block=False))
    store.record_heartbeat("jobs", "w1")
    store.close()
    result = run(db, "queue", "health", "jobs", "--max-dead", "0", "--max-stale-workers", "0")
    assert result.exit_code == 0, result.output
    assert "queue jobs holds no messages (drained: 1 worker(s) attached)" in result.stdout
    assert result.stdout.rstrip().endswith("healthy")
    document = json.loads(run(db, "queue", "health", "jobs", "--json").stdout)
    assert document["checked"] is True and document["queue_state"] == "drained"


def test_health_of_a_drained_queue_with_acked_retention_stays_green(db: Path) -> None:
    store = SQLiteStore(db)
    store.set_keep_acked("jobs", 3600.0)
    q = PersistentQueue("jobs", store=store)
    q.ack(q.get(block=False))
    store.close()
    result = run(db, "queue", "health", "jobs", "--max-dead", "0")
    assert result.exit_code == 0, result.output
    assert "drained: acked retention keeps it" in result.stdout


def test_health_of_a_drained_queue_whose_worker_was_killed_is_unhealthy_not_unchecked(
    db: Path,
) -> None:
    q = PersistentQueue("jobs", store=SQLiteStore(db))
    q.ack(q.get(block=False))
    SQLiteStore(db, clock=ManualClock(time.time() - 3600)).record_heartbeat("jobs", "ghost")
    result = run(db, "queue", "health", "jobs", "--max-stale-workers", "0")
    assert result.exit_code == 1 and "UNHEALTHY" in result.stdout


def test_health_unhealthy_is_still_exit_1(db: Path) -> None:
    result = run(db, "queue", "health", "jobs", "--max-ready-age", "0", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["checked"] is True and document["healthy"] is False


def test_read_only_commands_work_on_an_existing_store(db: Path) -> None:
    assert json.loads(run(db, "queue", "stats", "jobs", "--json").stdout)["ready"] == 1
    assert [
        s["queue"] for s in json.loads(run(db, "queue", "list", "--json").stdout)["queues"]
    ] == ["jobs"]
    assert run(db, "queue", "dead", "jobs").exit_code == 0
    assert run(db, "queue", "inspect", "jobs", "1").exit_code == 0
    assert run(db, "queue", "health", "jobs").exit_code == 0
    drained = run(db, "queue", "stats", "other")  # an existing store, a queue without messages
    assert drained.exit_code == 0 and "note: queue 'other' holds no messages" in drained.stderr


def test_commands_that_add_work_still_create_the_store(tmp_path: Path) -> None:
    new = tmp_path / "new" / "queue.sqlite3"
    result = run(new, "queue", "add", "jobs", "--value", "1")
    assert result.exit_code == 0, result.output
    assert new.exists()
    assert json.loads(run(new, "queue", "stats", "jobs", "--json").stdout)["ready"] == 1
