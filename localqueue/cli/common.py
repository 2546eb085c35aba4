"""Helpers shared by the queue commands: the state, opening a queue, checks."""

from __future__ import annotations

import click

from localqueue.cli.app import CliState
from localqueue.queue import PersistentQueue
from localqueue.store import Store
from localqueue.store_url import open_store


def state() -> CliState:
    ctx = click.get_current_context()
    found = ctx.find_object(CliState)
    if found is None:  # a command invoked outside the localqueue group
        found = ctx.ensure_object(CliState)
    return found


def existing_store() -> Store:
    """The store in force, only if it exists (StoreNotFound otherwise, with
    nothing created: a mistyped path or schema stays a mistake), closed
    when the command ends. An older SQLite file is migrated, as by any
    queue work."""
    store = open_store(state().resolved_url, existing=True)
    click.get_current_context().call_on_close(store.close)
    return store


def open_queue(name: str, *, must_exist: bool = False, warn_empty: bool = False) -> PersistentQueue:
    """A queue on the shared store.

    A queue exists only while it holds messages, so a name that holds none is
    most likely a typo: with ``must_exist`` that is an error naming the queues
    that do; with ``warn_empty`` a note on stderr (the command goes on, so a
    monitor of a drained queue keeps working).
    """
    store = state().store()
    queue = PersistentQueue(name, store=store)
    if (must_exist or warn_empty) and name not in store.queues():
        known = ", ".join(store.queues()) or "none"
        text = f"queue {name!r} holds no messages in {store.url}; queues with messages: {known}"
        if must_exist:
            raise click.ClickException(text)
        click.echo(f"note: {text}", err=True)
    return queue
