"""Requeue and purge: previewed first, then done to exactly what was shown.

A preview asks the store what the CLI's ``--dry-run`` would (the same store
calls, so the same counts), and pins the ids it found under a random key
kept by this server for ten minutes. Confirming names that key: the action
then touches only the pinned ids, so a message that arrived or died while
the operator read the preview is never swept up with the ones they agreed
to.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from localqueue.store import MessageFilter, State, Store

PREVIEW_TTL = 600.0  # seconds a preview can be confirmed
MAX_PREVIEWS = 100  # pinned previews kept at once (oldest dropped)
# Most ids one preview pins: beyond this the dashboard offers no confirmation
# and points to the CLI, which acts on a filter without holding every id.
MAX_PINNED = 100_000
CHUNK = 500  # ids per store call (SQLite caps the variables of one statement)
PAGE = 1000  # messages read per listing call while pinning a purge


@dataclass(frozen=True)
class Preview:
    action: str  # "requeue" or "purge"
    queue: str
    count: int  # what the CLI's --dry-run counts
    ids: tuple[int, ...]  # the ids pinned (none when count > MAX_PINNED)
    state: State | None  # purge only
    described: str  # what the operator chose, in words
    made_at: float

    @property
    def too_many(self) -> bool:
        return self.count > MAX_PINNED


def preview_requeue(store: Store, queue: str, flt: MessageFilter | None, described: str) -> Preview:
    ids = store.requeue(queue, filter=flt, dry_run=True)
    pinned = tuple(ids) if len(ids) <= MAX_PINNED else ()
    return Preview("requeue", queue, len(ids), pinned, None, described, time.monotonic())


def preview_purge(
    store: Store, queue: str, state: State | None, flt: MessageFilter | None, described: str
) -> Preview:
    count = store.purge(queue, state=state, filter=flt, dry_run=True)
    ids: list[int] = []
    if count <= MAX_PINNED:
        # Page through the ids, keeping no record: one page's payloads at
        # most are in memory at once, whatever the backlog.
        after = None
        while len(ids) <= MAX_PINNED:
            page = store.list_messages(queue, state=state, filter=flt, after_id=after, limit=PAGE)
            ids += [r.id for r in page]
            if len(page) < PAGE:
                break
            after = page[-1].id
    if len(ids) > MAX_PINNED:  # more arrived between the count and the listing
        count, ids = len(ids), []
    return Preview("purge", queue, count, tuple(ids), state, described, time.monotonic())


class PartlyDone(RuntimeError):
    """The store failed part of the way through an action."""


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


def carry_out(store: Store, preview: Preview) -> int:
    """Do the previewed action to the pinned ids still eligible; how many.

    It goes in chunks, each one store call: if the store fails on the way,
    PartlyDone says how many were done before it did."""
    done = 0
    for chunk in _chunks(preview.ids):
        flt = MessageFilter(ids=chunk)
        try:
            if preview.action == "requeue":
                done += len(store.requeue(preview.queue, filter=flt))
            else:
                done += store.purge(preview.queue, state=preview.state, filter=flt)
        except Exception as exc:
            verb = "requeued" if preview.action == "requeue" else "deleted"
            raise PartlyDone(
                f"{verb} {done:,} of the {len(preview.ids):,} message(s) previewed in "
                f"{preview.queue!r}, then the store failed: {exc}; preview again for the rest"
            ) from exc
    return done


class Previews:
    """Pinned previews by key; each can be confirmed once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pinned: dict[str, Preview] = {}

    def pin(self, preview: Preview) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._expire()
            while len(self._pinned) >= MAX_PREVIEWS:
                del self._pinned[next(iter(self._pinned))]
            self._pinned[key] = preview
        return key

    def take(self, key: str) -> Preview | None:
        with self._lock:
            self._expire()
            return self._pinned.pop(key, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, p in self._pinned.items() if now - p.made_at > PREVIEW_TTL]:
            del self._pinned[key]
