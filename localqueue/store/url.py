"""Choosing a store from a URL: explicit argument, then LOCALQUEUE_STORE, then default.

The scheme picks the plugin (``sqlite:///abs/path.db``, ``memory://``, or a
scheme a store plugin registers). A bare filesystem path means SQLite.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast
from urllib.parse import quote, unquote_plus

import pluggy

from localqueue.clock import Clock
from localqueue.errors import PluginError, UnknownStoreError
from localqueue.hookspecs import StoreScheme
from localqueue.plugins import memoized
from localqueue.store.protocol import Store

STORE_ENV = "LOCALQUEUE_STORE"

# Query parameters whose values are secrets: these names, and any name that
# contains one of the words (compared case-insensitively, after decoding).
SECRET_QUERY_PARAMS = frozenset({"password", "sslpassword"})
_SECRET_WORDS = ("password", "secret", "token")
REDACTED = "***"


def _is_secret_param(name: str) -> bool:
    key = unquote_plus(name).lower()
    return key in SECRET_QUERY_PARAMS or any(word in key for word in _SECRET_WORDS)


def redact_url(url: str) -> str:
    """``url`` fit to print: the password and secret query values masked.

    ``postgresql://app:s3cret@db/jobs?sslpassword=x&schema=q`` becomes
    ``postgresql://app:***@db/jobs?sslpassword=***&schema=q``. The password
    in the userinfo and the values of query parameters named ``password``,
    ``sslpassword`` or containing "password", "secret" or "token" (any case)
    become ``***``; every other byte is kept, so a URL without secrets (a
    ``sqlite://`` path, ``memory://``) comes back unchanged. Text that is not
    a ``scheme://`` URL is returned as it is. Never raises. Every command
    that prints or writes a store URL shows it through this function.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The authority ends at the first "/", "?" or "#" (as urlsplit and libpq
    # read it); a password with a raw "@" is cut at the last "@" before that.
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if at != -1:
            end = min(end, at)
    authority, tail = rest[:end], rest[end:]
    userinfo, at_sign, host = authority.rpartition("@")
    if at_sign and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        authority = f"{user}:{REDACTED}@{host}"
    tail, hash_sign, fragment = tail.partition("#")
    path, question, query = tail.partition("?")
    if question:
        pieces = []
        for piece in query.split("&"):
            name, equals, _value = piece.partition("=")
            pieces.append(f"{name}={REDACTED}" if equals and _is_secret_param(name) else piece)
        query = "&".join(pieces)
    return f"{scheme}://{authority}{path}{question}{query}{hash_sign}{fragment}"


def default_store_url() -> str:
    """``sqlite:///<XDG data home>/localqueue/queue.sqlite3``."""
    data_home = os.environ.get("XDG_DATA_HOME") or ""
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return f"sqlite://{_path_in_url(base / 'localqueue' / 'queue.sqlite3')}"


def resolve_store_url(url: str | None = None) -> str:
    """The URL in force: ``url`` if given, else $LOCALQUEUE_STORE, else the default."""
    if url is not None and url.strip():
        chosen = url.strip()
    else:
        chosen = (os.environ.get(STORE_ENV) or "").strip() or default_store_url()
    if "://" not in chosen:
        if ":" in chosen.split("/")[0]:  # "postgres:..." without slashes: a typo, not a path
            raise UnknownStoreError(
                f"store URL {chosen!r} has no '://'; write it as scheme://..., "
                "e.g. sqlite:///abs/path/queue.db or memory://"
            )
        # A bare path is a SQLite file; make it absolute so the URL means one file.
        # Percent-encode it: '%' and '?' in a file name are not URL syntax.
        chosen = f"sqlite://{_path_in_url(Path(chosen).expanduser().absolute())}"
    return chosen


def _path_in_url(path: Path) -> str:
    # The file system's bytes, percent-encoded: a name that is not valid
    # UTF-8 (a Latin-1 file name, say) survives the round trip through the
    # SQLite store's URL parsing, which decodes with os.fsdecode.
    return quote(os.fsencode(path), safe="/")


def url_scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def store_schemes(*, allow_failures: bool = False) -> Mapping[str, tuple[StoreScheme, str]]:
    """Every registered scheme -> (its registration, the plugin that made it).

    Asked of the plugins once per plugin manager; later calls reuse the answer.
    ``allow_failures`` leaves out plugins that failed to load instead of
    raising PluginError (for ``localqueue plugins``, which reports them).
    """
    return memoized("store_schemes", _collect_store_schemes, allow_failures=allow_failures)


def _collect_store_schemes(pm: pluggy.PluginManager) -> dict[str, tuple[StoreScheme, str]]:
    found: dict[str, tuple[StoreScheme, str]] = {}
    for impl in pm.hook.localqueue_store_schemes.get_hookimpls():
        name = impl.plugin_name
        try:
            entries = list(cast("Sequence[StoreScheme]", impl.function() or ()))
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed in localqueue_store_schemes: "
                f"{type(exc).__name__}: {exc}; set LOCALQUEUE_DISABLE_PLUGINS={name} to skip it"
            ) from exc
        for entry in entries:
            if not isinstance(entry, StoreScheme) or not entry.scheme:
                raise PluginError(
                    f"plugin {name!r} returned {entry!r} from localqueue_store_schemes; "
                    "expected StoreScheme objects with a scheme name"
                )
            scheme = entry.scheme.lower()
            if scheme in found:
                other = found[scheme][1]
                raise PluginError(
                    f"store scheme {scheme!r} is registered by two plugins, {other!r} and "
                    f"{name!r}; uninstall one or set LOCALQUEUE_DISABLE_PLUGINS={name}"
                )
            found[scheme] = (entry, name)
    return found


def open_store(
    url: str | None = None,
    *,
    clock: Clock | None = None,
    existing: bool = False,
    as_found: bool = False,
) -> Store:
    """Open the store that ``url`` (or the environment, or the default) names.

    ``existing=True`` opens only a store that exists (StoreNotFound, with
    nothing created, otherwise) where the store's plugin can tell.
    ``as_found=True`` also leaves an older schema unmigrated, where the
    plugin offers that (``StoreScheme.open_as_found``): for maintenance
    commands that look before they change anything.
    """
    resolved = resolve_store_url(url)
    scheme = url_scheme(resolved)
    schemes = store_schemes()
    if scheme not in schemes:
        known = ", ".join(f"{name} ({plugin})" for name, (_, plugin) in sorted(schemes.items()))
        near = difflib.get_close_matches(scheme, list(schemes), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UnknownStoreError(
            f"no installed plugin provides store scheme {scheme!r}{hint}; "
            f"known schemes: {known or 'none'}"
        )
    entry, _plugin = schemes[scheme]
    if as_found and entry.open_as_found is not None:
        return entry.open_as_found(resolved, clock=clock)
    if (existing or as_found) and entry.open_existing is not None:
        return entry.open_existing(resolved, clock=clock)
    return entry.factory(resolved, clock=clock)
