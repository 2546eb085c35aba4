"""The earlier import path of the JSON event log; kept so existing code works.

New code imports from :mod:`localqueue.observability.event_log`.
"""

from __future__ import annotations

from localqueue.observability.event_log import (
    ENV as ENV,
)
from localqueue.observability.event_log import (
    LOGGER_NAME as LOGGER_NAME,
)
from localqueue.observability.event_log import (
    disable as disable,
)
from localqueue.observability.event_log import (
    enable as enable,
)
from localqueue.observability.event_log import (
    enabled as enabled,
)

__all__ = [
    "ENV",
    "LOGGER_NAME",
    "disable",
    "enable",
    "enabled",
]
