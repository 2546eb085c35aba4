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
CHUNK = 500  # ids per store call (SQLite caps the variables of one statement)


@dataclass(frozen=True)
class Preview:
    action: str  # "requeue" or "purge"
    queue: str
    ids: tuple[int, ...]
    state: State | None  # purge only
    described: str  # what the operator chose, in words
    made_at: float


def preview_requeue(store: Store, queue: str, flt: MessageFilter | None, described: str) -> Preview:
    ids = store.requeue(queue, filter=flt, dry_run=True)
    return Preview("requeue", queue, tuple(ids), None, described, time.monotonic())


def preview_purge(
    store: Store, queue: str, state: State | None, flt: MessageFilter | None, described: str
) -> Preview:
    ids = [r.id for r in store.list_messages(queue, state=state, filter=flt)]
    return Preview("purge", queue, tuple(ids), state, described, time.monotonic())


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


def carry_out(store: Store, preview: Preview) -> int:
    """Do the previewed action to the pinned ids still eligible; how many."""
    done = 0
    for chunk in _chunks(preview.ids):
        flt = MessageFilter(ids=chunk)
        if preview.action == "requeue":
            done += len(store.requeue(preview.queue, filter=flt))
        else:
            done += store.purge(preview.queue, state=preview.state, filter=flt)
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
