"""Reading the consumers' journals of a multi-process run, and telling a
redelivery the delivery contract allows from one it does not.

A consumer journals, per delivery,
``start ID LATENCY_MS LEASED_UNTIL ASKED GOT .`` before handling: the
store's ``leased_until`` (``-`` if it gave none), and this host's monotonic
clock (shared by every process on a machine) just before the call that
claimed the message (``get``, or the ``ack_and_get`` of the message before)
and just after it returned. Then ``acking ID`` just before the ack, and
``acked ID``, ``refused ID AT`` (the lease was stale; AT is the host time
the refusal came back) or ``unsure ID`` (the ack raised a connection error
and may or may not have committed).

The checks use the host's clock, not the store's: a store that reads its
clock once per claim always agrees with itself, so its own timestamps
cannot show that it cut a lease short. A delivery was claimed somewhere
between its ASKED and GOT, so, whoever held it (a killed consumer, a live
one stalled past its lease, one whose ack failed):

* a message handed out again must come back at least ``lease`` seconds
  after the call that claimed it before began: the next delivery's GOT
  minus the previous one's ASKED is at least ``lease``;
* a refusal of an ack must come back at least ``lease`` seconds after the
  call that claimed the delivery began (an earlier one refused a valid ack);
* nothing is handed out again after an ack that returned.

Each is a necessary condition, so a correct store never fails them (up to
``CLOCK_SLACK``, for clocks that tick at slightly different rates); a store
that ends leases early, refuses valid acks or redelivers acked messages does.
The store's own clock is checked as well (the next claim, ``leased_until``
minus ``lease``, no earlier than the previous ``leased_until``): that catches
a store whose stored lease and whose claim test disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

# Slack for clocks that tick at slightly different rates (the store's
# server and this host) and for float rounding: a redelivery or refusal up
# to this long before the bound still passes.
CLOCK_SLACK = 0.01


@dataclass
class Delivery:
    """One journaled delivery of a message: who took it, when (host clock),
    until when the store leased it, and the last word its consumer wrote."""

    journal: str  # the consumer journal's name, e.g. "c3"
    leased_until: float | None  # the store's clock; None if the store gave none
    asked: float  # host monotonic clock, just before the claiming call
    got: float  # and just after it returned
    # "acked", "refused", "unsure", "acking" (the ack was under way when
    # the journal ended) or "held" (no ack attempted when the journal ended)
    outcome: str = "held"
    refused_at: float | None = None  # host clock, when a refusal came back
    killed: bool = False

    def describe(self, lease: float) -> str:
        holder = f"{self.journal} (killed)" if self.killed else self.journal
        store = "" if self.leased_until is None else f", leased until {self.leased_until:.3f}"
        return (
            f"{holder} claimed it between {self.asked:.3f} and {self.got:.3f} (host clock)"
            f"{store}, last word {self.outcome!r}"
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


def _number(text: str) -> float:
    value = float(text)  # ValueError for a line a kill cut short
    if math.isnan(value):
        raise ValueError(text)
    return value


def _start(journal: str, parts: list[str], killed: bool) -> tuple[Delivery, float] | None:
    """A ``start`` line's delivery and latency, or None for a line a kill cut
    short (it lacks the final ``.``, or a field does not read)."""
    if len(parts) != 7 or parts[6] != ".":
        return None
    try:
        latency = float(parts[2])
        leased_until = None if parts[3] == "-" else _number(parts[3])
        asked, got = float(parts[4]), float(parts[5])
    except ValueError:
        return None
    return Delivery(journal, leased_until, asked, got, killed=killed), latency


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
            if kind == "start":
                found = _start(path.stem, parts, was_killed)
                if found is not None:
                    delivery, latency = found
                    journals.deliveries.setdefault(ident, []).append(delivery)
                    journals.latencies_ms.append(latency)
                    current[ident] = delivery
            elif kind in ("acking", "acked", "refused", "unsure") and ident in current:
                delivery = current[ident]
                delivery.outcome = kind
                if kind == "acked":
                    journals.acked.add(ident)
                elif kind == "unsure":
                    journals.unsure.add(ident)
                elif kind == "refused" and len(parts) == 3:
                    with suppress(ValueError):  # a line a kill cut short
                        delivery.refused_at = float(parts[2])
    return journals


def _in_order(deliveries: list[Delivery]) -> list[Delivery]:
    """In the order the store handed them out: by its leased_until where it
    gave one (a claim made after another ends its lease later), else by when
    the claiming call returned."""
    if all(d.leased_until is not None for d in deliveries):
        return sorted(deliveries, key=lambda d: (d.leased_until, d.got))
    return sorted(deliveries, key=lambda d: d.got)


def _breach(before: Delivery, after: Delivery, lease: float) -> str | None:
    if before.outcome == "acked":
        return "delivered again after an ack that returned"
    waited = after.got - before.asked
    if waited < lease - CLOCK_SLACK:
        return (
            f"handed out again {waited:.3f}s after the call that claimed it before began, "
            f"before a lease of {lease:g}s could have ended"
        )
    if before.leased_until is not None and after.leased_until is not None:
        claimed = after.leased_until - lease
        if claimed < before.leased_until - CLOCK_SLACK:
            return (
                f"claimed again {before.leased_until - claimed:.3f}s before the previous "
                "lease ended, by the store's own clock"
            )
    return None


def unexplained_redeliveries(
    journals: Journals, lease: float, put_again: set[str]
) -> dict[str, str]:
    """Messages started more than once against the contract, each with why.

    ``put_again`` are ids a producer may have put twice (a replaced
    producer's re-put, a put retried after a connection error): their second
    copy is a message of its own, so their deliveries are not compared.
    """
    found: dict[str, str] = {}
    for ident, deliveries in journals.deliveries.items():
        if len(deliveries) < 2 or ident in put_again:
            continue
        ordered = _in_order(deliveries)
        for before, after in pairwise(ordered):
            why = _breach(before, after, lease)
            if why is not None:
                history = "; ".join(d.describe(lease) for d in ordered)
                found[ident] = f"{why}: {history}"
                break
    return found


def early_refusals(journals: Journals, lease: float) -> dict[str, str]:
    """Acks the store refused before the lease could have ended, each with why."""
    found: dict[str, str] = {}
    for ident, deliveries in journals.deliveries.items():
        for d in deliveries:
            if d.refused_at is not None and d.refused_at - d.asked < lease - CLOCK_SLACK:
                found[ident] = (
                    f"{d.journal}'s ack was refused {d.refused_at - d.asked:.3f}s after the "
                    f"call that claimed it began, before a lease of {lease:g}s could have ended"
                )
    return found
