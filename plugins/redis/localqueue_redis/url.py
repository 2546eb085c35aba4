"""Reading a Redis store URL: ``redis://``, ``rediss://`` (TLS) and ``unix://``.

``redis://[user][:password]@host[:port][/db]?prefix=lq&durability=none``
``rediss://...`` the same over TLS; ``unix:///run/redis.sock?db=0``.

The options below configure the store; a few connection options go on to
redis-py; anything else is refused, so that a typo is an error and not a
setting silently ignored. The password never appears in ``display_url``,
which is what the store reports as its ``url``: it is masked by the kit's
``redact_url``, as every URL the CLI prints is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from localqueue.store import redact_url

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "lq"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0

OURS = ("prefix", "durability", "timeout", "connect_timeout", "db")
# Passed on to redis-py as they are (TLS settings and the client name).
PASSED = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "client_name")

_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DURABILITY = ("required", "none")


@dataclass(frozen=True)
class RedisURL:
    display_url: str  # the URL with the password hidden
    prefix: str  # every key starts with it
    require_durability: bool
    connection: dict[str, Any] = field(default_factory=dict)  # redis-py keyword arguments
    where: str = ""  # host:port or socket path, for messages


def _seconds(options: dict[str, str], name: str, default: float) -> float:
    text = options.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} in the store URL must be a number of seconds") from None
    if not 0.01 <= value <= 3600:
        raise ValueError(f"{name}={text} in the store URL must be between 0.01 and 3600 seconds")
    return value


def parse_redis_url(url: str) -> RedisURL:
    """Split a store URL; ValueError (one line, says what to write) if it is wrong."""
    shown = redact_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"not a Redis URL: {shown!r}; write redis://host:6379/0")
    if parts.fragment:
        raise ValueError(f"the store URL {shown!r} has a #fragment; remove it")
    ours: dict[str, str] = {}
    passed: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ours or key in passed:  # last-wins would pick a prefix silently
            raise ValueError(
                f"option {key!r} is given more than once in the store URL {shown!r}; give it once"
            )
        if key in OURS:
            ours[key] = value
        elif key in PASSED:
            passed[key] = value
        else:
            raise ValueError(
                f"unknown option {key!r} in the store URL {shown!r}; the options are "
                + ", ".join(OURS + PASSED)
            )
    prefix = ours.get("prefix", DEFAULT_PREFIX)
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"prefix={prefix!r} in the store URL must be 1 to 64 letters, digits, '_', '.' or '-'"
        )
    durability = ours.get("durability", "required").lower()
    if durability not in _DURABILITY:
        raise ValueError(
            f"durability={ours['durability']!r} in the store URL must be 'none' (accept a server "
            "that does not persist) or 'required' (the default)"
        )
    connection: dict[str, Any] = {
        "socket_timeout": _seconds(ours, "timeout", DEFAULT_TIMEOUT),
        "socket_connect_timeout": _seconds(ours, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
    }
    if parts.username:
        connection["username"] = unquote(parts.username)
    if parts.password is not None:
        connection["password"] = unquote(parts.password)
    db_text = ours.get("db")
    if scheme == "unix":
        if parts.netloc.rpartition("@")[2]:
            raise ValueError(
                f"the store URL {shown!r} names a host; a socket URL is unix:///path/to/redis.sock"
            )
        if not parts.path.startswith("/") or parts.path == "/":
            raise ValueError(
                f"the store URL {shown!r} has no socket path; write unix:///path/to/redis.sock"
            )
        connection["unix_socket_path"] = unquote(parts.path)
        where = unquote(parts.path)
    else:
        host = parts.hostname
        if not host:
            raise ValueError(f"the store URL {shown!r} has no host; write {scheme}://host:6379/0")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(
                f"the port in the store URL {shown!r} is not a number from 1 to 65535"
            ) from None
        if port == 0:
            raise ValueError(f"the port in the store URL {shown!r} is not a number from 1 to 65535")
        connection["host"] = host
        connection["port"] = port
        where = f"{host}:{port}"
        path = parts.path.strip("/")
        if path:
            if db_text is not None:
                raise ValueError(f"the store URL {shown!r} gives the database twice (path and db=)")
            db_text = path
        if scheme == "rediss":
            connection["ssl"] = True
            for key, value in passed.items():
                if key.startswith("ssl_"):
                    connection[key] = value
    if "client_name" in passed:
        connection["client_name"] = passed["client_name"]
    if scheme != "rediss" and any(key.startswith("ssl_") for key in passed):
        raise ValueError(f"TLS options in the store URL {shown!r} need rediss://")
    try:
        db = int(db_text) if db_text is not None else 0
    except ValueError:
        raise ValueError(
            f"the database in the store URL {shown!r} must be a number (redis://host:6379/0)"
        ) from None
    if db < 0:
        raise ValueError(f"the database in the store URL {shown!r} must be 0 or more")
    connection["db"] = db
    return RedisURL(shown, prefix, durability == "required", connection, where)
