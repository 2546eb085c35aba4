"""The SQLite reference store: file handling, schema versions, pragmas, locking."""

from __future__ import annotations

import hashlib
import queue as stdlib_queue
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from localqueue import (
    ManualClock,
    PersistentQueue,
    SchemaVersionError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    open_store,
)
from localqueue.store import Lease, NewMessage
from localqueue.stores.sqlite import SQLiteStore, parse_sqlite_url
from localqueue.stores.sqlite import schema as sqlite_schema
from localqueue.stores.sqlite.statements import CLAIM_SQL


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_populated(path: Path) -> None:
    with PersistentQueue("q", store=SQLiteStore(path)) as q:
        q.put_many([{"n": n} for n in range(10)])
        q.store.close()


def test_new_file_is_created_with_wal_and_version(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "q.sqlite3"
    store = SQLiteStore(path)
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == sqlite_schema.APPLICATION_ID
    conn.close()


def test_empty_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    with PersistentQueue("q", store=f"sqlite://{path}") as q:
        q.put(1)
        assert q.qsize() == 1


def test_newer_schema_is_refused_and_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    make_populated(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {sqlite_schema.SCHEMA_VERSION + 1}")
    conn.close()
    before = digest(path)
    with pytest.raises(SchemaVersionError) as info:
        SQLiteStore(path)
    message = str(info.value)
    assert f"schema version {sqlite_schema.SCHEMA_VERSION + 1}" in message
    assert f"supports up to {sqlite_schema.SCHEMA_VERSION}" in message
    assert "upgrade localqueue" in message
    assert info.value.found == sqlite_schema.SCHEMA_VERSION + 1
    assert digest(path) == before


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(StoreCorruptError, match="not a localqueue store"):
        SQLiteStore(path)
    assert digest(path) == before


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file\n" * 50, bytes(range(256)) * 40, b"\x00" * 4096],
    ids=["text", "random", "zeros"],
)
def test_non_sqlite_file_is_refused_never_recreated(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "q.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StoreCorruptError, match="left untouched"):
        SQLiteStore(path)
    assert path.read_bytes() == content


def test_damaged_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    make_populated(path)
    data = bytearray(path.read_bytes())
    data[0:6] = b"XXXXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError):
        SQLiteStore(path)
    assert path.read_bytes() == bytes(data)


def test_truncated_file_gives_clear_error_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    with PersistentQueue("q", store=SQLiteStore(path)) as q:
        q.put_many(["x" * 500 for _ in range(200)])  # several pages
        q.store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    truncated = path.read_bytes()
    with pytest.raises(StoreCorruptError, match="damaged"):
        store = SQLiteStore(path)
        try:
            PersistentQueue("q", store=store).messages(limit=1000)
        finally:
            store.close()
    assert path.read_bytes() == truncated


def test_version_1_file_migrates_to_current(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    assert sqlite_schema.migrate(conn, path, sqlite_schema.MIGRATIONS[:1]) == (0, 1)
    conn.execute(
        "INSERT INTO lq_messages (queue, payload, state, priority, attempts, created_at, "
        "available_at) VALUES ('q', '\"kept\"', 0, 0, 0, 1.0, 1.0)"
    )
    conn.close()
    with PersistentQueue("q", store=SQLiteStore(path)) as q:
        assert [m.value for m in q.messages()] == ["kept"]
        q.store.record_heartbeat("q", "w1")  # needs the version-2 table
        assert "w1" in q.stats().workers
        q.store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.SCHEMA_VERSION
    conn.close()


def test_migration_runs_in_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "q.sqlite3"
    make_populated(path)
    newer = (*sqlite_schema.MIGRATIONS, ("ALTER TABLE lq_messages ADD COLUMN note TEXT",))
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", newer)
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", len(newer))
    with PersistentQueue("q", store=SQLiteStore(path)) as q:
        assert q.qsize() == 10
        q.store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(newer)
    assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(lq_messages)")]
    conn.close()


def test_failed_migration_rolls_back_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "q.sqlite3"
    make_populated(path)
    before = sqlite_schema.SCHEMA_VERSION
    broken = (
        *sqlite_schema.MIGRATIONS,
        ("ALTER TABLE lq_messages ADD COLUMN note TEXT", "THIS IS NOT SQL"),
    )
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", broken)
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StoreError, match="syntax error"):
        SQLiteStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == before
    assert "note" not in [row[1] for row in conn.execute("PRAGMA table_info(lq_messages)")]
    assert conn.execute("SELECT count(*) FROM lq_messages").fetchone()[0] == 10
    conn.close()


def test_url_options(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/q.db?synchronous=full&busy_timeout=2.5")
    assert isinstance(store, SQLiteStore)
    assert store.synchronous == "FULL" and store.busy_timeout == 2.5
    with store._pool.connection() as conn:  # the pragma is per connection
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
    store.close()
    default = SQLiteStore(tmp_path / "n.db")
    with default._pool.connection() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    default.close()


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("sqlite://", "has no path"),
        ("sqlite:///tmp/x.db?sync=full", "unknown SQLite store option"),
        ("sqlite:///tmp/x.db?synchronous=OFF", "synchronous must be one of"),
        ("sqlite:///tmp/x.db?busy_timeout=soon", "busy_timeout"),
        ("sqlite:///tmp/x.db?busy_timeout=-1", "busy_timeout"),
    ],
)
def test_bad_url_options_are_clear(url: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        open_store(url)


def test_relative_and_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_sqlite_url("sqlite:///abs/q.db")[0] == Path("/abs/q.db")
    store = open_store("sqlite://rel.db")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "rel.db"
    store.close()


def plan(store: SQLiteStore, sql: str, params: dict[str, object]) -> str:
    with store._pool.connection() as conn:
        return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_claim_is_a_range_seek_on_the_claim_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    params: dict[str, object] = {
        "queue": "q", "max_priority": 2**31, "now": 0, "until": 1, "worker": "w", "limit": 1,
        "max": 3,
    }  # fmt: skip
    claim = plan(store, CLAIM_SQL, params)
    # Not due rows (delayed, leased) are outside the range, never scanned.
    assert "lq_messages_claim (queue=? AND priority=? AND available_at<?)" in claim, claim
    assert "TEMP B-TREE" not in claim, claim
    assert "(queue=? AND priority<?)" in claim, claim  # the skip scan over levels
    assert "SCAN lq_messages" not in claim, claim
    store.close()


def test_claim_skips_a_large_delayed_backlog_of_higher_priority(
    tmp_path: Path, clock: ManualClock
) -> None:
    q = PersistentQueue("q", store=SQLiteStore(tmp_path / "q.db", clock=clock))
    for _ in range(4):
        q.put_many(["later"] * 500, priority=9, delay=3600)
    q.put_many(["now"] * 3, priority=1)
    got = q.get_many(5, block=False)
    assert [m.value for m in got] == ["now"] * 3
    with pytest.raises(stdlib_queue.Empty):
        q.get(block=False)
    clock.advance(3600)
    assert q.get(block=False).value == "later"
    q.close()
    q.store.close()


def test_store_busy_error_after_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = open_store(f"sqlite://{path}?busy_timeout=0.2")
    q = PersistentQueue("q", store=store)
    q.put("before")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(StoreBusyError, match="busy"):
        q.put("during")
    assert time.monotonic() - started >= 0.15
    blocker.execute("ROLLBACK")
    blocker.close()
    q.put("after")
    assert [m.value for m in q.messages()] == ["before", "after"]
    assert store.check() == []
    store.close()


def test_many_threads_and_handles_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    errors: list[BaseException] = []
    acked: list[int] = []
    lock = threading.Lock()

    def producer(n: int) -> None:
        try:
            with PersistentQueue("q", store=f"sqlite://{path}") as q:
                for i in range(200):
                    q.put({"p": n, "i": i})
        except BaseException as exc:
            errors.append(exc)

    def consumer() -> None:
        try:
            with PersistentQueue("q", store=f"sqlite://{path}") as q:
                idle = 0
                while idle < 20:
                    try:
                        msg = q.get(timeout=0.05)
                    except stdlib_queue.Empty:
                        idle += 1
                        continue
                    idle = 0
                    q.ack(msg)
                    with lock:
                        acked.append(msg.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=consumer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(acked) == 800 and len(set(acked)) == 800


def test_concurrent_creation_of_one_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def open_and_put(n: int) -> None:
        try:
            barrier.wait()
            store = SQLiteStore(path)
            PersistentQueue("q", store=store).put(n)
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_put, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    with PersistentQueue("q", store=f"sqlite://{path}") as q:
        assert sorted(m.value for m in q.messages()) == list(range(8))


def test_ids_are_never_reused_after_ack(tmp_path: Path) -> None:
    with PersistentQueue("q", store=f"sqlite://{tmp_path}/q.db") as q:
        first = q.put(1)
        q.ack(q.get(block=False))
        assert q.put(2).id > first.id
        batch = q.put_many([3, 4, 5])
        assert [m.id for m in batch] == [first.id + 2, first.id + 3, first.id + 4]
        assert [q.inspect(m.id).value for m in batch] == [3, 4, 5]


def test_ids_are_never_reused_after_purge_and_reopen(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/q.db"
    with PersistentQueue("q", store=url) as q:
        last = q.put_many([1, 2, 3])[-1]
        assert q.purge() == 3
    with PersistentQueue("q", store=url) as q:
        assert q.put("after reopen").id == last.id + 1
        keyed = q.put_many(["k"], dedupe_keys=["key"])[0]
        assert keyed.id == last.id + 2
        q.ack(q.get(block=False))
        q.ack(q.get(block=False))
        assert q.put_many([5, 6])[0].id == last.id + 3


def test_store_path_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreCorruptError, match="not a regular file"):
        SQLiteStore(tmp_path)


def test_refused_file_with_pending_wal_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    make_populated(path)
    # A newer localqueue wrote to the file and crashed: its WAL is still there.
    code = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint=0')\n"
        f"c.execute('PRAGMA user_version = {sqlite_schema.SCHEMA_VERSION + 1}')\n"
        'c.execute("UPDATE lq_messages SET priority = 7")\n'
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    wal = path.with_name(path.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    before = (digest(path), digest(wal))
    with pytest.raises(SchemaVersionError):
        SQLiteStore(path)
    assert (digest(path), digest(wal)) == before


@pytest.mark.parametrize("name", ["my%20jobs.db", "what?.db", "100%.db"])
def test_bare_paths_with_url_characters(tmp_path: Path, name: str) -> None:
    with PersistentQueue("q", store=str(tmp_path / name)) as q:
        q.put(1)
    assert (tmp_path / name).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        name
    ]


def test_closing_a_store_under_busy_threads_does_not_crash(tmp_path: Path) -> None:
    code = f"""
import threading, time
from localqueue import PersistentQueue, StoreError
from localqueue.stores.sqlite import SQLiteStore
store = SQLiteStore({str(tmp_path / "q.db")!r})
q = PersistentQueue("q", store=store)
errors = []
def loop():
    try:
        while True:
            q.put("x"); q.stats()
    except StoreError as exc:
        errors.append(str(exc))
threads = [threading.Thread(target=loop) for _ in range(4)]
for t in threads: t.start()
time.sleep(0.2)
store.close()
for t in threads: t.join(10)
assert len(errors) == 4 and all("closed" in e for e in errors), errors
print("ok")
"""
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "ok"


def test_a_claim_that_fails_after_an_earlier_pass_returns_what_it_leased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim walks priority levels in several statements; if a later one
    fails (busy), the messages an earlier one leased are returned, not left
    inflight with nobody holding them."""
    store = SQLiteStore(tmp_path / "q.sqlite3")
    store.enqueue("q", [NewMessage(b"high", priority=5), NewMessage(b"low", priority=0)])
    real = store._pool.get()
    claims = 0

    class SecondClaimFails:
        def execute(self, sql: str, *args: Any) -> Any:
            nonlocal claims
            if sql == CLAIM_SQL:
                claims += 1
                if claims == 2:
                    raise sqlite3.OperationalError("database is locked")
            return real.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(store._pool, "get", lambda: SecondClaimFails())
    leased = store.claim("q", worker_id="w", limit=2, lease_seconds=30).leased
    assert [r.payload for r in leased] == [b"high"] and claims == 2
    monkeypatch.undo()
    # The one claimed is held by this caller (it has the receipt); the other
    # is still ready.
    assert store.ack("q", [Lease(leased[0].id, leased[0].receipt or "")]) == []
    assert store.stats("q").ready == 1
    store.close()


def test_opening_a_file_twice_in_one_process_keeps_the_first_stores_locks(tmp_path: Path) -> None:
    # Closing any descriptor of a file drops every POSIX lock this process
    # holds on it. Opening a second store on the same file used to read the
    # header through a descriptor of its own and close it: the first store's
    # locks went with it, and another process closing its connection took
    # itself for the last user and checkpointed and deleted the WAL under
    # the first store (seen as a waiting get that never saw a put, then
    # "disk I/O error").
    path = tmp_path / "q.db"
    first = SQLiteStore(path)
    q = PersistentQueue("jobs", store=first)
    q.put("kept")
    SQLiteStore(path).close()
    subprocess.run(
        [sys.executable, "-c",
         "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('SELECT count(*) FROM lq_messages').fetchall(); c.close()", str(path)],
        check=True,
    )  # fmt: skip
    assert path.with_name("q.db-wal").exists(), "the other process took itself for the last user"
    q.put("second")
    assert [q.get(timeout=1).value, q.get(timeout=1).value] == ["kept", "second"]
    first.close()
