"""What every command shares, public for plugin commands: the store in force and --debug.

A plugin that adds commands through ``localqueue_cli_commands`` reads the
global ``--store`` and ``--debug`` options through :func:`cli_state` and
opens the store with :meth:`CliState.store` or :func:`existing_store`, exactly
as the built-in commands do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from localqueue.store import Store, open_store, resolve_store_url


@dataclass
class CliState:
    """What every command shares: the store URL (opened on first use) and --debug."""

    store_url: str | None = None
    debug: bool = False
    _store: Store | None = field(default=None, repr=False)

    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.store_url)
        return self._store

    @property
    def resolved_url(self) -> str:
        """The store URL in force (the --store value, else $LOCALQUEUE_STORE, else the default)."""
        return resolve_store_url(self.store_url)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def cli_state() -> CliState:
    """The state of the running ``localqueue`` command (a default one when a
    command is invoked on its own, outside the ``localqueue`` group, as in tests)."""
    ctx = click.get_current_context()
    found = ctx.find_object(CliState)
    if found is None:
        found = ctx.ensure_object(CliState)
    return found


def existing_store() -> Store:
    """The store in force, only if it exists (StoreNotFound otherwise, with
    nothing created: a mistyped path or schema stays a mistake), closed
    when the command ends. An older SQLite file is migrated, as by any
    queue work."""
    store = open_store(cli_state().resolved_url, existing=True)
    click.get_current_context().call_on_close(store.close)
    return store
