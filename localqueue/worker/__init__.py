"""Workers: run a handler over a queue with leases, retries and policies.

* :mod:`~localqueue.worker.runner`: :func:`persistent_worker`,
  :class:`PersistentWorker` and :class:`WorkerSummary`;
* :mod:`~localqueue.worker.heartbeat`: keeps a running job's lease alive;
* :mod:`~localqueue.worker.hook_types`: what the worker hooks receive and
  return (``Failure``, ``RetryDecision``, ``FetchGate``, ``HandlerCall``,
  ``JobOutcome``, ``WorkerView``).

The worker's settings, :class:`~localqueue.spec.PersistentWorkerConfig`,
live beside :class:`~localqueue.spec.QueueSpec` and are re-exported here.
"""

from __future__ import annotations

from localqueue.spec import PersistentWorkerConfig
from localqueue.worker.hook_types import (
    Action,
    Failure,
    FetchGate,
    HandlerCall,
    JobOutcome,
    Outcome,
    RetryDecision,
    WorkerView,
)
from localqueue.worker.runner import (
    PersistentWorker,
    WorkerAborted,
    WorkerSummary,
    persistent_worker,
)

__all__ = [
    "Action",
    "Failure",
    "FetchGate",
    "HandlerCall",
    "JobOutcome",
    "Outcome",
    "PersistentWorker",
    "PersistentWorkerConfig",
    "RetryDecision",
    "WorkerAborted",
    "WorkerSummary",
    "WorkerView",
    "persistent_worker",
]
