"""The fault campaign: the faults operators meet, each ending with every confirmed
message still there once the fault is gone, and a clear error while it lasts.

Disk full (SQLite's page limit, and a real tiny filesystem where mounting is
allowed), read-only files and directories (as an unprivileged user), damaged
files, a newer schema, a write lock held past the busy timeout, SIGKILL during
backup, vacuum and migrate, and a backup taken under two producers and two
consumers. Longer campaigns belong in examples/, not here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from localqueue import PersistentQueue, SchemaVersionError, StoreCorruptError, StoreError
from localqueue.cli import build_cli
from localqueue.stores.sqlite import SQLiteStore
from localqueue.stores.sqlite import schema as sqlite_schema

SRC = str(Path(__file__).resolve().parent.parent)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args: str) -> Result:
    return CliRunner().invoke(build_cli(), list(args))


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def values(path: Path) -> list[object]:
    store = SQLiteStore(path)
    try:
        return [m.value for m in PersistentQueue("jobs", store=store).messages(limit=100_000)]
    finally:
        store.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


# -- disk full ---------------------------------------------------------------------------------


def limit_pages(store: SQLiteStore, pages: int | None) -> None:
    """Test-only "disk full": cap this thread's connection at ``pages`` more pages."""
    conn = store._pool.get()
    count = conn.execute("PRAGMA page_count").fetchone()[0]
    limit = 2**31 - 2 if pages is None else count + pages
    conn.execute(f"PRAGMA max_page_count = {limit}")


def test_disk_full_mid_put_and_put_many_keeps_confirmed_messages(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    q = PersistentQueue("jobs", store=store)
    confirmed: list[object] = [{"n": n} for n in range(20)]
    q.put_many(confirmed)
    limit_pages(store, 3)
    with pytest.raises(StoreError, match="disk is full") as single:
        for n in range(100):  # a put that needs a page beyond the limit fails whole
            q.put({"big": "x" * 3000, "n": n})
            confirmed.append({"big": "x" * 3000, "n": n})
    assert "free space and retry" in str(single.value)
    batch: list[object] = [{"batch": "y" * 3000, "n": n} for n in range(50)]
    with pytest.raises(StoreError, match="disk is full"):
        q.put_many(batch)
    assert [m.value for m in q.messages(limit=1000)] == confirmed  # all or none, nothing lost
    limit_pages(store, None)  # space returns
    q.put_many(batch)
    assert [m.value for m in q.messages(limit=1000)] == [*confirmed, *batch]
    assert store.check() == []
    store.close()


@contextlib.contextmanager
def tiny_filesystem(size: str) -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tiny tmpfs needs root and mount(8)")
    where = Path(tempfile.mkdtemp())
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def test_a_really_full_filesystem(tmp_path: Path) -> None:
    with tiny_filesystem("1m") as where:
        path = where / "q.db"
        store = SQLiteStore(path)
        q = PersistentQueue("jobs", store=store)
        confirmed: list[object] = [{"n": n} for n in range(50)]
        q.put_many(confirmed)
        filler = where / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:  # eat every free block
                handle.write(b"\0" * 65536)
                handle.flush()
        with pytest.raises(StoreError, match="disk is full"):
            for n in range(200):
                q.put({"big": "z" * 4000, "n": n})
                confirmed.append({"big": "z" * 4000, "n": n})
        store.close()
        filler.unlink()  # space returns
        store = SQLiteStore(path)
        q = PersistentQueue("jobs", store=store)
        assert [m.value for m in q.messages(limit=1000)] == confirmed
        q.put("after")
        assert store.check() == []
        store.close()


def test_a_backup_onto_a_full_filesystem_names_dest_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    items = big_store(path, n=6000)  # about 1.5 MiB: more than the filesystem holds
    before = digest(path)
    with tiny_filesystem("1m") as where:
        dest = where / "b.db"
        line = one_line_error(run("--store", str(path), "store", "backup", str(dest)))
        assert line.startswith(f"Error: cannot write backup {dest}: the disk is full ("), line
        assert line.endswith("; free space and retry")
        assert list(where.iterdir()) == []  # no DEST, no partial file
    assert digest(path) == before and values(path) == items


# -- read-only file or directory -------------------------------------------------------------


def as_nobody(action: Callable[[], str]) -> str:
    """Run ``action`` in a forked child under the uid of 'nobody'; its result or error text.

    The tests run as root here, and root writes through any permission bits.
    A forked child keeps the already-imported modules (the interpreter's own
    files may not be readable by nobody) and drops to nobody's uid.
    """
    if os.geteuid() != 0:
        return action()  # permissions already apply to this user
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to run the read-only check as")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                text = action()
            except Exception as exc:
                text = f"{type(exc).__name__}: {exc}"
            os.write(write_end, text.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        out = reader.read().decode()
    os.waitpid(pid, 0)
    return out


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory that 'nobody' can reach (pytest's tmp_path is private to root)."""
    where = Path(tempfile.mkdtemp())
    where.chmod(0o755)
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.mark.parametrize(
    ("file_mode", "dir_mode"),
    [(0o444, 0o777), (0o644, 0o755), (0o666, 0o755)],
    ids=["read-only-file", "read-only-file-and-dir", "read-only-dir"],
)
def test_read_only_store_is_a_clear_error_and_changes_nothing(
    shared_dir: Path, file_mode: int, dir_mode: int
) -> None:
    folder = shared_dir / "data"
    folder.mkdir()
    path = folder / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put_many(["a", "b"])
    store.close()
    assert sorted(p.name for p in folder.iterdir()) == ["q.db"]  # closed cleanly: no -wal
    path.chmod(file_mode)
    folder.chmod(dir_mode)
    before = digest(path)
    build_cli()  # import the commands' modules while they are still readable

    def put() -> str:
        store = SQLiteStore(path)
        try:
            PersistentQueue("jobs", store=store).put("c")
            return "put succeeded"
        finally:
            store.close()

    def cli_put() -> str:
        return run("--store", str(path), "queue", "add", "jobs", "--value", '"c"').stderr

    error = as_nobody(put)
    assert "read-only" in error, error
    assert "Error:" in as_nobody(cli_put) and "read-only" in as_nobody(cli_put)
    folder.chmod(0o755)
    assert digest(path) == before
    assert values(path) == ["a", "b"]


def test_store_commands_in_a_directory_this_user_cannot_write_say_why(shared_dir: Path) -> None:
    folder = shared_dir / "data"
    folder.mkdir()
    path = folder / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put_many(["a", "b"])
    store.close()
    out = shared_dir / "out"
    out.mkdir()
    out.chmod(0o777)
    folder.chmod(0o755)  # only root may write here: no -shm can be created
    before = digest(path)
    build_cli()

    def command(*args: str) -> Callable[[], str]:
        return lambda: one_line_error(run("--store", str(path), *args))

    expected = (
        f"Error: store {path} is read-only for this user: SQLite must create -wal and -shm "
        "files beside a WAL database to open it, even only to read, and this user cannot "
        f"write its directory {folder}; make the directory writable by this user, or run as "
        "a user who can write it"
    )
    for args in (("store", "info"), ("store", "check"), ("store", "backup", str(out / "b.db"))):
        assert as_nobody(command(*args)) == expected
    assert list(out.iterdir()) == []
    assert digest(path) == before and sorted(p.name for p in folder.iterdir()) == ["q.db"]


def test_a_backup_into_a_directory_this_user_cannot_write_names_dest(shared_dir: Path) -> None:
    path = shared_dir / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put("a")
    store.close()
    shared_dir.chmod(0o777)
    path.chmod(0o666)
    locked = shared_dir / "locked"
    locked.mkdir()
    locked.chmod(0o755)
    dest = locked / "b.db"
    build_cli()
    line = as_nobody(
        lambda: one_line_error(run("--store", str(path), "store", "backup", str(dest)))
    )
    assert line == f"Error: cannot write backup {dest}: Permission denied"
    assert list(locked.iterdir()) == []


# -- damaged files and newer schemas ---------------------------------------------------------


def damage_header(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.write(b"NOT SQLITE AT ALL")


def truncate(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 3)


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(path.stat().st_size))


@pytest.mark.parametrize("damage", [damage_header, truncate, random_bytes])
def test_a_damaged_file_is_refused_untouched_and_never_recreated(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put_many([{"n": n} for n in range(300)])
    store.close()
    damage(path)
    before = digest(path)
    with pytest.raises(StoreCorruptError, match="untouched"):
        SQLiteStore(path)
    for args in (("queue", "add", "jobs", "--value", "1"), ("store", "check"), ("store", "info")):
        assert "restore it from a backup" in one_line_error(run("--store", str(path), *args))
    backup = run("--store", str(path), "store", "backup", str(tmp_path / "copy.db"))
    one_line_error(backup)
    assert not (tmp_path / "copy.db").exists()
    assert digest(path) == before
    # Opening read-only to identify the file may leave an empty -wal and a
    # -shm beside it (SQLite's WAL bookkeeping); nothing is ever written.
    assert {p.name for p in tmp_path.iterdir()} <= {"q.db", "q.db-wal", "q.db-shm"}
    wal = tmp_path / "q.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put("kept")
    store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {sqlite_schema.SCHEMA_VERSION + 1}")
    conn.close()
    before = digest(path)
    with pytest.raises(SchemaVersionError):
        SQLiteStore(path)
    line = one_line_error(run("--store", str(path), "queue", "add", "jobs", "--value", "1"))
    assert "upgrade localqueue" in line
    assert digest(path) == before


# -- a write lock held past the busy timeout ---------------------------------------------------

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO lq_meta (key, value) VALUES ('holder', 1)")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def test_a_held_write_lock_is_a_clear_store_busy_error(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    PersistentQueue("jobs", store=store).put_many(["a", "b"])
    store.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        url = f"sqlite://{path}?busy_timeout=0.3"
        started = time.monotonic()
        line = one_line_error(run("--store", url, "queue", "add", "jobs", "--value", '"c"'))
        assert time.monotonic() - started >= 0.3
        assert "is busy" in line and "busy_timeout" in line
        assert "is busy" in one_line_error(run("--store", url, "store", "vacuum"))
        busy = SQLiteStore(path, busy_timeout=0.2)
        with pytest.raises(StoreError, match="is busy"):
            PersistentQueue("jobs", store=busy).put("c")
        busy.close()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=10)
    assert values(path) == ["a", "b"]
    assert integrity(path) == "ok"


# -- SIGKILL during backup, vacuum and migrate -------------------------------------------------

LOOP = """
import sys
from pathlib import Path
from localqueue.stores.sqlite import SQLiteStore
from localqueue.stores.sqlite import faults as sqlite_faults
op, path, point = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if point != "-":
    sqlite_faults.arm(point)
store = SQLiteStore(path, migrate=op != "migrate")
print("ready", flush=True)
n = 0
while True:
    n += 1
    if op == "backup":
        store.backup(path.with_name(f"copy-{n % 2}.db"), overwrite=True)
    elif op == "vacuum":
        store.vacuum()
    else:
        store.migrate()
        break
"""


def big_store(path: Path, n: int = 3000) -> list[object]:
    store = SQLiteStore(path)
    q = PersistentQueue("jobs", store=store)
    items: list[object] = [{"n": i, "pad": "p" * 200} for i in range(n)]
    q.put_many(items)
    store.purge("jobs", filter=None, dry_run=True)
    store.close()
    return items


def kill_during(op: str, path: Path, delay: float, point: str = "-") -> int:
    env = {**os.environ, "PYTHONPATH": SRC}
    child = subprocess.Popen(
        [sys.executable, "-c", LOOP, op, str(path), point],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    if point == "-":
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
    return child.wait(timeout=30)


@pytest.mark.parametrize("op", ["backup", "vacuum"])
def test_sigkill_during_backup_or_vacuum_leaves_the_original_valid(tmp_path: Path, op: str) -> None:
    path = tmp_path / "q.db"
    items = big_store(path)
    rng = random.Random(op)
    for _ in range(3):
        assert kill_during(op, path, rng.uniform(0.01, 0.15)) == -signal.SIGKILL
        assert integrity(path) == "ok"
        assert values(path) == items
        for copy in tmp_path.glob("copy-*.db"):  # a copy at DEST is always complete
            assert integrity(copy) == "ok"


def test_a_backup_killed_before_its_rename_leaves_no_file_at_dest(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    items = big_store(path, n=200)
    assert kill_during("backup", path, 0, point="backup:before_rename") == -signal.SIGKILL
    assert not (tmp_path / "copy-1.db").exists()
    assert [p.name for p in tmp_path.glob(".copy-1.db.partial-*")]  # safe to delete
    assert integrity(path) == "ok" and values(path) == items


def version_2_store(path: Path, n: int = 500) -> list[object]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    sqlite_schema.migrate(conn, path, sqlite_schema.MIGRATIONS[:2])
    items: list[object] = [{"n": i} for i in range(n)]
    conn.executemany(
        "INSERT INTO lq_messages (queue, payload, state, priority, attempts, created_at, "
        "available_at) VALUES ('jobs', ?, 0, 0, 0, 1.0, 1.0)",
        [(json.dumps(item).encode(),) for item in items],
    )
    conn.close()
    return items


def test_sigkill_during_migrate_leaves_version_2_with_every_message(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    items = version_2_store(path)
    assert kill_during("migrate", path, 0, point="migrate:before_commit") == -signal.SIGKILL
    assert tables_and_version(path) == (VERSION_2_TABLES, 2)  # all of the step or none of it
    assert integrity(path) == "ok"
    assert values(path) == items  # opening migrates it now, keeping every message


# The migration itself takes milliseconds, so a kill at a random moment of the
# `store migrate` command almost never lands inside it. This child makes it
# slow: a pause after each statement of the last step, inside the migration's
# transaction, and it says when that transaction has begun.
MIGRATE_SLOWLY = """
import sys, time
from pathlib import Path
from localqueue.stores.sqlite import schema as sqlite_schema
from localqueue.stores.sqlite import SQLiteStore
path, pause = Path(sys.argv[1]), float(sys.argv[2])
read_identity = sqlite_schema.read_identity

def read_identity_and_say_so(conn, where):
    found = read_identity(conn, where)
    if conn.in_transaction:  # migrate()'s own read, under BEGIN IMMEDIATE
        conn.create_function("lq_test_pause", 0, lambda: time.sleep(pause))
        print("migrating", flush=True)
    return found

sqlite_schema.read_identity = read_identity_and_say_so
*earlier, last = sqlite_schema.MIGRATIONS
slow = tuple(s for statement in last for s in (statement, "SELECT lq_test_pause()"))
sqlite_schema.MIGRATIONS = (*earlier, slow)
SQLiteStore(path, migrate=False).migrate()
print("migrated", flush=True)
"""

VERSION_2_TABLES = {"lq_messages", "lq_meta", "lq_workers"}
NEWEST_TABLES = VERSION_2_TABLES | {"lq_queue_settings", "lq_acked", "lq_counts"}


def tables_and_version(path: Path) -> tuple[set[str], int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        return tables, int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def migrate_slowly(path: Path, kill_after: float | None) -> tuple[int | None, list[str]]:
    """Run a slowed migration; SIGKILL it ``kill_after`` seconds into its transaction."""
    pause = 0.3  # eight statements in the last step: at least 2.4s inside the transaction
    child = subprocess.Popen(
        [sys.executable, "-c", MIGRATE_SLOWLY, str(path), str(pause)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert child.stdout is not None
    said = [child.stdout.readline().strip()]
    assert said == ["migrating"]
    if kill_after is not None:
        assert kill_after < 3 * pause
        time.sleep(kill_after)
        child.kill()
    said += [line.strip() for line in child.stdout]
    return child.wait(timeout=30), said


def test_sigkill_at_random_moments_inside_a_migration_leaves_version_2(tmp_path: Path) -> None:
    control = tmp_path / "control.db"
    items = version_2_store(control)
    # Unkilled, the slowed migration completes: the kills below hit real work.
    assert migrate_slowly(control, None) == (0, ["migrating", "migrated"])
    assert tables_and_version(control) == (NEWEST_TABLES, sqlite_schema.SCHEMA_VERSION)
    rng = random.Random(3)
    for n in range(3):
        path = tmp_path / f"killed-{n}.db"
        items = version_2_store(path)
        code, said = migrate_slowly(path, rng.uniform(0.0, 0.8))
        assert (code, said) == (-signal.SIGKILL, ["migrating"])
        assert tables_and_version(path) == (VERSION_2_TABLES, 2)  # none of the step
        assert integrity(path) == "ok"
        assert values(path) == items  # the next open migrates it, keeping every message
        assert tables_and_version(path) == (NEWEST_TABLES, sqlite_schema.SCHEMA_VERSION)


# -- backup and restore under load -------------------------------------------------------------

# Each producer logs "n id" once put() has returned: the log is what it has
# confirmed, so far.
PRODUCER = """
import sys
from localqueue import PersistentQueue
from localqueue.stores.sqlite import SQLiteStore
path, me, count, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
q = PersistentQueue("jobs", store=SQLiteStore(path))
with open(log, "w") as confirmed:
    for n in range(count):
        message = q.put({"p": me, "n": n})
        confirmed.write(f"{n} {message.id}\\n")
        confirmed.flush()
print(count, flush=True)
"""

CONSUMER = """
import sys
from pathlib import Path
from queue import Empty
from localqueue import PersistentQueue
from localqueue.stores.sqlite import SQLiteStore
path, stop = sys.argv[1], Path(sys.argv[2])
q = PersistentQueue("jobs", store=SQLiteStore(path))
while True:
    try:
        q.ack(q.get(timeout=0.05))
    except Empty:
        if stop.exists():
            break
"""


def snapshot_contents(path: Path) -> dict[int, dict[int, int]]:
    """Producer -> {sequence number: message id} held (live or archived) in a store file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        live = conn.execute("SELECT id, payload FROM lq_messages").fetchall()
        archived = conn.execute("SELECT id, payload FROM lq_acked").fetchall()
        both = conn.execute("SELECT count(*) FROM lq_messages JOIN lq_acked USING (id)").fetchone()[
            0
        ]
    finally:
        conn.close()
    assert both == 0  # a message is live or archived, never both
    held: dict[int, dict[int, int]] = {}
    for message_id, payload in [*live, *archived]:
        item = json.loads(payload)
        held.setdefault(item["p"], {})[item["n"]] = message_id
    return held


def confirmed_so_far(log: Path) -> dict[int, int]:
    """Sequence number -> id of every put the producer has seen return (whole lines only)."""
    if not log.exists():
        return {}
    text = log.read_text()
    lines = text[: text.rfind("\n") + 1].splitlines()
    return {int(n): int(message_id) for n, message_id in (line.split() for line in lines)}


def test_backup_and_restore_under_two_producers_and_two_consumers(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    store.set_keep_acked("jobs", 86400)  # acked messages stay visible, so nothing hides
    env = {**os.environ, "PYTHONPATH": SRC}
    stop = tmp_path / "stop"
    per_producer = 2000
    logs = [tmp_path / f"producer-{p}.log" for p in range(2)]
    producers = [
        subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(path), str(p), str(per_producer), str(logs[p])],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(2)
    ]
    consumers = [
        subprocess.Popen([sys.executable, "-c", CONSUMER, str(path), str(stop)], env=env)
        for _ in range(2)
    ]
    # copy -> how many puts each producer had confirmed before the backup
    # began, and after it returned
    copies: list[tuple[Path, list[int], list[int]]] = []
    try:
        deadline = time.monotonic() + 30
        while not (store.stats("jobs").total or store.list_acked("jobs", limit=1)):
            assert time.monotonic() < deadline, "the producers never started"
            time.sleep(0.01)
        # Back up again and again while the producers are still putting.
        while any(p.poll() is None for p in producers) and len(copies) < 10:
            dest = tmp_path / f"backup-{len(copies)}.db"
            before = [len(confirmed_so_far(log)) for log in logs]
            store.backup(dest)
            after = [len(confirmed_so_far(log)) for log in logs]
            copies.append((dest, before, after))
            time.sleep(0.05)
        for producer in producers:
            assert producer.wait(timeout=60) == 0
    finally:
        stop.touch()
        for consumer in consumers:
            consumer.wait(timeout=60)
    confirmed = [confirmed_so_far(log) for log in logs]
    assert [len(c) for c in confirmed] == [per_producer] * 2
    sizes = [sum(map(len, snapshot_contents(copy).values())) for copy, _, _ in copies]
    assert any(0 < size < 2 * per_producer for size in sizes), sizes  # taken mid-run
    for copy, before, after in copies:
        assert integrity(copy) == "ok"
        held = snapshot_contents(copy)
        for p in range(2):
            numbers = sorted(held.get(p, {}))
            # One instant, no gaps: each producer's puts form a prefix of its sequence...
            assert numbers == list(range(len(numbers)))
            # ...holding every put confirmed before the backup began, and nothing beyond
            # what was confirmed when it returned (plus the one put that may have
            # committed without having returned yet)...
            assert before[p] <= len(numbers) <= after[p] + 1, (copy, p, before, after)
            # ...each under the very id its producer was given.
            assert all(held[p][n] == confirmed[p][n] for n in numbers)
        restored = SQLiteStore(copy)
        assert restored.check() == []
        restored.close()
    final = snapshot_contents(path)
    assert final == {p: confirmed[p] for p in range(2)}  # nothing lost, ids as confirmed
    store.close()
