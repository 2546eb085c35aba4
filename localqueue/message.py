"""Message: what a queue hands to callers — a store record plus its decoded value."""

from __future__ import annotations

import functools
import os
import sys
import traceback as tb
from typing import Any

from localqueue.serializers import Serializer
from localqueue.store import ErrorInfo, Lease, MessageRecord, State

__all__ = [
    "Message",
    "error_info",
]

TRACEBACK_TAIL_CHARS = 4000

# The libraries localqueue calls a handler through, besides itself: pluggy
# for the handler hook, asyncio for an async handler. Looked up when an error
# is recorded, so that importing this module imports neither (a library
# that was never imported has no frames to drop).
_PLUMBING_MODULES = ("pluggy", "asyncio")

_UNSET: Any = object()


class Message:
    """One message, read-only. ``value`` is decoded on first access.

    ``receipt`` identifies this delivery; ack/release/extend/dead_letter
    need it, and fail with LeaseExpired once a newer delivery exists.
    The fields are those of :class:`~localqueue.store.MessageRecord`.
    """

    __slots__ = ("_record", "_serializer", "_value")

    def __init__(
        self, record: MessageRecord, serializer: Serializer | None = None, value: Any = _UNSET
    ) -> None:
        self._record = record
        self._serializer = serializer
        self._value = value

    @property
    def record(self) -> MessageRecord:
        return self._record

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            payload = self._record.payload
            self._value = payload if self._serializer is None else self._serializer.loads(payload)
        return self._value

    @property
    def id(self) -> int:
        return self._record.id

    @property
    def queue(self) -> str:
        return self._record.queue

    @property
    def payload(self) -> bytes:
        return self._record.payload

    @property
    def state(self) -> State:
        return self._record.state

    @property
    def priority(self) -> int:
        return self._record.priority

    @property
    def attempts(self) -> int:
        return self._record.attempts

    @property
    def created_at(self) -> float:
        return self._record.created_at

    @property
    def available_at(self) -> float:
        return self._record.available_at

    @property
    def leased_until(self) -> float | None:
        return self._record.leased_until

    @property
    def leased_by(self) -> str | None:
        return self._record.leased_by

    @property
    def receipt(self) -> str | None:
        return self._record.receipt

    @property
    def last_error(self) -> ErrorInfo | None:
        return self._record.last_error

    @property
    def failed_at(self) -> float | None:
        return self._record.failed_at

    @property
    def dedupe_key(self) -> str | None:
        return self._record.dedupe_key

    @property
    def lease(self) -> Lease:
        receipt = self._record.receipt
        if receipt is None:
            raise ValueError(
                f"message {self.id} is not leased (state {self.state}); get() it first"
            )
        return Lease(self._record.id, receipt)

    def with_record(self, record: MessageRecord) -> Message:
        """The same message (and decoded value) with updated store fields."""
        return Message(record, self._serializer, self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._record == other._record

    def __hash__(self) -> int:
        return hash((self._record.id, self._record.receipt))

    def __repr__(self) -> str:
        r = self._record
        return (
            f"Message(id={r.id}, queue={r.queue!r}, state={r.state.value}, "
            f"attempts={r.attempts}, priority={r.priority})"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (payload decoded when possible)."""
        try:
            value: Any = self.value
        except Exception:
            value = None
        r = self._record
        return {
            "id": r.id,
            "queue": r.queue,
            "value": value,
            "state": r.state.value,
            "priority": r.priority,
            "attempts": r.attempts,
            "created_at": r.created_at,
            "available_at": r.available_at,
            "leased_until": r.leased_until,
            "leased_by": r.leased_by,
            "last_error": r.last_error.as_dict() if r.last_error else None,
            "failed_at": r.failed_at,
            "dedupe_key": r.dedupe_key,
        }


def error_info(error: BaseException | ErrorInfo | str | None, now: float) -> ErrorInfo | None:
    """Structured error from an exception (type, message, traceback tail) or text."""
    if error is None or isinstance(error, ErrorInfo):
        return error
    if isinstance(error, BaseException):
        text = _traceback_text(error)
        return ErrorInfo(
            type=type(error).__qualname__,
            message=str(error),
            traceback=text[-TRACEBACK_TAIL_CHARS:] if error.__traceback__ else None,
            at=now,
        )
    if isinstance(error, str):
        return ErrorInfo(type="Error", message=error, traceback=None, at=now)
    raise ValueError(
        f"error must be an exception, a string or ErrorInfo, got {type(error).__name__}"
    )


def _traceback_text(error: BaseException) -> str:
    """The formatted traceback, without the frames that led from localqueue to
    the handler: they are the same for every failure, and the stored text is
    a tail, so they would only push the handler's own frames out of it."""
    exception = tb.TracebackException(type(error), error, error.__traceback__, compact=True)
    seen: set[int] = set()
    pending = [exception]
    while pending:  # the exception, its causes and contexts, a group's members
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        _drop_plumbing(current.stack)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        pending.extend(getattr(current, "exceptions", None) or ())
    return "".join(exception.format())


def _drop_plumbing(stack: tb.StackSummary) -> None:
    """Drop the outermost frames up to the first one that is neither
    localqueue's nor pluggy's or asyncio's: the user's code starts there.
    Everything from there on stays, localqueue frames too (a handler that
    calls into localqueue should see where that call failed). A traceback
    with no such frame (the error came from localqueue itself) is kept whole."""
    plumbing = _plumbing_dirs()
    for index, frame in enumerate(stack):
        if not _real(frame.filename).startswith(plumbing):
            del stack[:index]
            return


def _plumbing_dirs() -> tuple[str, ...]:
    dirs = [_real_dir(__file__)]
    for name in _PLUMBING_MODULES:
        path = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(path, str):
            dirs.append(_real_dir(path))
    return tuple(dirs)


def _real_dir(path: str) -> str:
    return os.path.join(os.path.dirname(_real(path)), "")


@functools.lru_cache(maxsize=512)
def _real(filename: str) -> str:
    # Cached: a worker whose jobs keep failing records the same few files.
    return os.path.realpath(filename)
