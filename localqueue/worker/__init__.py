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

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from localqueue.worker.runner import (
        PersistentWorker,
        WorkerAborted,
        WorkerSummary,
        persistent_worker,
    )

# The runner (and asyncio with it) is imported on first use: the built-in
# policies import this package for its hook types in every process that
# loads plugins, producers and ``localqueue --version`` included.
_RUNNER_NAMES = frozenset(
    {"PersistentWorker", "WorkerAborted", "WorkerSummary", "persistent_worker"}
)


def __getattr__(name: str) -> Any:
    if name not in _RUNNER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("localqueue.worker.runner"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
