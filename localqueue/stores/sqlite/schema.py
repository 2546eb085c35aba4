"""The SQLite store's schema, its migrations, and the checks made on open.

The schema version lives in ``PRAGMA user_version`` and the file is marked as
ours with ``PRAGMA application_id``. Opening a file follows one rule: never
change a file we do not fully understand. A newer version, a foreign SQLite
database or a damaged file raises an error and is left byte-for-byte as it
was; only an empty (new) file is initialised.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from localqueue.errors import SchemaVersionError, StoreCorruptError
from localqueue.stores.sqlite import counts, faults, finished

# "LQ01" read as a big-endian integer: marks a file as a localqueue store.
APPLICATION_ID = 0x4C513031
SQLITE_HEADER = b"SQLite format 3\x00"

# Version N is reached by running MIGRATIONS[N - 1] on a version N - 1 file.
# Append a step to change the schema; never edit a released step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # state: 0 queued (ready or delayed by available_at), 1 inflight, 2 dead.
        # available_at is the one "visible at" time: when a queued message may
        # be claimed, or when an inflight lease ends. Expired leases therefore
        # need no sweep: they are simply claimable again.
        """
        CREATE TABLE lq_messages (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            payload BLOB NOT NULL,
            state INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            available_at REAL NOT NULL,
            leased_by TEXT,
            receipt TEXT,
            error_type TEXT,
            error_message TEXT,
            error_traceback TEXT,
            error_at REAL,
            failed_at REAL,
            dedupe_key TEXT
        )
        """,
        # Serves the claim: walk one queue in delivery order, stop after n.
        # It also covers stats (state is the last column) and "when is the
        # next one due" (a seek per priority). Dead letters are kept out of
        # it so a pile of them never slows a claim. A put maintains only
        # this index (plus the dedupe one when a key is given).
        """
        CREATE INDEX lq_messages_claim
            ON lq_messages (queue, priority DESC, available_at, id, state)
            WHERE state < 2
        """,
        # Dead letters only: listings, requeue and prune by failure time.
        """
        CREATE INDEX lq_messages_dead
            ON lq_messages (queue, failed_at)
            WHERE state = 2
        """,
        # Ids are never reused, without AUTOINCREMENT (which rewrites
        # sqlite_sequence, one more page, in every insert transaction): a
        # delete of the highest id records it here, and inserts start above it.
        "CREATE TABLE lq_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        """
        CREATE TRIGGER lq_messages_high_water AFTER DELETE ON lq_messages
        WHEN old.id > coalesce((SELECT max(id) FROM lq_messages), 0)
        BEGIN
            INSERT INTO lq_meta (key, value) VALUES ('max_id', old.id)
            ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value);
        END
        """,
        """
        CREATE UNIQUE INDEX lq_messages_dedupe
            ON lq_messages (queue, dedupe_key)
            WHERE dedupe_key IS NOT NULL
        """,
    ),
    (
        # Version 2: worker heartbeats, so operators can see live and stale workers.
        """
        CREATE TABLE lq_workers (
            queue TEXT NOT NULL,
            worker_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            last_seen REAL NOT NULL,
            PRIMARY KEY (queue, worker_id)
        ) WITHOUT ROWID
        """,
    ),
    (
        # Version 3: acked-message retention for audit. Per-queue settings
        # live in the file so every process honours them; archived messages
        # go to their own table, so the claim index never sees them.
        """
        CREATE TABLE lq_queue_settings (
            queue TEXT PRIMARY KEY,
            keep_acked REAL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE lq_acked (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            payload BLOB NOT NULL,
            priority INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            acked_at REAL NOT NULL,
            acked_by TEXT,
            dedupe_key TEXT
        )
        """,
        # Listing and pruning by age, per queue.
        "CREATE INDEX lq_acked_age ON lq_acked (queue, acked_at)",
    ),
    # Version 4: counts kept per queue, so stats cost O(queues) at any
    # backlog (localqueue/stores/sqlite/counts.py explains the design).
    counts.MIGRATION_STATEMENTS,
    # Version 5: running totals of acked and dead-lettered messages per
    # queue, for throughput (localqueue/stores/sqlite/finished.py).
    finished.MIGRATION_STATEMENTS,
)

# What each step does, for `localqueue store migrate --dry-run`.
MIGRATION_NOTES: tuple[str, ...] = (
    "messages table, claim/dead/dedupe indexes, id high-water mark",
    "worker heartbeats (lq_workers)",
    "acked-message retention: per-queue settings (lq_queue_settings) and archive (lq_acked)",
    "counts kept per queue (lq_counts), so stats cost the same at any backlog",
    "running totals of acked and dead-lettered messages per queue, for throughput",
)

SCHEMA_VERSION = len(MIGRATIONS)


def check_header(path: Path) -> None:
    """Refuse a non-empty file that is not SQLite at all, before SQLite touches it."""
    try:
        if path.exists() and not path.is_file():
            raise StoreCorruptError(
                f"{path} is not a regular file (a directory, pipe or device); "
                "choose a file path for the store"
            )
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreCorruptError(f"cannot read store file {path}: {exc.strerror}") from exc
    if head and head != SQLITE_HEADER:
        raise StoreCorruptError(
            f"{path} is not a SQLite database (damaged, or a different kind of file); it was "
            "left untouched: restore it from a backup or choose another store path"
        )


def read_identity(conn: sqlite3.Connection, path: Path) -> tuple[int, int, int]:
    """(application_id, user_version, number of schema objects) without writing.

    Read in one transaction: another process may be initialising the file at
    this moment, and three separate reads could see half of its work.
    """
    own_transaction = not conn.in_transaction
    try:
        if own_transaction:
            conn.execute("BEGIN")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            if own_transaction:
                conn.execute("COMMIT")
    except sqlite3.OperationalError:
        raise  # permissions, locks: the caller turns these into their own errors
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(
            f"{path} is damaged or not a localqueue store ({exc}); it was left untouched: "
            "restore it from a backup or choose another store path"
        ) from exc
    return int(app_id), int(version), int(objects)


def verify_identity(
    path: Path, app_id: int, version: int, objects: int, supported: int | None = None
) -> str:
    """Decide what to do with a file: 'ok', 'init' or 'migrate'; raise to refuse."""
    newest = SCHEMA_VERSION if supported is None else supported
    if app_id == 0 and version == 0 and objects == 0:
        return "init"
    if app_id != APPLICATION_ID:
        raise StoreCorruptError(
            f"{path} is a SQLite database but not a localqueue store "
            f"(application_id={app_id}); it was left untouched: choose another store path"
        )
    if version > newest:
        raise SchemaVersionError(
            f"{path} has schema version {version} but this localqueue supports up to "
            f"{newest}; it was left untouched: upgrade localqueue to open it",
            found=version,
            supported=newest,
        )
    return "ok" if version == newest else "migrate"


def migrate(
    conn: sqlite3.Connection,
    path: Path,
    migrations: Sequence[Sequence[str]] | None = None,
) -> tuple[int, int]:
    """Bring the file to the newest version in one transaction; (from, to).

    Runs under BEGIN IMMEDIATE and re-reads the version inside it, so two
    processes opening an old or new file at once migrate it exactly once.
    A failing step rolls the whole migration back.
    """
    steps = MIGRATIONS if migrations is None else migrations
    target = len(steps)
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id, start, objects = read_identity(conn, path)
        if app_id == 0 and start == 0 and objects > 0:
            raise StoreCorruptError(
                f"{path} is a SQLite database but not a localqueue store; it was left "
                "untouched: choose another store path"
            )
        if start > target:
            raise SchemaVersionError(
                f"{path} has schema version {start} but this localqueue supports up to "
                f"{target}; it was left untouched: upgrade localqueue to open it",
                found=start,
                supported=target,
            )
        for step in steps[start:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        conn.execute(f"PRAGMA user_version = {target:d}")
        if faults.armed:
            faults.hit("migrate:before_commit")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return start, target
