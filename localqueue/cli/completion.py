"""Shell completion of queue names (click's completion, docs/cli.md).

``queue_argument`` is the QUEUE argument every queue command takes; pressing
Tab completes it with the names of the queues in the store in force (the
``--store`` already typed on the line, else ``$LOCALQUEUE_STORE``, else the
default). Completion never creates, migrates or writes a store, and never
prints an error into the user's shell: a missing or broken store completes
nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from localqueue.store.url import open_store, resolve_store_url

# A shell waits for Tab's answer: a store that does not answer in this long
# (a PostgreSQL server that accepts the connection and then hangs) completes
# nothing rather than freezing the user's shell.
COMPLETION_TIMEOUT = 2.0


def queue_names_in_store(store_url: str | None) -> list[str]:
    """The queues of an existing store, or none if it cannot be read in time."""
    names: list[str] = []

    def read() -> None:
        names.extend(_read_queue_names(store_url))

    # A daemon thread: if it hangs, the completing process still exits.
    reader = threading.Thread(target=read, name="localqueue-completion", daemon=True)
    reader.start()
    reader.join(COMPLETION_TIMEOUT)
    return list(names) if not reader.is_alive() else []


def _read_queue_names(store_url: str | None) -> list[str]:
    try:
        store = open_store(resolve_store_url(store_url), existing=True, as_found=True)
    except Exception:  # a missing store, a bad URL, a broken plugin: complete nothing
        return []
    try:
        return sorted(store.queues())
    except Exception:
        return []
    finally:
        store.close()


def complete_queue_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    # The root group's callback does not run while completing, so the
    # --store value is read from its parsed parameters, not from CliState.
    store_url = ctx.find_root().params.get("store_url")
    return [
        CompletionItem(name)
        for name in queue_names_in_store(store_url)
        if name.startswith(incomplete)
    ]


F = TypeVar("F", bound=Callable[..., Any])


def queue_argument(**kwargs: Any) -> Callable[[F], F]:
    """``@click.argument("queue")`` that completes queue names."""
    decorator: Callable[[F], F] = click.argument(
        "queue", shell_complete=complete_queue_names, **kwargs
    )
    return decorator
