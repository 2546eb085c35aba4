"""What each page shows, read from the store through the public kit only.

These functions block on the store; the app runs them off the event loop.
Every value they return is plain data for a template, which escapes it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode

from localqueue.store import (
    MessageFilter,
    MessageRecord,
    QueueStats,
    State,
    Store,
    all_stats,
)

# A worker silent this long is shown as stale (as `queue health` does).
STALE_AFTER = 60.0
PAGE_SIZE = 50
# Dead letters read to group them by error type: beyond this many the page
# says it grouped only the first ones.
GROUP_LIMIT = 100_000
# Longer payloads are cut when shown (the message page says so).
PAYLOAD_SHOWN = 64 * 1024


@dataclass(frozen=True)
class QueueRow:
    stats: QueueStats
    live_workers: int
    stale_workers: int


def overview(store: Store) -> list[QueueRow]:
    """Every queue with its counts and workers: one ``all_stats`` call."""
    now = store.clock.now()
    rows = []
    for stats in all_stats(store):
        stale = sum(1 for seen in stats.workers.values() if now - seen > STALE_AFTER)
        rows.append(QueueRow(stats, len(stats.workers) - stale, stale))
    return rows


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    silent_for: float | None  # seconds since its last heartbeat; None: it sends none
    inflight: int  # messages it holds now
    stale: bool


def workers(stats: QueueStats, now: float) -> list[WorkerRow]:
    """Who works on a queue: every worker that sends heartbeats, and anyone
    else holding a lease (a script calling get(), say), stale ones first."""
    names = sorted(set(stats.workers) | set(stats.inflight_by_worker))
    rows = []
    for name in names:
        seen = stats.workers.get(name)
        silent = None if seen is None else max(0.0, now - seen)
        stale = silent is not None and silent > STALE_AFTER
        rows.append(WorkerRow(name, silent, stats.inflight_by_worker.get(name, 0), stale))
    return sorted(rows, key=lambda r: (not r.stale, r.worker_id))


@dataclass(frozen=True)
class ListFilter:
    """The filters of a queue's message listing, as given in the address."""

    state: State | None = None
    error_contains: str | None = None
    error_type: str | None = None
    min_attempts: int | None = None
    failed_within: float | None = None
    failed_within_text: str | None = None  # as given (5m), for links and forms
    after: int | None = None

    def message_filter(self, now: float) -> MessageFilter | None:
        chosen = (self.error_contains, self.error_type, self.min_attempts, self.failed_within)
        if all(value is None for value in chosen):
            return None
        return MessageFilter(
            error_contains=self.error_contains,
            error_type=self.error_type,
            min_attempts=self.min_attempts,
            failed_after=None if self.failed_within is None else now - self.failed_within,
        )

    def query(self, **changes: object) -> str:
        """The listing's query string with ``changes`` applied (None drops a key)."""
        values: dict[str, object] = {
            "state": self.state.value if self.state else None,
            "error_contains": self.error_contains,
            "error_type": self.error_type,
            "min_attempts": self.min_attempts,
            "failed_within": self.failed_within_text,
            "after": self.after,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v is not None and v != ""})


@dataclass(frozen=True)
class MessageRow:
    id: int
    state: str
    attempts: int
    created: str
    error_type: str | None
    preview: str


def _when(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def listing(
    store: Store, queue: str, chosen: ListFilter, limit: int = PAGE_SIZE
) -> tuple[list[MessageRow], int | None]:
    """One page of ``queue``'s messages in id order, and the id to continue after."""
    now = store.clock.now()
    records = store.list_messages(
        queue,
        state=chosen.state,
        filter=chosen.message_filter(now),
        after_id=chosen.after,
        limit=limit + 1,
    )
    more = len(records) > limit
    rows = [
        MessageRow(
            r.id,
            r.state.value,
            r.attempts,
            _when(r.created_at),
            r.last_error.type if r.last_error else None,
            payload_preview(r.payload),
        )
        for r in records[:limit]
    ]
    return rows, (rows[-1].id if more and rows else None)


def payload_text(payload: bytes) -> tuple[str, str]:
    """(how it was read, text to show): JSON pretty-printed, else UTF-8 text,
    else a hex dump; cut at PAYLOAD_SHOWN bytes."""
    cut = payload[:PAYLOAD_SHOWN]
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        pass
    else:
        if len(payload) <= PAYLOAD_SHOWN:
            return "json", json.dumps(value, indent=2, ensure_ascii=False)
    try:
        return "text", cut.decode()
    except UnicodeDecodeError:
        return "bytes", cut.hex(" ", 1)


def payload_preview(payload: bytes, width: int = 80) -> str:
    head = payload[: width * 4]
    try:
        text = head.decode()
    except UnicodeDecodeError:
        text = f"({len(payload):,} bytes)"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class MessageView:
    record: MessageRecord
    state: str
    read_as: str
    payload: str
    payload_cut: bool
    times: list[tuple[str, str]]


def message(store: Store, queue: str, message_id: int) -> MessageView | None:
    record = store.get(queue, message_id)
    if record is None:
        return None
    read_as, text = payload_text(record.payload)
    times = [("created", _when(record.created_at)), ("available at", _when(record.available_at))]
    if record.leased_until is not None:
        times.append(("leased until", _when(record.leased_until)))
    if record.failed_at is not None:
        times.append(("failed at", _when(record.failed_at)))
    if record.last_error is not None and record.last_error.at is not None:
        times.append(("last error at", _when(record.last_error.at)))
    return MessageView(
        record,
        record.state.value,
        read_as,
        text,
        len(record.payload) > PAYLOAD_SHOWN,
        times,
    )


@dataclass(frozen=True)
class DeadGroup:
    error_type: str
    count: int
    example_id: int
    example_message: str


def dead_groups(store: Store, queue: str) -> tuple[list[DeadGroup], int, bool]:
    """Dead letters grouped by error type, largest group first; how many were
    read, and whether GROUP_LIMIT cut the reading short."""
    counts: Counter[str] = Counter()
    example: dict[str, MessageRecord] = {}
    read = 0
    after: int | None = None
    while read < GROUP_LIMIT:
        page = store.list_messages(
            queue, state=State.DEAD, after_id=after, limit=min(1000, GROUP_LIMIT - read)
        )
        if not page:
            break
        for record in page:
            kind = record.last_error.type if record.last_error else "(no error)"
            counts[kind] += 1
            example.setdefault(kind, record)
        read += len(page)
        after = page[-1].id
    cut = read >= GROUP_LIMIT and bool(
        store.list_messages(queue, state=State.DEAD, after_id=after, limit=1)
    )
    groups = [
        DeadGroup(
            kind,
            n,
            example[kind].id,
            _error_message(example[kind]),
        )
        for kind, n in counts.most_common()
    ]
    return groups, read, cut


def _error_message(record: MessageRecord) -> str:
    return record.last_error.message if record.last_error else ""
