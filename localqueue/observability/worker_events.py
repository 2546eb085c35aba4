"""Builds the events of a worker's life (only when observers listen).

Beside worker.py so the run loop stays readable; each function is called
with the observers that :func:`localqueue.observability.observers.listening` returned.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from localqueue.message import Message
from localqueue.observability.events import (
    BreakerClosed,
    BreakerOpened,
    HandlerFinished,
    Released,
    WorkerStarted,
    WorkerStopped,
)
from localqueue.observability.observers import Observer, emit

if TYPE_CHECKING:
    from localqueue.worker import WorkerSummary
    from localqueue.worker.hook_types import Outcome


def started(observers: tuple[Observer, ...], queue: str, worker_id: str, concurrency: int) -> None:
    emit(observers, WorkerStarted(queue, None, None, worker_id, time.time(), concurrency))


def stopped(observers: tuple[Observer, ...], queue: str, worker_id: str, s: WorkerSummary) -> None:
    event = WorkerStopped(
        queue, None, None, worker_id, time.time(),
        s.processed, s.acked, s.released, s.dead, s.lease_lost, s.aborted,
    )  # fmt: skip
    emit(observers, event)


def handler_finished(
    observers: tuple[Observer, ...],
    worker_id: str,
    message: Message,
    duration: float,
    outcome: Outcome,
    error: BaseException | None,
) -> None:
    event = HandlerFinished(
        message.queue, message.id, message.attempts, worker_id, time.time(),
        duration, outcome.value, None if error is None else type(error).__name__,
    )  # fmt: skip
    emit(observers, event)


def given_back(observers: tuple[Observer, ...], worker_id: str, message: Message) -> None:
    """A message handed back untouched (the worker stopped): a release with no error."""
    event = Released(message.queue, message.id, message.attempts, worker_id, time.time(), 0.0)
    emit(observers, event)


def breaker_opened(
    observers: tuple[Observer, ...],
    worker_id: str,
    message: Message,
    failures: int,
    cooldown: float,
    open_until: float,
) -> None:
    event = BreakerOpened(
        message.queue, message.id, message.attempts, worker_id, time.time(),
        failures, cooldown, open_until,
    )  # fmt: skip
    emit(observers, event)


def breaker_closed(observers: tuple[Observer, ...], worker_id: str, message: Message) -> None:
    emit(
        observers,
        BreakerClosed(message.queue, message.id, message.attempts, worker_id, time.time()),
    )
