"""From a ``sqlite://`` URL to an open SQLiteStore, and the scheme's registration.

``sqlite:///abs/path.db`` or a plain path; options ``synchronous`` (NORMAL or
FULL) and ``busy_timeout`` (seconds). Three openers, one per
:class:`~localqueue.store.StoreScheme` field: create if missing (the
factory), only an existing file (``open_existing``), and an existing file
left exactly as found, not even migrated (``open_as_found``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote

from localqueue.clock import Clock
from localqueue.hookspecs import StoreScheme, hookimpl
from localqueue.stores.sqlite.store import DEFAULT_BUSY_TIMEOUT, SQLiteStore


def parse_sqlite_url(url: str) -> tuple[Path, dict[str, str]]:
    """``sqlite:///abs/path.db?synchronous=FULL&busy_timeout=5`` -> (path, options)."""
    rest = url.split("://", 1)[1]
    path_part, _, query = rest.partition("?")
    path_text = unquote(path_part)
    if not path_text:
        raise ValueError(f"SQLite store URL {url!r} has no path; use sqlite:///abs/path/queue.db")
    options = {key: values[-1] for key, values in parse_qs(query).items()}
    unknown = set(options) - {"synchronous", "busy_timeout"}
    if unknown:
        raise ValueError(
            f"unknown SQLite store option(s) {sorted(unknown)} in {url!r}; "
            "known: synchronous=NORMAL|FULL, busy_timeout=SECONDS"
        )
    return Path(path_text).expanduser(), options


def open_sqlite_store(
    url: str, *, clock: Clock | None = None, create: bool = True, migrate: bool = True
) -> SQLiteStore:
    path, options = parse_sqlite_url(url)
    busy = options.get("busy_timeout")
    try:
        busy_timeout = float(busy) if busy is not None else DEFAULT_BUSY_TIMEOUT
    except ValueError:
        raise ValueError(f"busy_timeout must be a number of seconds, got {busy!r}") from None
    return SQLiteStore(
        path,
        clock=clock,
        synchronous=options.get("synchronous", "NORMAL"),
        busy_timeout=busy_timeout,
        create=create,
        migrate=migrate,
    )


def open_existing_sqlite_store(url: str, *, clock: Clock | None = None) -> SQLiteStore:
    """Open a file that exists (StoreNotFound otherwise); never creates one."""
    return open_sqlite_store(url, clock=clock, create=False)


def open_sqlite_store_as_found(url: str, *, clock: Clock | None = None) -> SQLiteStore:
    """Open a file that exists without changing it: no creation, no migration."""
    return open_sqlite_store(url, clock=clock, create=False, migrate=False)


@hookimpl
def localqueue_store_schemes() -> list[StoreScheme]:
    return [
        StoreScheme(
            "sqlite",
            open_sqlite_store,
            "one SQLite file shared by the processes of one machine (WAL)",
            open_existing=open_existing_sqlite_store,
            open_as_found=open_sqlite_store_as_found,
        )
    ]
