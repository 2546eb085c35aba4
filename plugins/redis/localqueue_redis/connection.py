"""The connection to Redis: opening it, reading the server's settings, and
turning redis-py's failures into the kit's errors.

redis-py's own retries are off: a write whose connection broke may or may
not have been applied, so it is reported as
:class:`~localqueue.store.StoreConnectionLost` (workers ride it out) and
never repeated blindly (a claim applied twice would lease twice). Reads,
which change nothing, are tried once more on a new connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from localqueue.store import StoreBusyError, StoreConnectionLost, StoreError

T = TypeVar("T")
log = logging.getLogger("localqueue.redis")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def make_client(connection: dict[str, Any]) -> redis.Redis:
    return redis.Redis(
        **connection,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        decode_responses=False,
    )


class Runner:
    """Runs one operation against the server and translates its failures."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.closed = False

    def run(self, operation: str, action: Callable[[], T], *, read_only: bool = False) -> T:
        if self.closed:
            raise StoreError(f"the Redis store at {self.where} is closed; open a new one")
        for attempt in (1, 2):
            try:
                return action()
            except redis.AuthenticationError as exc:
                raise StoreError(
                    f"Redis at {self.where} refused the credentials ({first_line(exc)}); check "
                    "the user and password in the store URL"
                ) from exc
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if read_only and attempt == 1:
                    continue
                raise StoreConnectionLost(
                    f"lost the connection to Redis at {self.where} during {operation} "
                    f"({first_line(exc)}); it may or may not have been applied, and the next "
                    "call reconnects"
                ) from exc
            except redis.RedisError as exc:
                raise translate(exc, operation, self.where) from exc
        raise AssertionError("unreachable")


def translate(exc: redis.RedisError, operation: str, where: str) -> StoreError:
    """One line a user can act on; the driver's exception stays the cause."""
    text = first_line(exc)
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return StoreError(
            f"Redis at {where} is a read-only replica and refused {operation}; point the store "
            "URL at the primary"
        )
    if text.startswith("NOPERM") or text.startswith("NOAUTH"):
        return StoreError(
            f"Redis at {where} refused {operation}: {text}; give this user the rights "
            "docs/redis.md lists"
        )
    if text.startswith("BUSY"):
        return StoreBusyError(
            f"Redis at {where} is busy running a long script and refused {operation}, which was "
            "not applied; retry (and keep batches below 10,000 messages)"
        )
    if text.startswith("OOM"):
        return StoreError(
            f"Redis at {where} is out of memory and refused {operation}; raise maxmemory or "
            "drain the queues"
        )
    if text.startswith("MISCONF"):
        return StoreError(
            f"Redis at {where} cannot persist and refuses writes ({text}); fix the server's disk"
        )
    return StoreError(f"Redis at {where} failed {operation}: {text}")
