"""SQLite connections for the threads of one process: one per thread, reused.

Each thread gets its own connection on first use and keeps it, so no call
pays for opening a connection and no connection is ever used by two threads.
``close()`` must never close a connection another live thread may be using
(that is a use-after-free inside the sqlite3 module): it closes its own
thread's connection and those of threads that have ended; every other
thread closes its own the next time it touches the closed store. After
``fork`` the child never touches the parent's connections (SQLite forbids
it); it opens its own.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from localqueue.errors import StoreBusyError, StoreCorruptError, StoreError

# Bumped in a forked child so every store notices, without a getpid() per call.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# SQLite keeps the busy timeout as a 32-bit count of milliseconds: a larger
# value wraps (PRAGMA busy_timeout turns it into 0, "never wait"), so the
# range is refused at the door instead of bent.
MAX_BUSY_TIMEOUT_MS = 2**31 - 1
MAX_BUSY_TIMEOUT = MAX_BUSY_TIMEOUT_MS // 1000  # 2147483 s, about 24.8 days


def check_busy_timeout(value: object) -> float:
    """A busy timeout SQLite can honour: seconds from 0 to MAX_BUSY_TIMEOUT."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or not 0 <= value <= MAX_BUSY_TIMEOUT
    ):
        raise ValueError(
            f"busy_timeout must be from 0 to {MAX_BUSY_TIMEOUT} seconds (about 24.8 days, "
            f"SQLite's limit), got {value!r}"
        )
    return float(value)


def busy_timeout_ms(seconds: float) -> int:
    """PRAGMA busy_timeout's value; a positive timeout never rounds down to 0."""
    return min(MAX_BUSY_TIMEOUT_MS, math.ceil(seconds * 1000))


# -- paths, store URLs and SQLite URIs ------------------------------------------------------
#
# One file has one path and one URL. The path is absolute, with a leading
# "//" collapsed to "/" (POSIX lets two slashes mean something else, Linux
# and macOS do not; SQLite's URI parser reads "file://x/..." as a host). The
# URL percent-encodes the path's bytes, so every name, with "%", "?", "#",
# spaces or any byte at all, goes through open_store(store.url) unchanged.


def canonical_path(path: str | os.PathLike[str]) -> Path:
    """The absolute path a store is known by (``~`` expanded, no leading ``//``)."""
    absolute = Path(path).expanduser().absolute()
    text = str(absolute)
    if os.name == "posix" and text.startswith("//"):
        absolute = Path("/" + text.lstrip("/"))
    return absolute


def url_path(path: Path) -> str:
    """The percent-encoded form of ``path`` that follows ``sqlite://``."""
    return quote(os.fsencode(path), safe="/")


def path_from_url(text: str) -> Path:
    """The inverse of :func:`url_path`: ``%XX`` escapes are the file name's bytes."""
    return canonical_path(os.fsdecode(unquote_to_bytes(os.fsencode(text))))


def read_only_uri(path: Path) -> str:
    """A SQLite ``file:`` URI that opens ``path`` read-only, whatever its name holds.

    An absolute path gets an explicit empty authority (``file:///...``), so a
    path that starts with ``//`` is never read as ``file://host/...``.
    """
    encoded = url_path(path)
    prefix = "file://" if encoded.startswith("/") else "file:"
    return f"{prefix}{encoded}?mode=ro"


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the C type cannot)."""


# Every pool connection of this process, by file. Closing *any* file
# descriptor of a file drops all of this process's POSIX locks on it, the
# locks SQLite's connections rely on (SQLite shares its own descriptors
# between connections, but knows nothing of one Python opens). So Python
# must not open and close a store file that a connection of this process
# holds: another process could then take it for unused and checkpoint and
# delete its WAL under our feet.
_connections_by_path: dict[str, weakref.WeakSet[_Connection]] = {}
_connections_lock = threading.Lock()


def open_in_this_process(path: Path) -> bool:
    """True when a connection of this process has ``path`` open now."""
    with _connections_lock:
        conns = list(_connections_by_path.get(str(path), ()))
    for conn in conns:
        try:
            conn.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.ProgrammingError:
            continue
        return True
    return False


class ThreadConnections:
    def __init__(
        self, path: Path, configure: Callable[[sqlite3.Connection], None], busy_timeout: float
    ) -> None:
        self._path = path
        self._configure = configure
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        # connection -> the thread that owns it
        self._owners: weakref.WeakKeyDictionary[sqlite3.Connection, threading.Thread] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self._path} is closed; open a new one")
        conn = sqlite3.connect(
            str(self._path),
            timeout=self._busy_timeout,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,  # close() may run on another thread
            factory=_Connection,
        )
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._owners[conn] = threading.current_thread()
        with _connections_lock:
            _connections_by_path.setdefault(str(self._path), weakref.WeakSet()).add(conn)
        self._local.conn = conn
        self._local.generation = _fork_generation
        return conn

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if self._closed:
            if conn is not None:
                local.conn = None
                with contextlib.suppress(sqlite3.Error):
                    conn.close()  # our own connection: safe to close here
            raise StoreError(f"store {self._path} is closed; open a new one")
        if conn is None or local.generation != _fork_generation:
            return self._open()
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; an open transaction is rolled back on error."""
        conn = self.get()
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: the write lock is taken up front, so a
        transaction never fails half-way on a lock upgrade."""
        conn = self.get()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # Also a failed COMMIT (a full disk): never leave the transaction open.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see one consistent state."""
        conn = self.get()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            owned = list(self._owners.items())
        if _fork_generation:
            # In a forked child these may be the parent's connections: never touch them.
            return
        me = threading.current_thread()
        for conn, owner in owned:
            if owner is me or not owner.is_alive():
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        own = getattr(self._local, "conn", None)
        if own is not None:
            self._local.conn = None


def _needs_writable_directory(path: Path) -> bool:
    """True when a WAL file cannot be opened because its -shm cannot be created.

    SQLite opens a WAL database only with its -shm index beside it; when no
    -shm exists (no process has the file open) it must create one, which a
    user who cannot write the directory cannot do, not even to read.
    """
    if open_in_this_process(path):
        return False  # reading the header would drop our connections' locks
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
        wal = header[18:20] == b"\x02\x02"  # file format versions: 2 means WAL
        shm = path.with_name(path.name + "-shm")
        return wal and not shm.exists() and not os.access(path.parent, os.W_OK)
    except OSError:
        return False


def translate_error(exc: sqlite3.Error, path: Path, busy_timeout: float) -> StoreError:
    """Turn a driver error into one line a user can act on (cause kept)."""
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return StoreBusyError(
            f"store {path} is busy: another process held the write lock for more than "
            f"{busy_timeout:g}s; retry, or raise busy_timeout in the store URL"
        )
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return StoreCorruptError(
            f"store {path} is damaged ({text}); it was left untouched: restore it from a backup"
        )
    if ("readonly" in lowered or "read-only" in lowered) and _needs_writable_directory(path):
        return StoreError(
            f"store {path} is read-only for this user: SQLite must create -wal and -shm files "
            f"beside a WAL database to open it, even only to read, and this user cannot write "
            f"its directory {path.parent}; make the directory writable by this user, or run as "
            "a user who can write it"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(
            f"store {path} is read-only ({text}); check the permissions of the file and of its "
            "directory (SQLite writes -wal and -shm files beside it)"
        )
    if "unable to open" in lowered:
        return StoreError(
            f"cannot open store {path} ({text}); check that its directory exists and is "
            "writable by this user"
        )
    if "disk" in lowered and "full" in lowered:
        return StoreError(f"store {path}: the disk is full ({text}); free space and retry")
    if "closed" in lowered:
        return StoreError(f"store {path} is closed; open a new one")
    return StoreError(f"store {path}: {type(exc).__name__}: {text}")
