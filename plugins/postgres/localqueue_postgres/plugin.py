"""The plugin module the ``localqueue`` entry point names: registers the schemes.

Importing it stays cheap: psycopg is imported only when a PostgreSQL store
is opened, so other commands do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localqueue.hookspecs import StoreScheme, hookimpl

if TYPE_CHECKING:
    from localqueue.clock import Clock
    from localqueue.store import Store


def open_postgres_store(url: str, *, clock: Clock | None = None) -> Store:
    from localqueue_postgres.store import PostgresStore

    return PostgresStore(url, clock=clock)


def open_existing_postgres_store(url: str, *, clock: Clock | None = None) -> Store:
    from localqueue_postgres.store import PostgresStore

    return PostgresStore(url, clock=clock, create=False)


@hookimpl
def localqueue_store_schemes() -> list[StoreScheme]:
    description = "PostgreSQL, shared by workers on many hosts (FOR UPDATE SKIP LOCKED)"
    return [
        StoreScheme(name, open_postgres_store, description, open_existing_postgres_store)
        for name in ("postgresql", "postgres")
    ]
