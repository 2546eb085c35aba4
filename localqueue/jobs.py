"""The earlier import path of the worker hooks' types; kept so existing code works.

New code imports from :mod:`localqueue.worker.hook_types`.
"""

from __future__ import annotations

from localqueue.worker.hook_types import (
    Action as Action,
)
from localqueue.worker.hook_types import (
    Failure as Failure,
)
from localqueue.worker.hook_types import (
    FetchGate as FetchGate,
)
from localqueue.worker.hook_types import (
    HandlerCall as HandlerCall,
)
from localqueue.worker.hook_types import (
    JobOutcome as JobOutcome,
)
from localqueue.worker.hook_types import (
    Outcome as Outcome,
)
from localqueue.worker.hook_types import (
    RetryDecision as RetryDecision,
)
from localqueue.worker.hook_types import (
    WorkerView as WorkerView,
)

__all__ = [
    "Action",
    "Failure",
    "FetchGate",
    "HandlerCall",
    "JobOutcome",
    "Outcome",
    "RetryDecision",
    "WorkerView",
]
