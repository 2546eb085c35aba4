"""Store URLs: what each part means, and one clear line for every mistake.
(No server needed.)"""

from __future__ import annotations

import pytest

from localqueue.store import StoreError, open_store
from localqueue_redis.store import RedisStore
from localqueue_redis.url import parse_redis_url


def test_host_port_database_and_credentials() -> None:
    parsed = parse_redis_url("redis://app:s3cr%40t@cache.internal:6380/2?prefix=jobs")
    assert parsed.connection["host"] == "cache.internal"
    assert parsed.connection["port"] == 6380
    assert parsed.connection["db"] == 2
    assert parsed.connection["username"] == "app"
    assert parsed.connection["password"] == "s3cr@t"
    assert parsed.prefix == "jobs" and parsed.require_durability
    assert "s3cr" not in parsed.display_url and "app:***@cache.internal" in parsed.display_url
    assert parsed.where == "cache.internal:6380"


def test_defaults_tls_and_sockets() -> None:
    plain = parse_redis_url("redis://localhost")
    assert (plain.connection["port"], plain.connection["db"], plain.prefix) == (6379, 0, "lq")
    assert "ssl" not in plain.connection
    tls = parse_redis_url("rediss://:pw@host/0?ssl_cert_reqs=none")
    assert tls.connection["ssl"] is True and tls.connection["ssl_cert_reqs"] == "none"
    assert tls.connection["password"] == "pw" and "pw" not in tls.display_url
    sock = parse_redis_url("unix:///run/redis/redis.sock?db=3&durability=none")
    assert sock.connection["unix_socket_path"] == "/run/redis/redis.sock"
    assert sock.connection["db"] == 3 and not sock.require_durability


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://", "has no host"),
        ("redis:///0", "has no host"),
        ("redis://host:99999/0", "port .* is not a number"),
        ("redis://host:port/0", "port .* is not a number"),
        ("redis://host/zero", "database .* must be a number"),
        ("redis://host/1?db=2", "gives the database twice"),
        ("redis://host/0?pool=3", "unknown option 'pool'"),
        ("redis://host/0?prefix=a:b", "prefix="),
        ("redis://host/0?durability=maybe", "durability="),
        ("redis://host/0?timeout=soon", "number of seconds"),
        ("redis://host/0?timeout=0", "between"),
        ("redis://host/0?ssl_ca_certs=/ca.pem", "need rediss://"),
        ("unix://", "no socket path"),
        ("unix://host/tmp/redis.sock", "names a host"),
        ("redis://host/0#frag", "fragment"),
        ("redis://host/0?prefix=a&prefix=b", "'prefix' is given more than once"),
        ("redis://:pw@host/0?timeout=1&timeout=2", "'timeout' is given more than once"),
    ],
)
def test_bad_urls_say_what_to_write(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        parse_redis_url(url)
    assert "\n" not in str(caught.value)


def test_a_password_never_shows_in_an_error() -> None:
    with pytest.raises(ValueError) as caught:
        parse_redis_url("redis://user:hunter2@host/0?bogus=1")
    assert "hunter2" not in str(caught.value) and "user:***@host" in str(caught.value)


def test_an_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to Redis at 127.0.0.1:1: .*check the "):
        RedisStore("redis://127.0.0.1:1/0?connect_timeout=2")


def test_every_scheme_resolves_to_this_plugin() -> None:
    for url in ("redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0", "unix:///nonexistent.sock"):
        with pytest.raises(StoreError, match="cannot connect to Redis"):
            open_store(url + ("?" if "?" not in url else "&") + "connect_timeout=1")


def test_a_busy_server_is_a_busy_error_that_says_what_to_do() -> None:
    import redis

    from localqueue.store import StoreBusyError
    from localqueue_redis.connection import translate

    error = translate(redis.ResponseError("BUSY Redis is busy running a script."), "put", "h:1")
    assert isinstance(error, StoreBusyError) and "not applied; retry" in str(error)
