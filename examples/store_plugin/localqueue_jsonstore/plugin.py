"""The module the ``localqueue`` entry point names: it registers ``jsonfile://``.

The plugin host imports this module when a store URL is first resolved and
calls :func:`localqueue_store_schemes`; keep it cheap, with no side effects.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote

from localqueue.store import Clock, StoreScheme, hookimpl
from localqueue_jsonstore.store import DEFAULT_BUSY_TIMEOUT, JsonFileStore

SCHEME = "jsonfile"


def parse_jsonfile_url(url: str) -> tuple[Path, float]:
    """``jsonfile:///abs/path/queue.json?busy_timeout=5`` -> (path, busy timeout).

    Bad URLs are ValueError, as for every store: the caller gave a wrong
    argument, and the store was not touched. The path must be absolute (or
    start with ``~``): a relative one would name a different file in each
    working directory, and a shared queue must be one file.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SCHEME:
        raise ValueError(f"not a jsonfile URL: {url!r}; use jsonfile:///abs/path/queue.json")
    path_text, _, query = rest.partition("?")
    path_text = unquote(path_text)
    if not path_text:
        raise ValueError(f"jsonfile URL {url!r} has no path; use jsonfile:///abs/path/queue.json")
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        raise ValueError(
            f"jsonfile URL {url!r} has a relative path; use an absolute one, with three "
            "slashes: jsonfile:///abs/path/queue.json"
        )
    options = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - {"busy_timeout"})
    if unknown:
        raise ValueError(
            f"unknown jsonfile store option(s) {unknown} in {url!r}; known: busy_timeout=SECONDS"
        )
    busy = options.get("busy_timeout")
    try:
        busy_timeout = DEFAULT_BUSY_TIMEOUT if busy is None else float(busy)
    except ValueError:
        raise ValueError(f"busy_timeout must be a number of seconds, got {busy!r}") from None
    return path, busy_timeout


def open_jsonfile_store(url: str, *, clock: Clock | None = None) -> JsonFileStore:
    """The factory: opens the store, creating the file if nothing is there yet."""
    path, busy_timeout = parse_jsonfile_url(url)
    return JsonFileStore(path, clock=clock, busy_timeout=busy_timeout)


def open_existing_jsonfile_store(url: str, *, clock: Clock | None = None) -> JsonFileStore:
    """Opens only a file that already holds a store: ``StoreNotFound`` (and
    nothing created) otherwise, so a mistyped path in ``localqueue store
    ...`` or ``store copy`` is an error, not a new empty store."""
    path, busy_timeout = parse_jsonfile_url(url)
    return JsonFileStore(path, clock=clock, busy_timeout=busy_timeout, create=False)


@hookimpl
def localqueue_store_schemes() -> list[StoreScheme]:
    # No open_as_found: opening never changes an existing file (there is no
    # schema to migrate), so open_existing already opens it as found.
    return [
        StoreScheme(
            SCHEME,
            open_jsonfile_store,
            "one JSON file shared by the processes of one machine (a teaching store)",
            open_existing=open_existing_jsonfile_store,
        )
    ]
