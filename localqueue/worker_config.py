"""The earlier import path of the worker config; kept so existing code works.

New code imports from :mod:`localqueue.spec` (or :mod:`localqueue.worker`).
"""

from __future__ import annotations

from localqueue.spec import (
    DEFAULT_HEARTBEAT_FRACTION as DEFAULT_HEARTBEAT_FRACTION,
)
from localqueue.spec import (
    DEFAULT_POLL_INTERVAL as DEFAULT_POLL_INTERVAL,
)
from localqueue.spec import (
    PersistentWorkerConfig as PersistentWorkerConfig,
)

__all__ = [
    "DEFAULT_HEARTBEAT_FRACTION",
    "DEFAULT_POLL_INTERVAL",
    "PersistentWorkerConfig",
]
