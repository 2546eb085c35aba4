"""Fixtures for testing against a live Redis (pytest plugin ``localqueue_redis``).

``redis_url`` is the server named by ``LOCALQUEUE_TEST_REDIS_URL``
(``bash scripts/test.sh`` starts a throwaway one and sets it). Without it the
tests that need a server skip and say how to enable them - unless
``LOCALQUEUE_REQUIRE_REDIS=1`` (set by ``bash scripts/test.sh``), where a
missing server fails them. ``redis_store_url`` adds a fresh key prefix per
test, whose keys are deleted afterwards, so tests never see each other's
messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

URL_ENV = "LOCALQUEUE_TEST_REDIS_URL"
REQUIRE_ENV = "LOCALQUEUE_REQUIRE_REDIS"

HOW_TO_ENABLE = (
    f"no Redis server for these tests: run `bash scripts/test.sh`, which starts a throwaway "
    f"one (scripts/redis-server.sh; it needs Debian's redis-server package, installed "
    f"automatically when running as root), or set {URL_ENV}=redis://host:port/0"
)


def with_option(url: str, key: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{key}={value}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {HOW_TO_ENABLE}")
        pytest.skip(HOW_TO_ENABLE)
    return url


def drop_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN, never KEYS)."""
    from localqueue_redis.connection import make_client
    from localqueue_redis.url import parse_redis_url

    client = make_client(parse_redis_url(url).connection)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@pytest.fixture
def redis_store_url(redis_url: str) -> Iterator[str]:
    prefix = f"lqtest{uuid.uuid4().hex[:12]}"
    yield with_option(redis_url, "prefix", prefix)
    drop_prefix(redis_url, prefix)
