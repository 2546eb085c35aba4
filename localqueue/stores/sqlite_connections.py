"""A small pool of SQLite connections shared by the threads of one process.

Connections are reused, never opened per call: an operation checks one out,
uses it, and puts it back, so a process holds as many connections as it has
concurrent callers. After ``fork`` the child never touches the parent's
connections (SQLite forbids it); it opens its own.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from localqueue.errors import StoreBusyError, StoreCorruptError, StoreError


class ConnectionPool:
    def __init__(
        self, path: Path, configure: Callable[[sqlite3.Connection], None], busy_timeout: float
    ):
        self._path = path
        self._configure = configure
        self._busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self._path),
            timeout=self._busy_timeout,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,  # a pooled connection moves between threads
        )
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self._path} is closed; open a new one")
            if os.getpid() != self._pid:
                # Forked: the inherited connections belong to the parent. Keep
                # references (closing them here could disturb the parent's locks).
                self._pid = os.getpid()
                self._idle = []
                self._all = []
            if self._idle:
                return self._idle.pop()
        conn = self._open()
        with self._lock:
            self._all.append(conn)
        return conn

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if self._closed or os.getpid() != self._pid:
                conn.close()
            else:
                self._idle.append(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._checkout()
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        finally:
            self._checkin(conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: the write lock is taken up front, so a
        transaction never fails half-way on a lock upgrade."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            if os.getpid() != self._pid:
                return
        for conn in idle:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


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
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"store {path} is read-only ({text}); check the file's permissions")
    if "disk" in lowered and "full" in lowered:
        return StoreError(f"store {path}: the disk is full ({text}); free space and retry")
    return StoreError(f"store {path}: {type(exc).__name__}: {text}")
