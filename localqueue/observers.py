"""The earlier import path of the event observers; kept so existing code works.

New code imports from :mod:`localqueue.observability.observers`.
"""

from __future__ import annotations

from localqueue.observability.observers import (
    IDLE_ATTRIBUTE as IDLE_ATTRIBUTE,
)
from localqueue.observability.observers import (
    REPEAT_LOG_INTERVAL as REPEAT_LOG_INTERVAL,
)
from localqueue.observability.observers import (
    Observer as Observer,
)
from localqueue.observability.observers import (
    emit as emit,
)
from localqueue.observability.observers import (
    invalidate as invalidate,
)
from localqueue.observability.observers import (
    listening as listening,
)
from localqueue.observability.observers import (
    refresh as refresh,
)

__all__ = [
    "IDLE_ATTRIBUTE",
    "REPEAT_LOG_INTERVAL",
    "Observer",
    "emit",
    "invalidate",
    "listening",
    "refresh",
]
