"""What the server keeps across a crash, read when the store opens.

A queue on a Redis server that persists nothing loses every message on a
restart, and one that evicts keys under memory pressure loses them at
random: the store refuses both, in one line that says what to change,
unless the URL says ``?durability=none``. Managed servers often disable
``CONFIG``; then the store says so (a warning) and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from localqueue.store import StoreError
from localqueue_redis.connection import log

EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


@dataclass(frozen=True)
class Persistence:
    appendonly: str | None  # "yes" / "no", None when CONFIG is not allowed
    appendfsync: str | None
    save: str | None
    maxmemory_policy: str | None

    @property
    def known(self) -> bool:
        return self.appendonly is not None

    def describe(self) -> str:
        if not self.known:
            return "unknown (CONFIG is disabled on this server)"
        parts = []
        if self.appendonly == "yes":
            parts.append(f"AOF, appendfsync {self.appendfsync}")
        if self.save:
            parts.append(f"RDB snapshots (save {self.save})")
        return " + ".join(parts) or "none"


def _config(client: redis.Redis, name: str) -> str | None:
    for key, value in client.config_get(name).items():
        text = key.decode() if isinstance(key, bytes) else str(key)
        if text == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def read_persistence(client: redis.Redis, where: str) -> Persistence:
    try:
        return Persistence(
            _config(client, "appendonly"),
            _config(client, "appendfsync"),
            _config(client, "save"),
            _config(client, "maxmemory-policy"),
        )
    except redis.ResponseError as exc:
        log.warning(
            "cannot read the persistence settings of Redis at %s (%s: CONFIG is disabled, as on "
            "many managed servers); make sure it keeps an append-only file",
            where,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        return Persistence(None, None, None, None)


def check_durability(persistence: Persistence, where: str, required: bool) -> None:
    if not required or not persistence.known:
        return
    if persistence.appendonly != "yes" and not persistence.save:
        raise StoreError(
            f"Redis at {where} persists nothing (appendonly no, no save rules): a restart would "
            "lose every message; turn on the append-only file (appendonly yes, appendfsync "
            "always), or add ?durability=none to the store URL to accept that"
        )
    if persistence.maxmemory_policy in EVICTING:
        raise StoreError(
            f"Redis at {where} evicts keys when full (maxmemory-policy "
            f"{persistence.maxmemory_policy}), which would drop messages; set it to noeviction, "
            "or add ?durability=none to the store URL to accept that"
        )
