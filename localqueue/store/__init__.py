"""The store kit: everything a store author (or any plugin) needs, in one place.

A third-party store imports from here and nowhere else in localqueue:

* the protocol (:class:`Store`) and the records it speaks in
  (:class:`MessageRecord`, :class:`NewMessage`, :class:`Lease`,
  :class:`ClaimResult`, :class:`EnqueueResult`, ...);
* the errors a store raises (:class:`StoreError` and its subclasses);
* the optional capabilities a store may add (settling and claiming in one
  transaction, counts of every queue at once, recount, running totals of
  finished messages, import, info,
  migrate, backup, vacuum, acked retention);
* helpers that give the protocol's states, filters and receipts one meaning
  (:func:`derived_state`, :func:`matches`, :func:`new_receipt`, ...) and the
  argument checks (``check_*``);
* how URLs become stores (:func:`open_store`, :class:`StoreScheme`,
  :func:`hookimpl`), showing them without secrets (:func:`redact_url`),
  and copying between stores (:func:`copy_messages`).

docs/stores.md is the tutorial that builds a store from these names.
"""

from __future__ import annotations

from localqueue.clock import Clock, ManualClock, ServerClock, SystemClock
from localqueue.errors import (
    SchemaVersionError,
    StoreBusyError,
    StoreConnectionLost,
    StoreCorruptError,
    StoreError,
    StoreNotFound,
    UnknownStoreError,
)
from localqueue.hookspecs import StoreScheme, hookimpl
from localqueue.store.capabilities import (
    AckedRecord,
    BackupResult,
    Migration,
    SchemaStatus,
    StoreInfo,
    SupportsAckedRetention,
    SupportsBackup,
    SupportsImport,
    SupportsInfo,
    SupportsMigrate,
    SupportsVacuum,
    VacuumResult,
)
from localqueue.store.copy import CopyConflict, CopyReport, copy_messages
from localqueue.store.counts import (
    CountDifference,
    SupportsAllStats,
    SupportsRecount,
    all_stats,
    differences_as_problems,
)
from localqueue.store.finished import FinishedCounts, SupportsFinishedCounts, finished_by_queue
from localqueue.store.helpers import (
    DEAD,
    EXPIRED_ERROR_TYPE,
    INFLIGHT,
    QUEUED,
    WORKER_FORGET_AFTER,
    Orderable,
    age_reference,
    batch_order,
    delivery_order,
    derived_state,
    exhausted_error,
    matches,
    new_receipt,
    stored_state,
)
from localqueue.store.protocol import Store
from localqueue.store.records import (
    ClaimResult,
    EnqueueResult,
    ErrorInfo,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    State,
)
from localqueue.store.settle import (
    SettleAction,
    Settlement,
    SettleResult,
    SupportsSettleAndClaim,
    settle_and_claim,
    settle_then_claim,
)
from localqueue.store.url import (
    default_store_url,
    open_store,
    redact_url,
    resolve_store_url,
    url_scheme,
)
from localqueue.store.validation import (
    MIN_LEASE_TIMEOUT,
    check_dedupe_key,
    check_lease_timeout,
    check_message_id,
    check_positive_int,
    check_priority,
    check_queue_name,
    check_seconds,
)

__all__ = [
    "DEAD",
    "EXPIRED_ERROR_TYPE",
    "INFLIGHT",
    "MIN_LEASE_TIMEOUT",
    "QUEUED",
    "WORKER_FORGET_AFTER",
    "AckedRecord",
    "BackupResult",
    "ClaimResult",
    "Clock",
    "CopyConflict",
    "CopyReport",
    "CountDifference",
    "EnqueueResult",
    "ErrorInfo",
    "FinishedCounts",
    "Lease",
    "ManualClock",
    "MessageFilter",
    "MessageRecord",
    "Migration",
    "NewMessage",
    "Orderable",
    "QueueStats",
    "SchemaStatus",
    "SchemaVersionError",
    "ServerClock",
    "SettleAction",
    "SettleResult",
    "Settlement",
    "State",
    "Store",
    "StoreBusyError",
    "StoreConnectionLost",
    "StoreCorruptError",
    "StoreError",
    "StoreInfo",
    "StoreNotFound",
    "StoreScheme",
    "SupportsAckedRetention",
    "SupportsAllStats",
    "SupportsBackup",
    "SupportsFinishedCounts",
    "SupportsImport",
    "SupportsInfo",
    "SupportsMigrate",
    "SupportsRecount",
    "SupportsSettleAndClaim",
    "SupportsVacuum",
    "SystemClock",
    "UnknownStoreError",
    "VacuumResult",
    "age_reference",
    "all_stats",
    "batch_order",
    "check_dedupe_key",
    "check_lease_timeout",
    "check_message_id",
    "check_positive_int",
    "check_priority",
    "check_queue_name",
    "check_seconds",
    "copy_messages",
    "default_store_url",
    "delivery_order",
    "derived_state",
    "differences_as_problems",
    "exhausted_error",
    "finished_by_queue",
    "hookimpl",
    "matches",
    "new_receipt",
    "open_store",
    "redact_url",
    "resolve_store_url",
    "settle_and_claim",
    "settle_then_claim",
    "stored_state",
    "url_scheme",
]
