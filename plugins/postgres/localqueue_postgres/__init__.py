"""localqueue-postgres: a PostgreSQL store for localqueue (``postgresql://`` URLs).

Nothing heavy is imported here: the plugin host imports this package to
register the URL schemes, and psycopg loads only when a store is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localqueue_postgres.store import PostgresStore

__all__ = ["PostgresStore"]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from localqueue_postgres.store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
