"""Opening a queue for the queue commands."""

from __future__ import annotations

import click

from localqueue.cli.state import cli_state, existing_store
from localqueue.queue import PersistentQueue
from localqueue.store import Store, redact_url


def open_queue(
    name: str,
    *,
    must_exist: bool = False,
    warn_empty: bool = False,
    existing: bool = False,
) -> PersistentQueue:
    """A queue on the shared store.

    With ``existing`` the store must already exist (``StoreNotFound``, one
    ``Error:`` line, otherwise) and nothing is created: for the commands that
    only look, or only remove, so that a mistyped path or PostgreSQL schema
    fails instead of becoming a new, empty store. Without it the store is
    created on first use, as the commands that add work need.

    A queue exists only while it holds messages, so a name that holds none is
    most likely a typo: with ``must_exist`` that is an error naming the queues
    that do; with ``warn_empty`` a note on stderr (the command goes on, so a
    monitor of a drained queue keeps working).
    """
    store = existing_store() if existing else cli_state().store()
    queue = PersistentQueue(name, store=store)
    if (must_exist or warn_empty) and name not in store.queues():
        text = no_messages_text(store, name)
        if must_exist:
            raise click.ClickException(text)
        click.echo(f"note: {text}", err=True)
    return queue


def no_messages_text(store: Store, name: str) -> str:
    """``queue 'x' holds no messages in URL; queues with messages: a, b``."""
    known = ", ".join(store.queues()) or "none"
    where = redact_url(store.url)
    return f"queue {name!r} holds no messages in {where}; queues with messages: {known}"
