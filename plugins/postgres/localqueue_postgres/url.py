"""Reading a ``postgresql://`` store URL: our options out, libpq's passed on.

``postgresql://user:secret@host:5432/db?schema=jobs&notify=off&sslmode=require``
selects the database as libpq would (every libpq URI parameter works), and
the options below configure the store. The password never appears in
``display_url``, which is what the store reports as its ``url``: it is
masked by the kit's ``redact_url``, as every URL the CLI prints is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from localqueue.store import redact_url

DEFAULT_SCHEMA = "localqueue"
# With LISTEN/NOTIFY a waiter also re-checks this often, in case a
# notification was missed (a reconnect, or a pooler that drops them).
DEFAULT_POLL_WITH_NOTIFY = 1.0
DEFAULT_POLL_WITHOUT_NOTIFY = 0.1

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SYSTEM_SCHEMAS = {"information_schema"}
_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


@dataclass(frozen=True)
class PostgresURL:
    conninfo: str  # what libpq gets: the URL without our options
    display_url: str  # the URL with the password hidden
    schema: str
    notify: bool
    poll_interval: float
    prepare: bool = True  # server-side prepared statements (off behind PgBouncer < 1.21)


def parse_postgres_url(url: str) -> PostgresURL:
    """Split a store URL; ValueError (one line, says what to write) if it is wrong."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}; write postgresql://user@host/db")
    ours: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        # Last-wins would silently pick one of two schemas (or hosts): refuse.
        if key in seen:
            raise ValueError(
                f"option {key!r} is given more than once in the store URL "
                f"{redact_url(url)!r}; give it once"
            )
        seen.add(key)
        if key in ("schema", "notify", "poll_interval", "prepare"):
            ours[key] = value
        else:
            passed.append((key, value))
    schema = ours.get("schema", DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"schema={schema!r} in the store URL is not a plain lower-case PostgreSQL name; "
            "use letters, digits and underscores, starting with a letter"
        )
    if schema.startswith("pg_") or schema in _SYSTEM_SCHEMAS:
        raise ValueError(
            f"schema={schema!r} in the store URL is one of PostgreSQL's own; choose another name"
        )
    notify = _switch(ours, "notify")
    prepare = _switch(ours, "prepare")
    default_poll = DEFAULT_POLL_WITH_NOTIFY if notify else DEFAULT_POLL_WITHOUT_NOTIFY
    poll_text = ours.get("poll_interval")
    try:
        poll = float(poll_text) if poll_text is not None else default_poll
    except ValueError:
        raise ValueError(
            f"poll_interval={poll_text!r} in the store URL must be a number of seconds"
        ) from None
    if not 0.001 <= poll <= 60:
        raise ValueError(f"poll_interval={poll_text} must be between 0.001 and 60 seconds")
    # Built by hand: urlunsplit drops the "//" of a URL without a host
    # (postgresql:///db, with the host from PGHOST or ?host=/socket/dir).
    # libpq accepts "postgresql" and "postgres" alike.
    conninfo = _join(parts.netloc, parts.path, urlencode(passed))
    # The password and secret parameters (password, sslpassword, ...) masked
    # by the kit's rule, so store.url and the CLI hide the same things.
    shown = urlencode([*passed, *ours.items()], safe="*/")
    display = redact_url(_join(parts.netloc, parts.path, shown))
    return PostgresURL(conninfo, display, schema, notify, poll, prepare)


def _join(netloc: str, path: str, query: str) -> str:
    return f"postgresql://{netloc}{path}" + (f"?{query}" if query else "")


def _switch(options: dict[str, str], name: str) -> bool:
    text = options.get(name, "on").lower()
    if text not in _TRUE | _FALSE:
        raise ValueError(f"{name}={options[name]!r} in the store URL must be on or off")
    return text in _TRUE
