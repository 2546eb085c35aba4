"""One exception tree for everything localqueue raises on purpose.

Callers catch :class:`LocalQueueError` to handle any queue failure; the
subclasses exist so that code can react to the few cases that call for a
different action (a lost lease, a store that is busy, a newer schema).
Every message is one line that says what went wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "LeaseExpired",
    "LocalQueueError",
    "MessageNotFound",
    "PluginError",
    "SchemaVersionError",
    "SerializationError",
    "StoreBusyError",
    "StoreConnectionLost",
    "StoreCorruptError",
    "StoreError",
    "StoreNotFound",
    "UnknownStoreError",
    "stale_lease_error",
]


class LocalQueueError(Exception):
    """Base class of every error localqueue raises deliberately."""


class LeaseExpired(LocalQueueError):
    """The receipt is not the current one: the lease expired or was re-issued.

    Nothing was changed. Another delivery of the same message may be running;
    the handler's work should be idempotent (at-least-once delivery).
    """

    def __init__(self, message: str, *, message_ids: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.message_ids = tuple(message_ids)


class MessageNotFound(LocalQueueError, KeyError):
    """No message with that id exists in the queue (it was acked or purged)."""

    def __str__(self) -> str:  # KeyError would wrap the text in quotes
        return str(self.args[0]) if self.args else ""


class SerializationError(LocalQueueError, TypeError):
    """A value could not be turned into bytes, or bytes back into a value."""


class PluginError(LocalQueueError):
    """A plugin failed to load, or two plugins claim the same thing."""


class UnknownStoreError(LocalQueueError):
    """A store URL names a scheme that no installed plugin provides."""


class StoreError(LocalQueueError):
    """The store failed; the driver's exception is attached as ``__cause__``."""


class StoreBusyError(StoreError):
    """Another process held the store's write lock longer than the busy timeout."""


class StoreNotFound(StoreError):
    """Asked to open only an existing store, and there is none at that URL.

    Nothing was created: a mistyped path or schema name stays a mistake
    instead of becoming a new, empty store.
    """


class StoreConnectionLost(StoreError):
    """The connection to a networked store broke during an operation.

    The operation may or may not have been applied; the next call opens a new
    connection. A claim that was applied but never seen leaves its leases to
    expire (the messages are delivered again); a put that was applied twice
    after a retry is avoided by giving it a dedupe key.
    """


class StoreCorruptError(StoreError):
    """The file is damaged or is not a localqueue store; it was left untouched."""


class SchemaVersionError(StoreError):
    """The store was written by a newer localqueue; it was left untouched."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


def stale_lease_error(ids: Sequence[int]) -> LeaseExpired:
    """The error for a fenced operation the store refused: the lease is gone."""
    shown = ", ".join(str(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
    return LeaseExpired(
        f"lease is no longer held for message(s) {shown}: it expired or was re-delivered; "
        "nothing was changed",
        message_ids=ids,
    )
