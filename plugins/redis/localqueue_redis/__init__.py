"""localqueue-redis: a Redis store for localqueue (``redis://``, ``rediss://``, ``unix://``).

Nothing heavy is imported here: the plugin host imports this package to
register the URL schemes, and redis-py loads only when a store is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localqueue_redis.store import RedisStore

__all__ = ["RedisStore"]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from localqueue_redis.store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
