"""From a ``sqlite://`` URL to an open SQLiteStore, and the scheme's registration.

``sqlite:///abs/path.db`` or a plain path; options ``synchronous`` (NORMAL or
FULL) and ``busy_timeout`` (seconds, 0 to 2147483), each at most once. The
path is percent-decoded (``%XX`` are the file name's bytes), the inverse of
``SQLiteStore.url``; ``sqlite:////abs/path.db`` (four slashes, as SQLAlchemy
writes it) is the same file as ``sqlite:///abs/path.db``. Three openers, one per
:class:`~localqueue.store.StoreScheme` field: create if missing (the
factory), only an existing file (``open_existing``), and an existing file
left exactly as found, not even migrated (``open_as_found``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from localqueue.clock import Clock
from localqueue.hookspecs import StoreScheme, hookimpl
from localqueue.stores.sqlite.connections import check_busy_timeout, path_from_url
from localqueue.stores.sqlite.store import DEFAULT_BUSY_TIMEOUT, SQLiteStore

KNOWN_OPTIONS = ("synchronous", "busy_timeout")


def parse_sqlite_url(url: str) -> tuple[Path, dict[str, str]]:
    """``sqlite:///abs/path.db?synchronous=FULL&busy_timeout=5`` -> (path, options)."""
    rest = url.split("://", 1)[1]
    path_part, _, query = rest.partition("?")
    if not path_part:
        raise ValueError(f"SQLite store URL {url!r} has no path; use sqlite:///abs/path/queue.db")
    # Blank values are kept: "?busy_timeout=" is a mistake to report, not to skip.
    pairs = parse_qsl(query, keep_blank_values=True)
    unknown = {key for key, _ in pairs} - set(KNOWN_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown SQLite store option(s) {sorted(unknown)} in {url!r}; "
            "known: synchronous=NORMAL|FULL, busy_timeout=SECONDS"
        )
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise ValueError(
                f"SQLite store option {key!r} is given more than once in {url!r}; give it once"
            )
        options[key] = value
    return path_from_url(path_part), options


def open_sqlite_store(
    url: str, *, clock: Clock | None = None, create: bool = True, migrate: bool = True
) -> SQLiteStore:
    path, options = parse_sqlite_url(url)
    busy = options.get("busy_timeout")
    busy_timeout = DEFAULT_BUSY_TIMEOUT
    if busy is not None:
        try:
            busy_timeout = check_busy_timeout(float(busy))
        except ValueError:
            check_busy_timeout(busy)  # always refuses a str: the message quotes it as written
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
