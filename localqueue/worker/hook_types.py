"""What worker policies see: one job's failure, a fetch, a handler call, an outcome.

Policies (retry, pacing, circuit breaker, handler wrappers) are pluggy
plugins; these small records are the whole of what the worker shows them,
so a policy never needs to know about stores or SQL.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localqueue.clock import Clock
    from localqueue.message import Message
    from localqueue.spec import PersistentWorkerConfig


@dataclass
class WorkerView:
    """One running worker, as policies see it.

    ``state`` is scratch space that lives as long as the worker: a policy
    keeps its per-worker memory there under its own key (the breaker keeps
    its failure count; pacing its last start time). ``lock`` guards it when
    the worker runs several handler threads.
    """

    worker_id: str
    queue: str
    config: PersistentWorkerConfig
    clock: Clock
    state: MutableMapping[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)


class Action(str, enum.Enum):
    RELEASE = "release"  # back to the queue after `delay` seconds
    DEAD_LETTER = "dead_letter"  # keep as a dead letter for an operator


@dataclass(frozen=True)
class RetryDecision:
    """What to do with a message whose handler failed."""

    action: Action
    delay: float = 0.0
    reason: str = ""

    @classmethod
    def release(cls, delay: float = 0.0, reason: str = "") -> RetryDecision:
        return cls(Action.RELEASE, delay, reason)

    @classmethod
    def dead_letter(cls, reason: str = "") -> RetryDecision:
        return cls(Action.DEAD_LETTER, 0.0, reason)


@dataclass(frozen=True)
class Failure:
    """A handler raised ``error`` while working ``message`` (attempt ``message.attempts``)."""

    worker: WorkerView
    message: Message
    error: BaseException


@dataclass(frozen=True)
class FetchGate:
    """The worker is about to fetch a message; policies may ask it to wait."""

    worker: WorkerView
    now: float


@dataclass(frozen=True)
class HandlerCall:
    """One handler invocation. ``call()`` runs the user's handler (sync or async)."""

    worker: WorkerView
    message: Message
    call: Callable[[], Any]


class Outcome(str, enum.Enum):
    ACKED = "acked"
    RELEASED = "released"
    DEAD = "dead"
    LEASE_LOST = "lease_lost"  # the lease was lost while the handler ran: not acked
    ABANDONED = "abandoned"  # the worker was told to stop at once: left to lease expiry


@dataclass(frozen=True)
class JobOutcome:
    """A job is over for this delivery."""

    worker: WorkerView
    message: Message
    outcome: Outcome
    error: BaseException | None
    started_at: float
    finished_at: float

    @property
    def succeeded(self) -> bool:
        return self.outcome is Outcome.ACKED
