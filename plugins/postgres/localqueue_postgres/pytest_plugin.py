"""Fixtures for testing against a live PostgreSQL (pytest plugin ``localqueue_postgres``).

``postgres_url`` is the server named by ``LOCALQUEUE_TEST_POSTGRES_URL``
(``bash scripts/test.sh`` starts a throwaway one and sets it). Without it the
tests that need a server skip and say how to enable them - unless
``LOCALQUEUE_REQUIRE_POSTGRES=1`` (set by ``bash scripts/test.sh``), where a missing server fails
them. ``postgres_store_url`` adds a fresh schema per test, dropped afterwards,
so tests never see each other's messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

URL_ENV = "LOCALQUEUE_TEST_POSTGRES_URL"
REQUIRE_ENV = "LOCALQUEUE_REQUIRE_POSTGRES"

HOW_TO_ENABLE = (
    f"no PostgreSQL server for these tests: run `bash scripts/test.sh`, which starts a "
    f"throwaway one (it needs Debian's postgresql package, installed automatically when "
    f"running as root), or set {URL_ENV}=postgresql://user@host/db"
)


def with_option(url: str, key: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{key}={value}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {HOW_TO_ENABLE}")
        pytest.skip(HOW_TO_ENABLE)
    return url


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    from localqueue_postgres.url import parse_postgres_url

    with psycopg.connect(parse_postgres_url(url).conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def postgres_store_url(postgres_url: str) -> Iterator[str]:
    schema = f"lq_test_{uuid.uuid4().hex[:12]}"
    # The connections carry the schema as their application_name, so a test
    # can find (and kill) its own sessions without touching anyone else's.
    yield with_option(with_option(postgres_url, "schema", schema), "application_name", schema)
    drop_schema(postgres_url, schema)
