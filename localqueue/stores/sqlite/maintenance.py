"""Maintenance of a SQLite store file: info, migrations, online backup, vacuum.

Mixed into SQLiteStore, each operation uses a connection of its own rather
than the store's per-thread ones, so it never runs inside (or leaves behind)
a transaction of the caller's thread, and closing it never disturbs them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from localqueue import __version__
from localqueue.errors import StoreBusyError, StoreCorruptError, StoreError
from localqueue.store import QueueStats
from localqueue.store.capabilities import (
    BackupResult,
    Migration,
    SchemaStatus,
    StoreInfo,
    VacuumResult,
)
from localqueue.stores.sqlite import faults, schema
from localqueue.stores.sqlite.connections import translate_error
from localqueue.stores.sqlite.counts import COUNTS_VERSION
from localqueue.stores.sqlite.retention import RETENTION_VERSION, install_archive_trigger

# Counts by user-visible state, one scan; :now is the store clock.
COUNTS_SQL = """
SELECT queue,
    CASE WHEN state = 2 THEN 'dead'
         WHEN available_at <= :now THEN 'ready'
         WHEN state = 1 THEN 'inflight'
         ELSE 'delayed' END,
    count(*)
FROM lq_messages GROUP BY 1, 2
"""


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


class SQLiteMaintenance:
    """The SupportsInfo, SupportsMigrate, SupportsBackup and SupportsVacuum capabilities."""

    path: Path
    url: str
    busy_timeout: float
    synchronous: str

    def _now(self) -> float:
        raise NotImplementedError

    def all_stats(self) -> list[QueueStats]:
        raise NotImplementedError  # SQLiteCounts

    def acked_counts(self) -> dict[str, int]:
        raise NotImplementedError  # SQLiteCounts

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> None:
        raise NotImplementedError  # SQLiteCounts

    @contextlib.contextmanager
    def _own_connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            yield conn
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path, self.busy_timeout) from exc
        finally:
            conn.close()

    # -- info ------------------------------------------------------------------

    def info(self) -> StoreInfo:
        with self._own_connection() as conn:
            conn.execute("BEGIN")  # one snapshot for every number
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
                free_pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
                counts: dict[str, dict[str, int]] = {}
                if version < COUNTS_VERSION:  # an older file, opened as found
                    for queue, state, n in conn.execute(COUNTS_SQL, {"now": self._now()}):
                        counts.setdefault(queue, {})[state] = int(n)
                if RETENTION_VERSION <= version < COUNTS_VERSION:
                    for queue, n in conn.execute(
                        "SELECT queue, count(*) FROM lq_acked GROUP BY queue"
                    ):
                        counts.setdefault(queue, {})["acked_archived"] = int(n)
            finally:
                conn.execute("COMMIT")
        if version >= COUNTS_VERSION:
            # The kept counts: O(queues) however large the backlog.
            for stats in self.all_stats():
                counts[stats.queue] = {
                    state: n
                    for state, n in (
                        ("ready", stats.ready),
                        ("delayed", stats.delayed),
                        ("inflight", stats.inflight),
                        ("dead", stats.dead),
                    )
                    if n
                }
            for queue, n in self.acked_counts().items():
                counts.setdefault(queue, {})["acked_archived"] = n
        settings: dict[str, object] = {
            "journal_mode": journal,
            "synchronous": self.synchronous,
            "busy_timeout": self.busy_timeout,
            "page_size": page_size,
            "sqlite_version": sqlite3.sqlite_version,
            "localqueue_version": __version__,
        }
        sizes = {
            "file": file_size(self.path),
            "wal": file_size(_sidecar(self.path, "-wal")),
            "free": free_pages * page_size,
        }
        return StoreInfo(
            url=self.url,
            kind="sqlite",
            schema_version=version,
            newest_schema_version=schema.SCHEMA_VERSION,
            settings=settings,
            sizes=sizes,
            counts={queue: dict(sorted(c.items())) for queue, c in sorted(counts.items())},
        )

    # -- migrations ------------------------------------------------------------

    def schema_status(self) -> SchemaStatus:
        with self._own_connection() as conn:
            app_id, version, objects = schema.read_identity(conn, self.path)
        schema.verify_identity(self.path, app_id, version, objects)  # refuses newer/foreign
        pending = [
            Migration(
                version=number,
                description=(
                    schema.MIGRATION_NOTES[number - 1]
                    if number <= len(schema.MIGRATION_NOTES)
                    else "(no description)"
                ),
                statements=tuple(" ".join(s.split()) for s in schema.MIGRATIONS[number - 1]),
            )
            for number in range(version + 1, len(schema.MIGRATIONS) + 1)
        ]
        return SchemaStatus(version=version, newest=len(schema.MIGRATIONS), pending=pending)

    def migrate(self, *, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Run the pending steps in one transaction, then build what they left
        to build: the counts of a file migrated to version 4 are folded in
        short transactions, reporting ``progress(done, total)``."""
        with self._own_connection() as conn:
            result = schema.migrate(conn, self.path)
        # The calling thread's connection may predate lq_acked; give it the trigger now.
        pool = getattr(self, "_pool", None)
        if pool is not None and result[1] >= RETENTION_VERSION:
            with contextlib.suppress(sqlite3.Error):
                install_archive_trigger(pool.get(), self._now)
        if pool is not None and result[1] >= COUNTS_VERSION:
            self.catch_up(progress)
        return result

    # -- backup ----------------------------------------------------------------

    def backup(self, dest: Path, *, overwrite: bool = False) -> BackupResult:
        dest = Path(dest).expanduser().absolute()
        self._check_backup_dest(dest, overwrite)
        started = time.monotonic()
        # A hidden file beside dest, renamed over it only once verified: a
        # killed or failed backup never leaves a partial file at dest.
        partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
        try:
            self._create_partial(partial)
            self._copy_to(partial, dest)
            with partial.open("rb") as handle:
                os.fsync(handle.fileno())
            if faults.armed:
                faults.hit("backup:before_rename")
            os.replace(partial, dest)
        except OSError as exc:
            self._remove_partial(partial)
            raise StoreError(f"cannot write backup {dest}: {exc.strerror or exc}") from exc
        except BaseException:
            self._remove_partial(partial)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return BackupResult(dest, file_size(dest), time.monotonic() - started)

    @staticmethod
    def _remove_partial(partial: Path) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            leftover = _sidecar(partial, suffix)
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _create_partial(self, partial: Path) -> None:
        """Create the empty copy with the store file's permissions, before any data.

        The copy holds every payload, so it is never readable by more users
        than the store is: it gets the store's permission bits (narrowed by
        the umask, as a new file is), set when the file is created.
        """
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except OSError as exc:
            raise StoreError(f"cannot read store file {self.path}: {exc.strerror}") from exc
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()  # left by a killed backup of a process with our pid
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        os.close(os.open(partial, flags, mode & 0o666))

    def _check_backup_dest(self, dest: Path, overwrite: bool) -> None:
        if not dest.parent.is_dir():
            raise StoreError(f"cannot back up to {dest}: directory {dest.parent} does not exist")
        if dest.is_dir():
            raise StoreError(f"cannot back up to {dest}: it is a directory; give a file path")
        if dest.exists() and not dest.is_file():
            raise StoreError(
                f"cannot back up to {dest}: it exists and is not a regular file "
                "(a device, pipe or socket); give a file path"
            )
        if dest.exists() and dest.resolve() == self.path.resolve():
            raise StoreError(f"cannot back up {self.path} onto itself; give another path")
        if dest.exists() and not overwrite:
            raise StoreError(f"{dest} already exists; choose another path or use --force")
        for suffix in ("-wal", "-shm"):
            if _sidecar(dest, suffix).exists():
                raise StoreError(
                    f"{dest} has a {suffix} file beside it, so a program may be using it; "
                    "stop it or choose another path"
                )

    def _copy_to(self, partial: Path, dest: Path) -> None:
        with self._own_connection() as source:
            try:
                target = sqlite3.connect(str(partial), isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write backup {dest}: {exc}") from exc
            try:
                # pages=-1 copies everything in one step under one read
                # transaction: a consistent snapshot, while WAL lets writers go on.
                source.backup(target, pages=-1)
                result = [row[0] for row in target.execute("PRAGMA integrity_check")]
                if result != ["ok"]:
                    raise StoreCorruptError(
                        f"the backup copy failed its integrity check ({result[0]}); "
                        f"{self.path} may be damaged: run 'localqueue store check'"
                    )
                # A self-contained file: no -wal beside the copy.
                target.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.Error as exc:
                raise self._backup_error(exc, dest) from exc
            finally:
                target.close()

    def _backup_error(self, exc: sqlite3.Error, dest: Path) -> StoreError:
        """Name the file at fault: the store when it is damaged or busy, else DEST.

        The hidden partial file is an implementation detail; the user knows
        the store and DEST.
        """
        error = translate_error(exc, self.path, self.busy_timeout)
        if isinstance(error, (StoreCorruptError, StoreBusyError)):
            return error
        text = str(exc)
        if "disk" in text.lower() and "full" in text.lower():
            return StoreError(
                f"cannot write backup {dest}: the disk is full ({text}); free space and retry"
            )
        return StoreError(f"cannot write backup {dest}: {text}")

    # -- vacuum ----------------------------------------------------------------

    def _total_size(self) -> int:
        return file_size(self.path) + file_size(_sidecar(self.path, "-wal"))

    def vacuum(self) -> VacuumResult:
        before = self._total_size()
        with self._own_connection() as conn:
            conn.execute("VACUUM")
            # VACUUM writes the new pages to the WAL; a checkpoint moves them
            # into the file and truncates both (readers may delay this).
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return VacuumResult(bytes_before=before, bytes_after=self._total_size())
