"""PersistentQueue: the Python API over any Store.

A queue is a name inside a store. It serializes values, validates
arguments, turns stale receipts into :class:`LeaseExpired`, and implements
the blocking ``get`` on top of the store's ``claim`` and ``wait``.
"""

from __future__ import annotations

import functools
import os
import queue as stdlib_queue
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from localqueue.errors import MessageNotFound, SerializationError, StoreError, stale_lease_error
from localqueue.message import _UNSET, Message, error_info
from localqueue.observability import queue_events
from localqueue.observability.observers import Observer, listening
from localqueue.serializers import JSONSerializer, Serializer
from localqueue.spec import DEFAULT_MAX_RETRIES, PersistentWorkerConfig, QueueSpec
from localqueue.store import (
    ClaimResult,
    EnqueueResult,
    ErrorInfo,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    Settlement,
    SettleResult,
    State,
    Store,
    SupportsSettleAndClaim,
    check_dedupe_key,
    check_message_id,
    check_positive_int,
    check_priority,
    check_queue_name,
    check_seconds,
    settle_then_claim,
)
from localqueue.store.url import open_store, redact_url
from localqueue.store.validation import check_lease_timeout

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "UNSET",
    "PersistentQueue",
    "Unset",
]

DEFAULT_MAX_ATTEMPTS = DEFAULT_MAX_RETRIES + 1  # the first delivery plus 3 retries


class Unset:
    """Marks an argument that was not given (None means something for max_attempts)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


def default_worker_id() -> str:
    """host:pid, so an operator can tell whose leases are stuck."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PersistentQueue:
    """A durable, at-least-once queue named ``name`` inside ``store``.

    ``store`` is a URL (the queue then owns the store and closes it) or a
    Store object (shared; the caller closes it). With neither, the URL comes
    from ``$LOCALQUEUE_STORE`` or the default SQLite file.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        spec: QueueSpec | None = None,
        store: str | os.PathLike[str] | Store | None = None,
        lease_timeout: float | None = None,
        max_attempts: int | Unset | None = UNSET,
        serializer: Serializer | None = None,
        worker_id: str | None = None,
    ) -> None:
        if spec is None:
            if name is None:
                raise ValueError("PersistentQueue needs a name or a spec")
            spec = QueueSpec(check_queue_name(name))
            if isinstance(max_attempts, int) and not isinstance(max_attempts, bool):
                spec = spec.with_retry(check_positive_int("max_attempts", max_attempts) - 1)
            elif max_attempts is None:
                spec = spec.with_dead_letter_on_failure(False)
            elif not isinstance(max_attempts, Unset):
                check_positive_int("max_attempts", max_attempts)
        else:
            if not isinstance(spec, QueueSpec):
                raise ValueError(f"spec must be a QueueSpec, got {spec!r}")
            if name is not None and name != spec.name:
                raise ValueError(f"name {name!r} differs from the spec's name {spec.name!r}")
            if not isinstance(max_attempts, Unset):
                raise ValueError("give max_attempts through spec.with_retry(), not beside a spec")
        if lease_timeout is not None:
            spec = spec.with_lease_timeout(check_lease_timeout(lease_timeout))
        self.spec = spec
        self.name = spec.name
        self.lease_timeout = spec.lease_timeout
        self.max_attempts = spec.max_attempts
        self.serializer: Serializer = serializer or JSONSerializer()
        self.worker_id = worker_id or default_worker_id()
        if isinstance(store, os.PathLike):
            store = os.fspath(store)  # a path is a SQLite file
        if store is None or isinstance(store, str):
            self.store: Store = open_store(store)
            self._owns_store = True
        elif isinstance(store, Store):
            self.store = store
            self._owns_store = False
        else:
            raise ValueError(f"store must be a URL, a path or a Store, got {store!r}")
        # Settle-and-claim in one transaction where the store can; checked
        # once here, not on every job (a runtime protocol check is not free).
        self._settle_and_claim: Callable[..., SettleResult] = (
            self.store.settle_and_claim
            if isinstance(self.store, SupportsSettleAndClaim)
            else functools.partial(settle_then_claim, self.store)
        )
        self._closed = False
        # Find the event observers now (loading the plugins if nothing has),
        # so that the first put or get does not pay for it. Never raises.
        listening()

    def build_worker_config(self, **overrides: Any) -> PersistentWorkerConfig:
        """A worker config from this queue's spec, with per-worker overrides."""
        config = PersistentWorkerConfig.from_spec(self.spec)
        return config.with_overrides(**overrides) if overrides else config

    def __repr__(self) -> str:
        return f"PersistentQueue({self.name!r}, store={redact_url(self.store.url)!r})"

    # -- context manager ---------------------------------------------------------

    def __enter__(self) -> PersistentQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the store if this queue opened it. Safe to call twice."""
        if not self._closed:
            self._closed = True
            if self._owns_store:
                self.store.close()

    # -- producing -----------------------------------------------------------------

    def _dump(self, value: Any) -> bytes:
        payload = self.serializer.dumps(value)
        return payload if isinstance(payload, bytes) else _payload_bytes(payload, self.serializer)

    def _message(self, record: MessageRecord) -> Message:
        return Message(record, self.serializer)

    def put(
        self,
        value: Any,
        *,
        delay: float = 0.0,
        priority: int = 0,
        dedupe_key: str | None = None,
    ) -> Message:
        """Store ``value``; once this returns, the message survives a crash.

        With a ``dedupe_key`` that is live in this queue (any state until
        acked or purged), nothing is added and the existing message returns.
        """
        if dedupe_key is not None:
            check_dedupe_key(dedupe_key)
        # Positional: this runs on every put, and keywords cost a NamedTuple more.
        new = NewMessage(
            self._dump(value), check_seconds("delay", delay), check_priority(priority), dedupe_key
        )
        return self._put_message(self._enqueue([new]).records[0], new, value)

    def _put_message(self, record: MessageRecord, new: NewMessage, value: Any) -> Message:
        """What put() returns for ``value`` (sent as ``new``), stored as ``record``."""
        if new.dedupe_key is None:
            return Message(record, self.serializer, value)  # new, and holding this value
        if record.receipt is not None:  # a dedupe hit on an inflight message
            return self._observed(record)
        # A deduplicated put returns the stored message, whose value may differ.
        known = value if record.payload == new.payload else _UNSET
        return Message(record, self.serializer, known)

    def put_many(
        self,
        values: Iterable[Any],
        *,
        delay: float = 0.0,
        priority: int = 0,
        dedupe_keys: Sequence[str | None] | None = None,
    ) -> list[Message]:
        """Store many values in one transaction: all are added or none."""
        messages, _ = self._put_many(values, delay, priority, dedupe_keys)
        return messages

    def put_many_results(
        self,
        values: Iterable[Any],
        *,
        delay: float = 0.0,
        priority: int = 0,
        dedupe_keys: Sequence[str | None] | None = None,
    ) -> list[tuple[Message, bool]]:
        """:meth:`put_many` that also tells, for each value, whether it was added.

        One ``(message, added)`` pair per value, in order: ``added`` is False
        for a dedupe hit (``message`` is then the live message holding that
        key, or the earlier value in this batch with the same key).
        """
        messages, added = self._put_many(values, delay, priority, dedupe_keys)
        return list(zip(messages, added, strict=True))

    def _put_many(
        self,
        values: Iterable[Any],
        delay: float,
        priority: int,
        dedupe_keys: Sequence[str | None] | None,
    ) -> tuple[list[Message], list[bool]]:
        delay = check_seconds("delay", delay)
        priority = check_priority(priority)
        values = list(values)
        serializer = self.serializer
        dumps = serializer.dumps
        payloads = [dumps(value) for value in values]
        if not all(isinstance(p, bytes) for p in payloads):
            payloads = [_payload_bytes(p, serializer) for p in payloads]
        if dedupe_keys is None:
            # No keys: nothing can be a dedupe hit, so every record is new, has
            # no receipt, and its value is the one given.
            result = self._enqueue([NewMessage(p, delay, priority) for p in payloads])
            messages = [
                Message(r, serializer, v) for r, v in zip(result.records, values, strict=True)
            ]
            return messages, result.added
        keys = list(dedupe_keys)
        if len(keys) != len(payloads):
            raise ValueError(
                f"dedupe_keys has {len(keys)} entries for {len(payloads)} values; "
                "give one per value"
            )
        for key in keys:
            check_dedupe_key(key)
        batch = [
            NewMessage(payload=p, delay=delay, priority=priority, dedupe_key=k)
            for p, k in zip(payloads, keys, strict=True)
        ]
        result = self._enqueue(batch)
        # A dedupe hit may return an inflight message: never with its receipt.
        return [self._observed(r) for r in result.records], result.added

    def _enqueue(self, batch: list[NewMessage]) -> EnqueueResult:
        """Store ``batch`` (one record per message, in order) and tell observers
        which messages were added and which were dedupe hits."""
        result = self.store.enqueue(self.name, batch)
        if not isinstance(result, EnqueueResult):
            raise _outdated_store(self.store, "enqueue", result)
        observers = listening()
        if observers:
            queue_events.enqueued(observers, self.worker_id, batch, result.records, result.added)
        return result

    # -- consuming -----------------------------------------------------------------

    def get(
        self, block: bool = True, timeout: float | None = None, *, leased_by: str | None = None
    ) -> Message:
        """Lease the next message; raise ``queue.Empty`` if none comes in time.

        Like ``queue.Queue.get``: ``block=False`` returns at once; ``timeout``
        (seconds) bounds a blocking wait; ``None`` waits forever.
        """
        return self.get_many(1, block=block, timeout=timeout, leased_by=leased_by)[0]

    def get_many(
        self,
        limit: int,
        *,
        block: bool = True,
        timeout: float | None = None,
        leased_by: str | None = None,
    ) -> list[Message]:
        """Lease up to ``limit`` messages at once (at least one, or ``queue.Empty``)."""
        limit = check_positive_int("limit", limit)
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        worker = leased_by or self.worker_id
        while True:
            claimed = self.store.claim(
                self.name,
                worker_id=worker,
                limit=limit,
                lease_seconds=self.lease_timeout,
                max_attempts=self.max_attempts,
            )
            if not isinstance(claimed, ClaimResult):
                raise _outdated_store(self.store, "claim", claimed)
            messages = self._claimed(claimed, worker)
            if messages:
                return messages
            if not block:
                raise stdlib_queue.Empty
            if deadline is None:
                self.store.wait(self.name, 1.0)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise stdlib_queue.Empty
            self.store.wait(self.name, remaining)

    def _claimed(self, claimed: ClaimResult, worker: str) -> list[Message]:
        """The messages a claim leased, after telling observers what it did."""
        records, dead = claimed
        if records or dead:
            observers = listening()
            if observers:
                queue_events.dead_lettered_by_claim(observers, worker, dead)
                queue_events.leased(observers, worker, self.lease_timeout, records)
        return [self._message(r) for r in records]

    def ack_and_get(
        self,
        message: Message,
        *,
        block: bool = True,
        timeout: float | None = None,
        leased_by: str | None = None,
    ) -> Message:
        """Ack ``message`` and lease the next one, in one store transaction
        where the store offers it (SQLite, PostgreSQL): one commit per job
        instead of two.

        Raises LeaseExpired (and leases nothing) if the lease was lost. When
        nothing is claimable the ack stands and, as :meth:`get`, it waits
        (``block``, ``timeout``) or raises ``queue.Empty``.
        """
        self._check_own(message)
        worker = leased_by or self.worker_id
        result = self._settle_and_claim(
            self.name,
            [Settlement(message.lease)],
            worker_id=worker,
            limit=1,
            lease_seconds=self.lease_timeout,
            max_attempts=self.max_attempts,
        )
        observers = listening()
        if result.stale:
            if observers:
                queue_events.lease_expired(observers, self.worker_id, [message], "ack")
            raise stale_lease_error([message.id])
        if observers:
            queue_events.acked(observers, self.worker_id, [message])
        if not isinstance(result.claimed, ClaimResult):
            raise _outdated_store(self.store, "settle_and_claim", result.claimed)
        messages = self._claimed(result.claimed, worker)
        if messages:
            return messages[0]
        if not block:
            raise stdlib_queue.Empty
        return self.get(block=True, timeout=timeout, leased_by=leased_by)

    def ack_many_and_get_many(
        self, messages: Sequence[Message], limit: int, *, leased_by: str | None = None
    ) -> tuple[list[Message], list[Message]]:
        """Ack ``messages`` (none is fine) and lease up to ``limit`` more, in
        one store transaction where the store offers it: what a batch worker
        does between batches, one commit for the lot.

        Returns ``(lost, leased)``: the messages whose lease was lost (not
        acked; the others are), and those newly leased. When a lease was lost
        nothing is leased, and ``leased`` is empty; it is empty too when
        nothing is claimable. It never waits: follow an empty ``leased`` with
        :meth:`get_many` to wait for work.
        """
        limit = check_positive_int("limit", limit)
        for message in messages:
            self._check_own(message)
        worker = leased_by or self.worker_id
        result = self._settle_and_claim(
            self.name,
            [Settlement(m.lease) for m in messages],
            worker_id=worker,
            limit=limit,
            lease_seconds=self.lease_timeout,
            max_attempts=self.max_attempts,
        )
        lost_at = _lost_at(messages, result.stale)
        observers = listening()
        if observers:
            self._ack_many_events(observers, messages, set(lost_at))
        lost = [messages[i] for i in lost_at]
        if lost:
            return lost, []
        if not isinstance(result.claimed, ClaimResult):
            raise _outdated_store(self.store, "settle_and_claim", result.claimed)
        return lost, self._claimed(result.claimed, worker)

    def _check_own(self, message: Message) -> None:
        if not isinstance(message, Message):
            raise ValueError(f"expected a Message from get(), got {type(message).__name__}")
        if message.queue != self.name:
            raise ValueError(
                f"message {message.id} belongs to queue {message.queue!r}, not {self.name!r}"
            )

    def ack(self, message: Message) -> None:
        """Done: remove the message. Raises LeaseExpired if the lease was lost."""
        self._check_own(message)
        stale = self.store.ack(self.name, [message.lease])
        observers = listening()
        if stale:
            if observers:
                queue_events.lease_expired(observers, self.worker_id, [message], "ack")
            raise stale_lease_error([message.id])
        if observers:
            queue_events.acked(observers, self.worker_id, [message])

    def ack_many(self, messages: Sequence[Message]) -> list[Message]:
        """Ack several in one transaction; returns those whose lease was lost."""
        for message in messages:
            self._check_own(message)
        lost_at = _lost_at(messages, self.store.ack(self.name, [m.lease for m in messages]))
        observers = listening()
        if observers:
            self._ack_many_events(observers, messages, set(lost_at))
        return [messages[i] for i in lost_at]

    def _ack_many_events(
        self, observers: tuple[Observer, ...], messages: Sequence[Message], lost_at: set[int]
    ) -> None:
        acked: list[Message] = []
        expired: list[Message] = []
        leases = set()
        for index, message in enumerate(messages):
            if index not in lost_at:
                acked.append(message)
            elif message.lease not in leases:
                expired.append(message)  # a repeated copy of an acked lease did not expire
            leases.add(message.lease)
        queue_events.acked(observers, self.worker_id, acked)
        queue_events.lease_expired(observers, self.worker_id, expired, "ack")

    def release(
        self,
        message: Message,
        *,
        delay: float = 0.0,
        error: BaseException | ErrorInfo | str | None = None,
    ) -> State:
        """Give the message back for another attempt after ``delay`` seconds.

        If it has used every attempt (``max_attempts``), it becomes a dead
        letter instead. Returns the state it went to. ``error`` (an
        exception, text or ErrorInfo) is kept as the message's latest error.
        """
        self._check_own(message)
        delay = check_seconds("delay", delay)
        info = error_info(error, self.store.clock.now())
        if self.max_attempts is not None and message.attempts >= self.max_attempts:
            self._dead_letter(message, info, "release")
            return State.DEAD
        done = self.store.release(self.name, message.lease, delay=delay, error=info)
        observers = listening()
        if not done:
            if observers:
                queue_events.lease_expired(observers, self.worker_id, [message], "release")
            raise stale_lease_error([message.id])
        if observers:
            queue_events.released(observers, self.worker_id, message, delay, info)
        return State.DELAYED if delay > 0 else State.READY

    def dead_letter(
        self, message: Message, *, error: BaseException | ErrorInfo | str | None = None
    ) -> None:
        """Give up on the message: keep it as a dead letter with its latest error."""
        self._check_own(message)
        self._dead_letter(message, error_info(error, self.store.clock.now()), "dead_letter")

    def _dead_letter(self, message: Message, info: ErrorInfo | None, operation: str) -> None:
        done = self.store.dead_letter(self.name, message.lease, error=info)
        observers = listening()
        if not done:
            if observers:
                queue_events.lease_expired(observers, self.worker_id, [message], operation)
            raise stale_lease_error([message.id])
        if observers:
            queue_events.dead_lettered(observers, self.worker_id, message, info)

    def extend_lease(self, message: Message, seconds: float) -> Message:
        """Keep working: the lease now ends ``seconds`` from now. Returns the updated message."""
        self._check_own(message)
        # A lease shorter than the clock can tell would end as it is granted.
        seconds = check_lease_timeout(seconds, "seconds")
        until = self.store.extend(self.name, message.lease, seconds)
        observers = listening()
        if until is None:
            if observers:
                queue_events.lease_expired(observers, self.worker_id, [message], "extend")
            raise stale_lease_error([message.id])
        if observers:
            queue_events.extended(observers, self.worker_id, message, until)
        return message.with_record(message.record._replace(leased_until=until, available_at=until))

    # -- looking and recovering -------------------------------------------------------

    def inspect(self, message_id: int) -> Message:
        """One message in any state; MessageNotFound once acked or purged."""
        record = self.store.get(self.name, _id_of(message_id))
        if record is None:
            raise MessageNotFound(f"no message {message_id} in queue {self.name!r}")
        return self._observed(record)

    def _observed(self, record: MessageRecord) -> Message:
        # Only the caller of get() holds a delivery's receipt: a message read
        # by inspect() or a listing cannot ack or release someone else's work.
        if record.receipt is not None:
            record = record._replace(receipt=None)
        return self._message(record)

    def stats(self) -> QueueStats:
        return self.store.stats(self.name)

    def qsize(self) -> int:
        """Messages waiting to be delivered: ready plus delayed (not inflight or dead)."""
        stats = self.stats()
        return stats.ready + stats.delayed

    def dead_letters(self, limit: int | None = None) -> list[Message]:
        """Dead letters, oldest id first."""
        if limit is not None:
            limit = check_positive_int("limit", limit)
        records = self.store.list_messages(self.name, state=State.DEAD, limit=limit)
        return [self._observed(r) for r in records]

    def messages(
        self, state: State | str | None = None, *, after_id: int | None = None, limit: int = 100
    ) -> list[Message]:
        """A page of messages in id order; continue with ``after_id`` = last id."""
        records = self.store.list_messages(
            self.name,
            state=_state_arg(state),
            after_id=None if after_id is None else _id_of(after_id, "after_id"),
            limit=check_positive_int("limit", limit),
        )
        return [self._observed(r) for r in records]

    def requeue_dead(
        self,
        message_or_id: Message | int | None = None,
        *,
        all: bool = False,
        delay: float = 0.0,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> list[int]:
        """Move dead letters back to ready with a fresh attempt budget; their ids.

        Pass one message or id, or ``all=True``, or a ``filter``. A given id that
        is not a dead letter raises MessageNotFound.
        """
        delay = check_seconds("delay", delay)
        chosen = [_id_of(message_or_id)] if message_or_id is not None else None
        if chosen is None and not all and filter is None:
            raise ValueError("requeue_dead needs a message or id, all=True, or a filter")
        if chosen is not None and (all or filter is not None):
            raise ValueError("requeue_dead takes a message or id, or all=True/filter, not both")
        flt = MessageFilter(ids=chosen) if chosen is not None else filter
        ids = self.store.requeue(self.name, filter=flt, delay=delay, dry_run=dry_run)
        observers = listening() if not dry_run else ()
        if observers:
            queue_events.requeued(observers, self.name, self.worker_id, ids, delay)
        if chosen is not None and not ids:
            raise MessageNotFound(
                f"message {chosen[0]} is not a dead letter in queue {self.name!r}"
            )
        return ids

    def purge(self, state: State | str | None = None, *, dry_run: bool = False) -> int:
        """Delete every message (or every one in ``state``); the count."""
        return self.store.purge(self.name, state=_state_arg(state), dry_run=dry_run)


def _id_of(message_or_id: Message | int, argument: str = "message id") -> int:
    if isinstance(message_or_id, Message):
        return message_or_id.id
    return check_message_id(message_or_id, argument)


def _payload_bytes(payload: object, serializer: Serializer) -> bytes:
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    raise SerializationError(
        f"serializer {getattr(serializer, 'name', serializer)!r} returned "
        f"{type(payload).__name__}, not bytes; its dumps() must return bytes"
    )


def _state_arg(state: State | str | None) -> State | None:
    if state is None or isinstance(state, State):
        return state
    try:
        return State(state)
    except ValueError:
        known = ", ".join(s.value for s in State)
        raise ValueError(f"state must be one of {known}, got {state!r}") from None


def _lost_at(messages: Sequence[Message], stale: Sequence[Lease]) -> list[int]:
    """The positions of ``messages`` whose ack the store refused, in order.

    Matched by (id, receipt), a repeated lease's failure going to its later
    copy: the store acks the first and finds the second stale.
    """
    left = Counter(stale)
    lost_at: list[int] = []
    for index in range(len(messages) - 1, -1, -1):
        lease = messages[index].lease
        if left[lease]:
            left[lease] -= 1
            lost_at.append(index)
    lost_at.reverse()
    return lost_at


def _outdated_store(store: Store, operation: str, result: object) -> StoreError:
    """A store written for the earlier protocol returns a plain list from
    ``claim``/``enqueue`` (and a careless one might return a tuple of
    records); unpacking it as a result pair would silently take its first two
    records for the two lists, so refuse it by name instead."""
    wanted = {
        "claim": "ClaimResult(leased, dead_lettered)",
        "enqueue": "EnqueueResult(records, added)",
    }[operation]
    return StoreError(
        f"store {redact_url(store.url)!r} ({type(store).__name__}) returned "
        f"{type(result).__name__} from {operation}(); the store protocol's {operation}() "
        f"returns {wanted} from localqueue.store: update the store plugin (CHANGELOG.md says how)"
    )
