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

from importlib.metadata import PackageNotFoundError, version

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

try:
    __version__ = version("localqueue")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
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
    "default_store_url",
    "hookimpl",
    "hookspec",
    "open_store",
    "persistent_worker",
    "resolve_store_url",
]
