"""``localqueue store ...``: maintenance of the store itself.

Each maintenance operation is an optional capability of a store (see
``localqueue.store_maintenance``); a store that lacks one is told so in one
line rather than failing half way. Other modules may attach commands to this
group (``store copy`` lives in its own module).
"""

from __future__ import annotations

import click


def store_group() -> click.Group:
    @click.group("store")
    def store() -> None:
        """Inspect, check, back up, vacuum and migrate the store."""

    return store
