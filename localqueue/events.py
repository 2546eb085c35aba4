"""The earlier import path of the event types; kept so existing code works.

New code imports from :mod:`localqueue.observability.events`.
"""

from __future__ import annotations

from localqueue.observability.events import (
    EVENT_TYPES as EVENT_TYPES,
)
from localqueue.observability.events import (
    Acked as Acked,
)
from localqueue.observability.events import (
    DeadLettered as DeadLettered,
)
from localqueue.observability.events import (
    Enqueued as Enqueued,
)
from localqueue.observability.events import (
    Event as Event,
)
from localqueue.observability.events import (
    HandlerFinished as HandlerFinished,
)
from localqueue.observability.events import (
    Leased as Leased,
)
from localqueue.observability.events import (
    LeaseExpired as LeaseExpired,
)
from localqueue.observability.events import (
    LeaseExtended as LeaseExtended,
)
from localqueue.observability.events import (
    Released as Released,
)
from localqueue.observability.events import (
    Requeued as Requeued,
)
from localqueue.observability.events import (
    WorkerStarted as WorkerStarted,
)
from localqueue.observability.events import (
    WorkerStopped as WorkerStopped,
)

__all__ = [
    "EVENT_TYPES",
    "Acked",
    "DeadLettered",
    "Enqueued",
    "Event",
    "HandlerFinished",
    "LeaseExpired",
    "LeaseExtended",
    "Leased",
    "Released",
    "Requeued",
    "WorkerStarted",
    "WorkerStopped",
]
