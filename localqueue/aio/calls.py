"""Running a blocking store call from a coroutine, through cancellation.

Store calls are synchronous (every store, third-party ones included, speaks
the blocking protocol), so a coroutine hands each one to a thread and
awaits it. A thread cannot be stopped half-way through a store call, so a
cancellation that arrives meanwhile cannot undo it. Instead of returning
at once (leaving the caller to guess whether the write happened), a call
waits for the store's answer and only then lets the cancellation through:
whoever cancelled knows the write is complete, and a claim that leased
messages for nobody can release them before anyone looks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("localqueue.aio")


class Outcome:
    """How a call ended: its future, and the cancellation that arrived meanwhile."""

    __slots__ = ("cancellation", "future")

    def __init__(self, future: asyncio.Future[T], cancellation: BaseException | None) -> None:
        self.future: asyncio.Future[object] = future  # type: ignore[assignment]
        self.cancellation = cancellation


async def to_the_end(future: asyncio.Future[T]) -> Outcome:
    """Await ``future`` until it is done, however often this task is
    cancelled meanwhile; the first cancellation is kept in the outcome."""
    cancellation: BaseException | None = None
    if future.done():  # answered already (a batch sent by this caller): no shield needed
        return Outcome(future, None)
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            # Nobody cancels ``future`` itself (it is only ever awaited
            # shielded), so this is the task's own cancellation, even when
            # it arrives in the same pass as the answer.
            cancellation = cancellation or exc
        except BaseException:
            pass  # the future's own error: the caller reads it from the future
    return Outcome(future, cancellation)


async def finished(future: asyncio.Future[T], what: str) -> T:
    """The result of ``future``, waited for to the end; a cancellation that
    came meanwhile is raised once the call is done (its result is then
    complete in the store; a failure is logged, since nobody will read it)."""
    outcome = await to_the_end(future)
    if outcome.cancellation is not None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("%s failed after its caller was cancelled: %s", what, future.exception())
        raise outcome.cancellation
    return future.result()


__all__ = ["Outcome", "finished", "to_the_end"]
