"""Connections for the PostgreSQL store: one per thread, replaced when lost.

Each thread gets its own autocommit connection (psycopg connections are not
meant to be shared by concurrent threads), so no transaction is ever held
open between calls. When a connection breaks, the operation that was running
is reported with :class:`~localqueue.errors.StoreConnectionLost` - its
outcome is unknown, so it is never retried silently - and the thread's next
call connects again. Reads, which change nothing, are retried once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from localqueue.errors import StoreConnectionLost, StoreError

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

# Kept, never closed: connections a forked child inherited from its parent.
# Closing one would end the parent's session (libpq sends Terminate).
_inherited: list[Conn] = []


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(conninfo: str, where: str, prepare: bool = True) -> Conn:
    """A new autocommit connection; StoreError (one line) if it cannot be made.

    ``prepare=False`` turns off psycopg's server-side prepared statements,
    which a transaction-pooling proxy (PgBouncer before 1.21) cannot follow.
    """
    try:
        return psycopg.connect(conninfo, autocommit=True, prepare_threshold=5 if prepare else None)
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to PostgreSQL at {where}: {first_line(exc)}; check the store URL "
            "and that the server is running and reachable"
        ) from exc


class ThreadConnections:
    """Hands each thread its own connection; ``close()`` closes them all.

    A connection belongs to its thread: when a thread ends, its connection
    is closed the next time any thread connects (threads come and go in
    thread-per-request programs, connections must not pile up).
    """

    def __init__(
        self,
        conninfo: str,
        where: str,
        *,
        prepare: bool = True,
    ) -> None:
        self._conninfo = conninfo
        self._where = where
        self._prepare = prepare
        self._local = threading.local()
        self._lock = threading.Lock()
        # id(conn) -> (its thread, conn), for close() and for dead threads.
        self._all: dict[int, tuple[weakref.ref[threading.Thread], Conn]] = {}
        self._pid = os.getpid()
        self._closed = False
        self._connected_once = False

    def get(self, operation: str = "connect") -> Conn:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and os.getpid() == self._pid:
            return conn
        return self._replace(conn, operation)

    def _replace(self, old: Conn | None, operation: str) -> Conn:
        if self._closed:
            raise StoreError(f"store {self._where} is closed; open a new one")
        if os.getpid() != self._pid:
            # A forked child: leave every inherited connection alone.
            with self._lock:
                _inherited.extend(conn for _, conn in self._all.values())
                self._all.clear()
                self._pid = os.getpid()
            old = None
        if old is not None:
            self.discard(old)
        self._close_orphans()
        try:
            conn = connect(self._conninfo, self._where, self._prepare)
        except StoreError as exc:
            if not self._connected_once:
                raise
            # The server was reachable before: an outage (a restart, a
            # failover), which callers such as workers wait out.
            raise StoreConnectionLost(
                f"lost the connection to PostgreSQL at {self._where} and cannot reconnect "
                f"for {operation} ({first_line(exc.__cause__ or exc)}); the next call tries again"
            ) from exc
        self._connected_once = True
        with self._lock:
            self._all[id(conn)] = (weakref.ref(threading.current_thread()), conn)
        self._local.conn = conn
        return conn

    def _close_orphans(self) -> None:
        with self._lock:
            orphans = [
                key for key, (owner, _) in self._all.items()
                if (thread := owner()) is None or not thread.is_alive()
            ]  # fmt: skip
            conns = [self._all.pop(key)[1] for key in orphans]
        for conn in conns:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def discard(self, conn: Conn) -> None:
        with self._lock:
            self._all.pop(id(conn), None)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with contextlib.suppress(psycopg.Error):
            conn.close()

    def open_count(self) -> int:
        """Connections held (for tests and diagnostics)."""
        with self._lock:
            return len(self._all)

    def run(self, operation: str, action: Callable[[Conn], T], *, read_only: bool = False) -> T:
        """Run ``action`` on this thread's connection, translating failures.

        A lost connection is dropped; a read is tried once more on a new one,
        a write raises StoreConnectionLost naming the operation. A server that
        was reachable and no longer is raises StoreConnectionLost as well.
        """
        for attempt in (1, 2):
            conn = self.get(operation)
            try:
                return action(conn)
            except psycopg.OperationalError as exc:
                if not conn.broken and not conn.closed:
                    raise translate(exc, operation, self._where) from exc
                self.discard(conn)
                if read_only and attempt == 1:
                    continue
                raise StoreConnectionLost(
                    f"lost the connection to PostgreSQL at {self._where} during {operation} "
                    f"({first_line(exc)}); it may or may not have been applied, and the next "
                    "call reconnects"
                ) from exc
            except psycopg.Error as exc:
                raise translate(exc, operation, self._where) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            same_process = os.getpid() == self._pid
            conns = [conn for _, conn in self._all.values()] if same_process else []
            self._all.clear()
        for conn in conns:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self._local.conn = None


def translate(exc: psycopg.Error, operation: str, where: str) -> StoreError:
    """One line a user can act on; the driver's exception stays the cause."""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StoreError(
            f"PostgreSQL at {where} refused {operation}: {first_line(exc)}; grant this user "
            "rights on the localqueue schema (docs/postgres.md lists them)"
        )
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return StoreError(
            f"PostgreSQL at {where} is read-only (a standby?) and refused {operation}; point "
            "the store URL at the primary"
        )
    if isinstance(exc, (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)):
        return StoreError(
            f"PostgreSQL at {where} cancelled {operation} ({first_line(exc)}); it was not "
            "applied: retry, or raise the server's lock or statement timeout"
        )
    return StoreError(f"PostgreSQL at {where} failed {operation}: {first_line(exc)}")
