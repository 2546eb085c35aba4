"""Helpers for store authors: stored states, derived states, filters, receipts.

Every built-in store uses these, and so may any third-party store: they are
the reference meaning of the protocol's states and filters, written once.
A store that keeps the three stored states below (queued, inflight, dead)
and one ``available_at`` time gets ready/delayed/inflight from
:func:`derived_state` with no timer and no sweep.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from localqueue.store.records import ErrorInfo, MessageFilter, MessageRecord, State

# Stored states. "queued" covers ready and delayed: which one it is follows
# from available_at and the clock, so a delay needs no timer and no sweep.
QUEUED = 0
INFLIGHT = 1
DEAD = 2

EXPIRED_ERROR_TYPE = "LeaseExpired"

# A worker that has not sent a heartbeat for a week is forgotten.
WORKER_FORGET_AFTER = 7 * 24 * 3600.0


class Orderable(Protocol):
    """Anything with the three fields that order messages: a MessageRecord,
    or a store's own row type."""

    @property
    def id(self) -> int: ...

    @property
    def priority(self) -> int: ...

    @property
    def available_at(self) -> float: ...


def delivery_order(message: Orderable) -> tuple[int, float, int]:
    """Sort key for which claimable messages a claim takes first: highest
    priority, then earliest ``available_at``, then lowest id."""
    return (-message.priority, message.available_at, message.id)


def batch_order(message: Orderable) -> tuple[int, int]:
    """Sort key for the records a claim returns (``ClaimResult.leased``):
    highest priority, then lowest id. Not the delivery order: within one
    priority a batch is in id order, whatever each message's available_at."""
    return (-message.priority, message.id)


def new_receipt() -> str:
    """A fencing token that is never reused (128 random bits)."""
    return secrets.token_hex(16)


def derived_state(stored: int, available_at: float, now: float) -> State:
    """The state a user sees. An expired lease is claimable again: ready."""
    if stored == DEAD:
        return State.DEAD
    if available_at > now:
        return State.INFLIGHT if stored == INFLIGHT else State.DELAYED
    return State.READY


def exhausted_error(attempts: int, now: float) -> ErrorInfo:
    return ErrorInfo(
        type=EXPIRED_ERROR_TYPE,
        message=f"lease expired on attempt {attempts}; no attempts left",
        traceback=None,
        at=now,
    )


def age_reference(record: MessageRecord) -> float:
    """Age for filters: dead letters age from failure, others from creation."""
    if record.state is State.DEAD and record.failed_at is not None:
        return record.failed_at
    return record.created_at


def matches(flt: MessageFilter | None, record: MessageRecord, now: float) -> bool:
    """Whether ``record`` passes ``flt`` (the reference for SQL translations)."""
    if flt is None:
        return True
    if flt.ids is not None and record.id not in set(flt.ids):
        return False
    err = record.last_error
    if flt.error_contains is not None:
        text = f"{err.type}: {err.message}" if err else ""
        if flt.error_contains.casefold() not in text.casefold():
            return False
    if flt.error_type is not None and (err is None or err.type != flt.error_type):
        return False
    if flt.min_attempts is not None and record.attempts < flt.min_attempts:
        return False
    if flt.failed_after is not None and (
        record.failed_at is None or record.failed_at < flt.failed_after
    ):
        return False
    return not (flt.older_than is not None and now - age_reference(record) < flt.older_than)


def stored_state(record: MessageRecord) -> int:
    """The stored state of a record as a store keeps it (the inverse of
    :func:`derived_state`): how ``import_messages`` stores a copied record."""
    if record.state is State.DEAD:
        return DEAD
    if record.state is State.INFLIGHT:
        return INFLIGHT
    return QUEUED
