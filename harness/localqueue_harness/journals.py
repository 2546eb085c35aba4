"""Reading the consumers' journals of a multi-process run, and telling a
redelivery the delivery contract allows from one it does not.

A consumer journals, per delivery, ``start ID LATENCY_MS LEASED_UNTIL``
before handling, ``acking ID`` just before the ack, then ``acked ID``,
``refused ID`` (the lease was stale) or ``unsure ID`` (the ack raised a
connection error and may or may not have committed).

A store claims a message for ``lease`` seconds, so a delivery's
``leased_until`` minus ``lease`` is the moment it was claimed, on the
store's own clock: the same clock that wrote the delivery before it. That
is what lets the runner check *when* a message came back, not only that it
did: a message may be handed out again only once the lease of its previous
delivery has ended, and never once a delivery of it was acked. Whether the
holder was killed, stalled past its lease under load, or had its ack fail,
makes no difference to that rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

# Slack for a store that reads its clock twice in one claim (once to test
# expiry, once to compute the new lease): a redelivery claimed up to this
# long before the previous lease ended still counts as after it.
CLOCK_SLACK = 0.01


@dataclass
class Delivery:
    """One journaled delivery of a message: who took it, until when it was
    leased, and the last word its consumer wrote about it."""

    journal: str  # the consumer journal's name, e.g. "c3"
    leased_until: float
    # "acked", "refused", "unsure", "acking" (the ack was under way when
    # the journal ended) or "held" (no ack attempted when the journal ended)
    outcome: str = "held"
    killed: bool = False

    def describe(self, lease: float) -> str:
        claimed = self.leased_until - lease
        holder = f"{self.journal} (killed)" if self.killed else self.journal
        return (
            f"{holder} claimed it at {claimed:.3f}, leased until "
            f"{self.leased_until:.3f}, last word {self.outcome!r}"
        )


@dataclass
class Journals:
    """Everything the consumers wrote, gathered by message id."""

    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    unsure: set[str] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def starts(self) -> Counter[str]:
        return Counter({ident: len(found) for ident, found in self.deliveries.items()})

    def held_by_killed(self) -> set[str]:
        """Ids a killed consumer started and had not seen acked."""
        return {
            ident
            for ident, found in self.deliveries.items()
            if any(d.killed and d.outcome != "acked" for d in found)
        }

    def outlived_leases(self) -> set[str]:
        """Ids whose ack a live consumer saw refused: it held them past the lease."""
        return {
            ident
            for ident, found in self.deliveries.items()
            if any(not d.killed and d.outcome == "refused" for d in found)
        }

    def ack_cut_short(self) -> set[str]:
        """Ids a killed consumer was acking when it died: the ack may have
        committed with no ``acked`` line."""
        return {
            ident
            for ident, found in self.deliveries.items()
            if any(d.killed and d.outcome == "acking" for d in found)
        }


def read_journals(paths: Iterable[Path], killed: Iterable[Path]) -> Journals:
    """Read consumer journals; ``killed`` are those whose process was SIGKILLed."""
    killed_paths = {Path(p) for p in killed}
    journals = Journals()
    for path in sorted(paths):
        if not path.exists():
            continue  # killed before it opened its journal
        was_killed = path in killed_paths
        current: dict[str, Delivery] = {}
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue  # a line the kill cut short
            kind, ident = parts[0], parts[1]
            if kind == "start" and len(parts) == 4:
                delivery = Delivery(path.stem, float(parts[3]), killed=was_killed)
                journals.deliveries.setdefault(ident, []).append(delivery)
                journals.latencies_ms.append(float(parts[2]))
                current[ident] = delivery
            elif kind in ("acking", "acked", "refused", "unsure") and ident in current:
                current[ident].outcome = kind
                if kind == "acked":
                    journals.acked.add(ident)
                elif kind == "unsure":
                    journals.unsure.add(ident)
    return journals


def unexplained_redeliveries(
    journals: Journals, lease: float, put_again: set[str]
) -> dict[str, str]:
    """Messages started more than once against the contract, each with why.

    ``put_again`` are ids a producer may have put twice (a replaced
    producer's re-put, a put retried after a connection error): their second
    copy is a message of its own, so their deliveries are not compared.
    Every other message may be delivered again only after the lease of its
    previous delivery ended (claimed no earlier than that delivery's
    ``leased_until``, with ``CLOCK_SLACK``) and only if that delivery was
    not acked.
    """
    found: dict[str, str] = {}
    for ident, deliveries in journals.deliveries.items():
        if len(deliveries) < 2 or ident in put_again:
            continue
        ordered = sorted(deliveries, key=lambda d: d.leased_until)
        for before, after in pairwise(ordered):
            claimed = after.leased_until - lease
            if before.outcome == "acked":
                why = "delivered again after an ack that returned"
            elif claimed < before.leased_until - CLOCK_SLACK:
                why = (
                    f"claimed again {before.leased_until - claimed:.3f}s before "
                    "the previous lease ended"
                )
            else:
                continue
            history = "; ".join(d.describe(lease) for d in ordered)
            found[ident] = f"{why}: {history}"
            break
    return found
