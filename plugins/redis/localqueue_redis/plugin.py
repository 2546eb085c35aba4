"""The plugin module the ``localqueue`` entry point names: registers the schemes.

Importing it stays cheap: redis-py is imported only when a Redis store is
opened, so other commands do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localqueue.hookspecs import StoreScheme, hookimpl

if TYPE_CHECKING:
    from localqueue.clock import Clock
    from localqueue.store import Store


def open_redis_store(url: str, *, clock: Clock | None = None) -> Store:
    from localqueue_redis.store import RedisStore

    return RedisStore(url, clock=clock)


def open_existing_redis_store(url: str, *, clock: Clock | None = None) -> Store:
    from localqueue_redis.store import RedisStore

    return RedisStore(url, clock=clock, create=False)


@hookimpl
def localqueue_store_schemes() -> list[StoreScheme]:
    return [
        StoreScheme(
            "redis",
            open_redis_store,
            "Redis, shared by workers on many hosts (one Lua script per operation)",
            open_existing_redis_store,
        ),
        StoreScheme(
            "rediss",
            open_redis_store,
            "Redis over TLS",
            open_existing_redis_store,
        ),
        StoreScheme(
            "unix",
            open_redis_store,
            "Redis on a local Unix socket (unix:///path/to/redis.sock)",
            open_existing_redis_store,
        ),
    ]
