"""An independent, obviously-correct model of the delivery contract.

The state machine drives a real store and this model side by side and
compares them after every step. The model is written from the contract in
docs/guarantees.md, not from any store's code, so a store and the model can
only agree by both keeping the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localqueue.store import ErrorInfo

READY, DELAYED, INFLIGHT, DEAD = "ready", "delayed", "inflight", "dead"


@dataclass
class ModelMessage:
    id: int
    payload: bytes
    priority: int
    available_at: float
    dedupe_key: str | None
    attempts: int = 0
    leased: bool = False  # stored as inflight (its lease may have expired)
    dead: bool = False
    receipt: str | None = None
    error: ErrorInfo | None = None  # the latest error the store must keep
    expired: bool = False  # dead-lettered by a claim after its last lease expired

    def state(self, now: float) -> str:
        if self.dead:
            return DEAD
        if self.available_at > now:
            return INFLIGHT if self.leased else DELAYED
        return READY


@dataclass
class Model:
    """The messages the store must hold, keyed by id."""

    max_attempts: int | None
    messages: dict[int, ModelMessage] = field(default_factory=dict)

    def live_key(self, key: str | None) -> ModelMessage | None:
        if key is None:
            return None
        return next((m for m in self.messages.values() if m.dedupe_key == key), None)

    def claimable(self, now: float) -> list[ModelMessage]:
        due = [m for m in self.messages.values() if not m.dead and m.available_at <= now]
        return sorted(due, key=lambda m: (-m.priority, m.available_at, m.id))

    def counts(self, now: float) -> dict[str, int]:
        counts = dict.fromkeys((READY, DELAYED, INFLIGHT, DEAD), 0)
        for message in self.messages.values():
            counts[message.state(now)] += 1
        return counts

    def current(self, message_id: int, receipt: str, now: float) -> ModelMessage | None:
        """The message if (id, receipt) is its live lease, else None (stale)."""
        m = self.messages.get(message_id)
        if m is None or m.dead or not m.leased or m.receipt != receipt or m.available_at <= now:
            return None
        return m
