"""Every hook localqueue calls, typed and documented.

Plugins implement these with ``@localqueue.hookimpl`` and are found through
the ``localqueue`` entry-point group (see docs/plugins.md). The built-in
stores register through the very same hooks, so a third-party store is a
first-class citizen: nothing in the core special-cases SQLite or memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from localqueue.clock import Clock
    from localqueue.store import Store

PROJECT_NAME = "localqueue"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class StoreFactory(Protocol):
    """Opens a store for a URL of the scheme it was registered under.

    ``clock`` is given only by tests and tools that need to control time; a
    store that keeps time on a server may refuse it with ValueError.
    """

    def __call__(self, url: str, *, clock: Clock | None = None) -> Store: ...


@dataclass(frozen=True)
class StoreScheme:
    """One URL scheme a plugin serves, e.g. ``sqlite`` for ``sqlite:///...``."""

    scheme: str
    factory: StoreFactory
    description: str = ""


@hookspec
def localqueue_store_schemes() -> Sequence[StoreScheme]:  # type: ignore[empty-body]
    """Return the URL schemes this plugin provides stores for.

    Called once per process (the answer is cached), lazily, the first time
    a store URL is resolved; never at import. Every
    scheme must be claimed by exactly one plugin: a scheme two plugins
    return is an error naming both, so a user never gets a store by
    accident of load order. Scheme names are lower case.
    """
