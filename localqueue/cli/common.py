"""Opening a queue for the queue commands."""

from __future__ import annotations

import click

from localqueue.cli.state import cli_state
from localqueue.queue import PersistentQueue


def open_queue(name: str, *, must_exist: bool = False, warn_empty: bool = False) -> PersistentQueue:
    """A queue on the shared store.

    A queue exists only while it holds messages, so a name that holds none is
    most likely a typo: with ``must_exist`` that is an error naming the queues
    that do; with ``warn_empty`` a note on stderr (the command goes on, so a
    monitor of a drained queue keeps working).
    """
    store = cli_state().store()
    queue = PersistentQueue(name, store=store)
    if (must_exist or warn_empty) and name not in store.queues():
        known = ", ".join(store.queues()) or "none"
        text = f"queue {name!r} holds no messages in {store.url}; queues with messages: {known}"
        if must_exist:
            raise click.ClickException(text)
        click.echo(f"note: {text}", err=True)
    return queue
