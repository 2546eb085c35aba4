"""Message: what a queue hands to callers — a store record plus its decoded value."""

from __future__ import annotations

import traceback as tb
from typing import Any

from localqueue.serializers import Serializer
from localqueue.store import ErrorInfo, Lease, MessageRecord, State

__all__ = [
    "Message",
    "error_info",
]

TRACEBACK_TAIL_CHARS = 4000

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
