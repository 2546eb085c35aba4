"""Message: what a queue hands to callers — a store record plus its decoded value."""

from __future__ import annotations

import functools
import traceback as tb
from dataclasses import dataclass, field
from typing import Any

from localqueue.serializers import Serializer
from localqueue.store import ErrorInfo, Lease, MessageRecord, State

TRACEBACK_TAIL_CHARS = 4000


@dataclass(frozen=True)
class Message:
    """One message. ``value`` is decoded on first access.

    ``receipt`` identifies this delivery; ack/release/extend/dead_letter
    need it, and fail with LeaseExpired once a newer delivery exists.
    """

    id: int
    queue: str
    payload: bytes = field(repr=False)
    state: State
    priority: int
    attempts: int
    created_at: float
    available_at: float
    leased_until: float | None = None
    leased_by: str | None = None
    receipt: str | None = None
    last_error: ErrorInfo | None = None
    failed_at: float | None = None
    dedupe_key: str | None = None
    serializer: Serializer | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def value(self) -> Any:
        if self.serializer is None:
            return self.payload
        return self.serializer.loads(self.payload)

    @property
    def lease(self) -> Lease:
        if self.receipt is None:
            raise ValueError(
                f"message {self.id} is not leased (state {self.state}); get() it first"
            )
        return Lease(self.id, self.receipt)

    @classmethod
    def from_record(cls, record: MessageRecord, serializer: Serializer | None) -> Message:
        return cls(
            id=record.id,
            queue=record.queue,
            payload=record.payload,
            state=record.state,
            priority=record.priority,
            attempts=record.attempts,
            created_at=record.created_at,
            available_at=record.available_at,
            leased_until=record.leased_until,
            leased_by=record.leased_by,
            receipt=record.receipt,
            last_error=record.last_error,
            failed_at=record.failed_at,
            dedupe_key=record.dedupe_key,
            serializer=serializer,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (payload decoded when possible)."""
        try:
            value: Any = self.value
        except Exception:
            value = None
        return {
            "id": self.id,
            "queue": self.queue,
            "value": value,
            "state": self.state.value,
            "priority": self.priority,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "available_at": self.available_at,
            "leased_until": self.leased_until,
            "leased_by": self.leased_by,
            "last_error": self.last_error.as_dict() if self.last_error else None,
            "failed_at": self.failed_at,
            "dedupe_key": self.dedupe_key,
        }


def error_info(error: BaseException | ErrorInfo | str | None, now: float) -> ErrorInfo | None:
    """Structured error from an exception (type, message, traceback tail) or text."""
    if error is None or isinstance(error, ErrorInfo):
        return error
    if isinstance(error, BaseException):
        text = "".join(tb.format_exception(type(error), error, error.__traceback__))
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
