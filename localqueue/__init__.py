"""localqueue: durable, at-least-once job queues for Python.

    from localqueue import PersistentQueue

    with PersistentQueue("emails") as q:
        q.put({"to": "a@example.com"})
        msg = q.get(timeout=5)
        ...  # do the work
        q.ack(msg)

The default store is one SQLite file per machine; other stores are plugins
chosen by URL (docs/stores.md). Importing this package loads no plugins.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localqueue.aio import AsyncPersistentQueue, AsyncWorker, async_worker
    from localqueue.clock import Clock, ManualClock, SystemClock
    from localqueue.errors import (
        LeaseExpired,
        LocalQueueError,
        MessageNotFound,
        PluginError,
        SchemaVersionError,
        SerializationError,
        StoreBusyError,
        StoreConnectionLost,
        StoreCorruptError,
        StoreError,
        StoreNotFound,
        UnknownStoreError,
    )
    from localqueue.hookspecs import StoreScheme, hookimpl, hookspec
    from localqueue.message import Message
    from localqueue.queue import PersistentQueue
    from localqueue.serializers import JSONSerializer, RawBytesSerializer, Serializer
    from localqueue.spec import Backoff, PersistentWorkerConfig, QueueSpec
    from localqueue.store import (
        ErrorInfo,
        Lease,
        MessageFilter,
        MessageRecord,
        NewMessage,
        QueueStats,
        State,
        Store,
    )
    from localqueue.store.url import default_store_url, open_store, resolve_store_url
    from localqueue.worker import PersistentWorker, WorkerSummary, persistent_worker
    from localqueue.worker.hook_types import RetryDecision

    __version__: str

# Every name is imported on first use, so that a command such as
# ``localqueue --version`` or ``queue add`` pays only for what it uses
# (the worker, for one, is never imported by a producer).
_LAZY: dict[str, str] = {
    "AsyncPersistentQueue": "localqueue.aio",
    "AsyncWorker": "localqueue.aio",
    "async_worker": "localqueue.aio",
    "Clock": "localqueue.clock",
    "ManualClock": "localqueue.clock",
    "SystemClock": "localqueue.clock",
    "LeaseExpired": "localqueue.errors",
    "LocalQueueError": "localqueue.errors",
    "MessageNotFound": "localqueue.errors",
    "PluginError": "localqueue.errors",
    "SchemaVersionError": "localqueue.errors",
    "SerializationError": "localqueue.errors",
    "StoreBusyError": "localqueue.errors",
    "StoreConnectionLost": "localqueue.errors",
    "StoreCorruptError": "localqueue.errors",
    "StoreError": "localqueue.errors",
    "StoreNotFound": "localqueue.errors",
    "UnknownStoreError": "localqueue.errors",
    "StoreScheme": "localqueue.hookspecs",
    "hookimpl": "localqueue.hookspecs",
    "hookspec": "localqueue.hookspecs",
    "Message": "localqueue.message",
    "PersistentQueue": "localqueue.queue",
    "JSONSerializer": "localqueue.serializers",
    "RawBytesSerializer": "localqueue.serializers",
    "Serializer": "localqueue.serializers",
    "Backoff": "localqueue.spec",
    "PersistentWorkerConfig": "localqueue.spec",
    "QueueSpec": "localqueue.spec",
    "ErrorInfo": "localqueue.store",
    "Lease": "localqueue.store",
    "MessageFilter": "localqueue.store",
    "MessageRecord": "localqueue.store",
    "NewMessage": "localqueue.store",
    "QueueStats": "localqueue.store",
    "State": "localqueue.store",
    "Store": "localqueue.store",
    "default_store_url": "localqueue.store.url",
    "open_store": "localqueue.store.url",
    "resolve_store_url": "localqueue.store.url",
    "PersistentWorker": "localqueue.worker",
    "WorkerSummary": "localqueue.worker",
    "persistent_worker": "localqueue.worker",
    "RetryDecision": "localqueue.worker.hook_types",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("localqueue")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AsyncPersistentQueue",
    "AsyncWorker",
    "Backoff",
    "Clock",
    "ErrorInfo",
    "JSONSerializer",
    "Lease",
    "LeaseExpired",
    "LocalQueueError",
    "ManualClock",
    "Message",
    "MessageFilter",
    "MessageNotFound",
    "MessageRecord",
    "NewMessage",
    "PersistentQueue",
    "PersistentWorker",
    "PersistentWorkerConfig",
    "PluginError",
    "QueueSpec",
    "QueueStats",
    "RawBytesSerializer",
    "RetryDecision",
    "SchemaVersionError",
    "SerializationError",
    "Serializer",
    "State",
    "Store",
    "StoreBusyError",
    "StoreConnectionLost",
    "StoreCorruptError",
    "StoreError",
    "StoreNotFound",
    "StoreScheme",
    "SystemClock",
    "UnknownStoreError",
    "WorkerSummary",
    "__version__",
    "async_worker",
    "default_store_url",
    "hookimpl",
    "hookspec",
    "open_store",
    "persistent_worker",
    "resolve_store_url",
]
