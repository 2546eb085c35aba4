"""Store maintenance: info, check, backup, vacuum, migrate, and acked retention, through
the capabilities and through the `localqueue store` / `queue prune` commands."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from localqueue import ManualClock, PersistentQueue
from localqueue.cli import build_cli
from localqueue.store import Lease
from localqueue.store.capabilities import (
    SupportsAckedRetention,
    SupportsBackup,
    SupportsInfo,
    SupportsMigrate,
    SupportsVacuum,
)
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore
from localqueue.stores.sqlite import schema as sqlite_schema


def run(*args: str) -> Result:
    return CliRunner().invoke(build_cli(), list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def doc(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def one_line_error(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def populated(path: Path, n: int = 20) -> None:
    store = SQLiteStore(path)
    q = PersistentQueue("jobs", store=store)
    q.put_many([{"n": i} for i in range(n)])
    dead = q.get(timeout=0)
    q.dead_letter(dead, error="boom")
    store.close()


def make_version_2(path: Path, messages: int = 5) -> None:
    """A file as localqueue with schema version 2 wrote it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    sqlite_schema.migrate(conn, path, sqlite_schema.MIGRATIONS[:2])
    for n in range(messages):
        conn.execute(
            "INSERT INTO lq_messages (queue, payload, state, priority, attempts, created_at, "
            "available_at) VALUES ('jobs', ?, 0, 0, 0, 1.0, 1.0)",
            (json.dumps({"n": n}).encode(),),
        )
    conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


# -- capabilities ------------------------------------------------------------------------------


def test_sqlite_has_every_capability_and_memory_none(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    for capability in (
        SupportsInfo,
        SupportsMigrate,
        SupportsBackup,
        SupportsVacuum,
        SupportsAckedRetention,
    ):
        assert isinstance(store, capability)
        assert not isinstance(MemoryStore(), capability)
    store.close()


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("store", "info"), "info"),
        (("store", "backup", "x.db"), "backup"),
        (("store", "vacuum"), "vacuum"),
        (("store", "migrate"), "migrations"),
        (("queue", "retention", "jobs", "--keep-acked", "1d"), "acked retention"),
        (("queue", "prune", "jobs", "--acked-older-than", "1d"), "acked retention"),
        (("queue", "acked", "jobs"), "acked retention"),
    ],
)
def test_a_store_without_the_capability_says_so(args: tuple[str, ...], what: str) -> None:
    line = one_line_error(run("--store", "memory://", *args))
    assert line == f"Error: store 'memory://' does not support {what}"


def test_check_works_on_any_store() -> None:
    assert doc("--store", "memory://", "store", "check") == {
        "url": "memory://",
        "ok": True,
        "problems": [],
    }


# -- info and check ------------------------------------------------------------------------------


def test_info_reports_versions_settings_sizes_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    info = doc("--store", f"sqlite://{path}?synchronous=FULL", "store", "info")
    assert info["schema_version"] == info["newest_schema_version"] == sqlite_schema.SCHEMA_VERSION
    assert info["settings"]["journal_mode"] == "wal"
    assert info["settings"]["synchronous"] == "FULL"
    assert info["sizes"]["file"] == path.stat().st_size
    assert info["counts"] == {"jobs": {"ready": 19, "dead": 1}}
    text = ok("--store", str(path), "store", "info").stdout
    assert "journal_mode=wal" in text and "jobs" in text


def test_maintenance_commands_never_create_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    backup = tmp_path / "backup.db"
    for args in (
        ("store", "info"),
        ("store", "check"),
        ("store", "vacuum"),
        ("store", "migrate"),
        ("store", "backup", str(backup)),
    ):
        line = one_line_error(run("--store", str(path), *args))
        assert "no store at" in line
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no backup and no partial file either


def test_check_finds_damage_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path, n=300)
    assert doc("--store", str(path), "store", "check")["ok"] is True
    with path.open("r+b") as handle:  # overwrite some b-tree pages, keep the header
        handle.seek(4096 * 3)
        handle.write(b"\x17" * 4096 * 2)
    result = run("--store", str(path), "store", "check")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # not a crash
    assert "malformed" in result.stdout or "integrity" in result.stdout


# -- backup --------------------------------------------------------------------------------------


def test_backup_is_a_verified_single_file_copy(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    dest = tmp_path / "backup.db"
    result = doc("--store", str(path), "store", "backup", str(dest))
    assert result["path"] == str(dest) and result["bytes"] == dest.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db", "q.db"]
    restored = PersistentQueue("jobs", store=SQLiteStore(dest))
    assert restored.stats().ready == 19 and restored.stats().dead == 1
    restored.store.close()


def test_backup_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    dest = tmp_path / "backup.db"
    dest.write_bytes(b"keep me")
    line = one_line_error(run("--store", str(path), "store", "backup", str(dest)))
    assert "already exists" in line and "--force" in line
    assert dest.read_bytes() == b"keep me"
    ok("--store", str(path), "store", "backup", str(dest), "--force")
    assert user_version(dest) == sqlite_schema.SCHEMA_VERSION


def test_backup_bad_destinations_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    before = digest(path)
    missing_dir = one_line_error(run("--store", str(path), "store", "backup", "/nonexistent/x.db"))
    assert "does not exist" in missing_dir
    onto_itself = one_line_error(run("--store", str(path), "store", "backup", str(path), "--force"))
    assert "onto itself" in onto_itself
    one_line_error(run("--store", str(path), "store", "backup", str(tmp_path)), code=2)
    busy_dest = tmp_path / "live.db"
    busy_dest.write_bytes(b"")
    (tmp_path / "live.db-wal").write_bytes(b"")
    in_use = run("--store", str(path), "store", "backup", str(busy_dest), "--force")
    assert "-wal" in one_line_error(in_use)
    assert digest(path) == before


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_backup_gets_the_store_files_permissions_before_any_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    path = tmp_path / "q.db"
    populated(path)
    path.chmod(mode)
    dest = tmp_path / "backup.db"
    seen: list[tuple[int, int]] = []
    copy_to = SQLiteStore._copy_to

    def watched(self: SQLiteStore, partial: Path, where: Path) -> None:
        info = partial.stat()  # the file the data is about to be written into
        seen.append((stat.S_IMODE(info.st_mode), info.st_size))
        copy_to(self, partial, where)

    monkeypatch.setattr(SQLiteStore, "_copy_to", watched)
    old_umask = os.umask(0o022)
    try:
        ok("--store", str(path), "store", "backup", str(dest))
    finally:
        os.umask(old_umask)
    assert seen == [(mode, 0)]  # already narrow while still empty
    assert stat.S_IMODE(dest.stat().st_mode) == mode


def test_backup_is_never_wider_than_the_umask_allows(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    path.chmod(0o666)
    dest = tmp_path / "backup.db"
    old_umask = os.umask(0o077)
    try:
        ok("--store", str(path), "store", "backup", str(dest))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_force_still_refuses_a_dest_that_is_not_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    device_link = tmp_path / "null-link.db"
    device_link.symlink_to(os.devnull)
    # (never /dev/null itself: a regression run as root would replace it)
    for dest in (fifo, device_link):
        line = one_line_error(run("--store", str(path), "store", "backup", str(dest), "--force"))
        assert line == (
            f"Error: cannot back up to {dest}: it exists and is not a regular file "
            "(a device, pipe or socket); give a file path"
        )
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and device_link.is_symlink()
    # A symlink to a regular file is a file path: --force replaces the link.
    target = tmp_path / "old-backup.db"
    target.write_bytes(b"old")
    link = tmp_path / "link.db"
    link.symlink_to(target)
    ok("--store", str(path), "store", "backup", str(link), "--force")
    assert user_version(link) == sqlite_schema.SCHEMA_VERSION


def test_a_damaged_store_is_named_in_backup_errors_not_the_partial_copy(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path, n=300)
    with path.open("r+b") as handle:  # damage b-tree pages, keep the header
        handle.seek(4096 * 3)
        handle.write(b"\x17" * 4096 * 2)
    dest = tmp_path / "copy.db"
    line = one_line_error(run("--store", str(path), "store", "backup", str(dest)))
    assert ".partial" not in line
    assert line.startswith(f"Error: store {path} is damaged (")
    assert line.endswith("it was left untouched: restore it from a backup")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.db"]


# -- vacuum --------------------------------------------------------------------------------------


def test_vacuum_reclaims_the_space_of_deleted_messages(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    q = PersistentQueue("jobs", store=store)
    q.put_many([{"blob": "x" * 2000} for _ in range(500)])
    store.purge("jobs")
    q.put("kept")
    store.close()
    result = doc("--store", str(path), "store", "vacuum")
    assert result["reclaimed"] > 500 * 2000 * 0.8
    assert result["bytes_after"] == path.stat().st_size + 0  # the WAL was checkpointed away
    store = SQLiteStore(path)
    assert [m.value for m in PersistentQueue("jobs", store=store).messages()] == ["kept"]
    store.close()


# -- migrate -------------------------------------------------------------------------------------


def test_migrate_dry_run_lists_versions_3_to_5_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_version_2(path)
    before = digest(path)
    plan = doc("--store", str(path), "store", "migrate", "--dry-run")
    assert (plan["from"], plan["to"], plan["dry_run"]) == (2, 5, True)
    assert [step["version"] for step in plan["steps"]] == [3, 4, 5]
    assert any("lq_acked" in s for s in plan["steps"][0]["statements"])
    assert any("lq_counts" in s for s in plan["steps"][1]["statements"])
    assert any("lq_finished_acked" in s for s in plan["steps"][2]["statements"])
    # info and check look without migrating either
    assert doc("--store", str(path), "store", "info")["schema_version"] == 2
    ok("--store", str(path), "store", "check")
    assert digest(path) == before and user_version(path) == 2


def test_migrate_from_version_2_keeps_every_message(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_version_2(path, messages=7)
    text = ok("--store", str(path), "store", "migrate").stdout
    assert f"migrated schema version 2 -> {sqlite_schema.SCHEMA_VERSION}" in text
    assert user_version(path) == sqlite_schema.SCHEMA_VERSION
    assert "nothing to do" in ok("--store", str(path), "store", "migrate").stdout
    store = SQLiteStore(path)
    q = PersistentQueue("jobs", store=store)
    assert sorted(m.value["n"] for m in q.messages()) == list(range(7))
    store.set_keep_acked("jobs", 60)  # the version-3 tables work
    q.ack(q.get(timeout=0))
    assert len(store.list_acked("jobs")) == 1
    store.close()


def test_newer_schema_is_refused_by_store_commands(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {sqlite_schema.SCHEMA_VERSION + 1}")
    conn.close()
    before = digest(path)
    for args in (("store", "info"), ("store", "migrate"), ("store", "backup", "b.db")):
        assert "upgrade localqueue" in one_line_error(run("--store", str(path), *args))
    assert one_line_error(run("--store", str(path), "store", "check"))
    assert digest(path) == before


# -- acked retention and prune -----------------------------------------------------------------


def retained(tmp_path: Path, clock: ManualClock) -> tuple[SQLiteStore, PersistentQueue]:
    store = SQLiteStore(tmp_path / "q.db", clock=clock)
    return store, PersistentQueue("jobs", store=store)


def test_acks_are_archived_only_while_retention_is_on(tmp_path: Path) -> None:
    clock = ManualClock(1000.0)
    store, q = retained(tmp_path, clock)
    q.put("before")
    q.ack(q.get(timeout=0))
    assert store.list_acked("jobs") == []
    store.set_keep_acked("jobs", 7 * 86400)
    assert store.keep_acked("jobs") == 7 * 86400
    q.put_many(["a", "b"])
    first, second = q.get(timeout=0), q.get(timeout=0)
    clock.advance(5)
    q.ack_many([first, second])
    archived = store.list_acked("jobs")
    assert [(r.id, r.acked_at, r.attempts) for r in archived] == [
        (first.id, 1005.0, 1),
        (second.id, 1005.0, 1),
    ]
    assert archived[0].acked_by is not None
    assert q.stats().total == 0  # acked messages leave the queue
    store.set_keep_acked("jobs", None)
    q.put("after")
    q.ack(q.get(timeout=0))
    assert len(store.list_acked("jobs")) == 2
    store.close()


def test_retention_is_per_queue_and_seen_by_other_processes_connections(tmp_path: Path) -> None:
    clock = ManualClock(1000.0)
    store, _ = retained(tmp_path, clock)
    other = SQLiteStore(tmp_path / "q.db", clock=clock)  # its own connections, opened first
    other_q = PersistentQueue("jobs", store=other)
    other_q.put("x")
    store.set_keep_acked("jobs", 60)
    PersistentQueue("other", store=store).put("y")
    other_q.ack(other_q.get(timeout=0))
    o = PersistentQueue("other", store=other)
    o.ack(o.get(timeout=0))
    assert len(store.list_acked("jobs")) == 1 and store.list_acked("other") == []
    store.close()
    other.close()


def test_purge_stale_acks_and_dead_letters_are_not_archived(tmp_path: Path) -> None:
    clock = ManualClock(1000.0)
    store, q = retained(tmp_path, clock)
    store.set_keep_acked("jobs", 60)
    q.put_many(["inflight", "dead", "stale"])
    inflight = q.get(timeout=0)
    q.dead_letter(q.get(timeout=0), error="x")
    [stale] = store.claim("jobs", worker_id="w", limit=1, lease_seconds=1).leased
    clock.advance(2)  # the lease of "stale" expired: its ack is refused
    assert store.ack("jobs", [Lease(stale.id, stale.receipt or "")]) != []
    assert store.purge("jobs") == 3
    assert store.list_acked("jobs") == []
    del inflight
    store.close()


def test_prune_removes_old_dead_letters_and_old_archived_acks(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    q = PersistentQueue("jobs", store=store)
    store.set_keep_acked("jobs", 3600)
    q.put_many(["ready", "dead", "acked"])
    q.dead_letter(q.get(timeout=0), error="x")  # "ready" is first out; dead-letter it
    q.ack(q.get(timeout=0))
    conn = sqlite3.connect(path)  # age them by two days
    conn.execute("UPDATE lq_messages SET failed_at = failed_at - 172800 WHERE state = 2")
    conn.execute("UPDATE lq_acked SET acked_at = acked_at - 172800")
    conn.commit()
    conn.close()
    store.close()
    preview = doc(
        "--store", str(path), "queue", "prune", "jobs",
        "--dead-older-than", "1d", "--acked-older-than", "1d", "--dry-run",
    )  # fmt: skip
    assert preview == {"queue": "jobs", "dry_run": True, "dead": 1, "acked": 1}
    assert doc("--store", str(path), "queue", "prune", "jobs", "--dead-older-than", "3d") == {
        "queue": "jobs",
        "dry_run": False,
        "dead": 0,
    }
    text = ok(
        "--store", str(path), "queue", "prune", "jobs",
        "--dead-older-than", "1d", "--acked-older-than", "1d",
    ).stdout  # fmt: skip
    assert text.strip() == (
        "deleted 1 dead letter(s) older than 1d and 1 archived acked message(s) "
        "older than 1d from jobs"
    )
    store = SQLiteStore(path)
    left = PersistentQueue("jobs", store=store)
    assert [m.value for m in left.messages()] == ["acked"]  # the ready one is never pruned
    assert store.list_acked("jobs") == []
    store.close()
    one_line_error(run("--store", str(path), "queue", "prune", "jobs"), code=2)


def test_retention_and_acked_commands(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    store.close()
    assert doc("--store", str(path), "queue", "retention", "jobs") == {
        "queue": "jobs",
        "keep_acked": None,
    }
    assert (
        "prune those older than 7d"
        in ok("--store", str(path), "queue", "retention", "jobs", "--keep-acked", "7d").stdout
    )
    store = SQLiteStore(path)
    q = PersistentQueue("jobs", store=store)
    q.put({"to": "a@example.com"})
    q.ack(q.get(timeout=0))
    store.close()
    listing = doc("--store", str(path), "queue", "acked", "jobs")["messages"]
    assert [m["value"] for m in listing] == [{"to": "a@example.com"}]
    assert "a@example.com" in ok("--store", str(path), "queue", "acked", "jobs").stdout
    assert doc("--store", str(path), "queue", "retention", "jobs", "--keep-acked", "off") == {
        "queue": "jobs",
        "keep_acked": None,
    }
    one_line_error(
        run("--store", str(path), "queue", "retention", "jobs", "--keep-acked", "soon"), code=2
    )


def test_a_bad_keep_acked_is_a_usage_error_naming_the_option(tmp_path: Path) -> None:
    """Checked while the options are parsed: the error names --keep-acked,
    and nothing is opened or created (no note about the queue first)."""
    path = tmp_path / "missing" / "q.db"
    for value in ("-1", "soon", ""):
        result = run("--store", str(path), "queue", "retention", "jobs", "--keep-acked", value)
        error = one_line_error(result, code=2)
        assert "'--keep-acked'" in error, error
        assert "holds no messages" not in result.stderr
    assert not path.parent.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "bad\nname"])
def test_retention_and_prune_validate_the_queue_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / "q.db"
    populated(path)
    for args in (
        ("queue", "retention", name, "--keep-acked", "1d"),
        ("queue", "retention", name),
        ("queue", "prune", name, "--dead-older-than", "1d"),
        ("queue", "prune", name, "--acked-older-than", "1d", "--dry-run"),
    ):
        line = one_line_error(run("--store", str(path), *args))
        assert line.startswith("Error: queue name must be"), line
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM lq_queue_settings").fetchone()[0] == 0
    conn.close()


def test_retention_and_prune_note_a_queue_that_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    populated(path)
    note = f"note: queue 'jbos' holds no messages in sqlite://{path}; queues with messages: jobs\n"
    for args in (
        ("queue", "retention", "jbos"),
        ("queue", "prune", "jbos", "--dead-older-than", "1d"),
        ("queue", "prune", "jbos", "--acked-older-than", "1d", "--dry-run"),
    ):
        assert ok("--store", str(path), *args).stderr == note
    assert ok("--store", str(path), "queue", "retention", "jobs").stderr == ""
    # A queue with retention set, or with only archived acks, is known.
    store = SQLiteStore(path)
    store.set_keep_acked("audit", 60)
    audit = PersistentQueue("audit", store=store)
    audit.put("x")
    audit.ack(audit.get(timeout=0))
    store.close()
    assert ok("--store", str(path), "queue", "retention", "audit").stderr == ""
    ok("--store", str(path), "queue", "retention", "audit", "--keep-acked", "off")
    prune = ok("--store", str(path), "queue", "prune", "audit", "--acked-older-than", "1d")
    assert prune.stderr == ""


def test_prune_dry_run_does_not_migrate_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_version_2(path)
    conn = sqlite3.connect(path)  # one dead letter that failed two days ago
    conn.execute("UPDATE lq_messages SET state = 2, failed_at = 1.0 WHERE id = 1")
    conn.commit()
    conn.close()
    before = digest(path)
    preview = doc(
        "--store", str(path), "queue", "prune", "jobs",
        "--dead-older-than", "1d", "--acked-older-than", "1d", "--dry-run",
    )  # fmt: skip
    assert preview == {"queue": "jobs", "dry_run": True, "dead": 1, "acked": 0}
    assert user_version(path) == 2 and digest(path) == before
    # Queue work (here a real prune) migrates it, as every ordinary open does.
    ok("--store", str(path), "queue", "prune", "jobs", "--dead-older-than", "1d")
    assert user_version(path) == sqlite_schema.SCHEMA_VERSION


def test_prune_never_creates_a_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite3"
    for extra in ([], ["--dry-run"]):
        result = CliRunner().invoke(
            build_cli(),
            ["--store", str(missing), "queue", "prune", "jobs", "--dead-older-than", "1d", *extra],
        )
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("Error: no store at") and not missing.exists()
