"""Store plugins broken on purpose, and a way to install one as any plugin
is installed (an entry point on ``sys.path``), so that processes the runner
spawns load it too. Shared by the runner's tests."""

from __future__ import annotations

from pathlib import Path

LOSING_PLUGIN = """
from localqueue.store import ClaimResult, StoreScheme, hookimpl, settle_then_claim
from localqueue.stores.sqlite import SQLiteStore


class LosingStore(SQLiteStore):
    # Broken on purpose: every 7th message vanishes when it is handed out.
    def claim(self, queue, **kwargs):
        leased, dead = super().claim(queue, **kwargs)
        for record in leased:
            if record.id % 7 == 0:
                self._pool.get().execute("DELETE FROM lq_messages WHERE id = ?", (record.id,))
        return ClaimResult(leased, dead)

    # An ack with the next claim goes through the broken claim too.
    def settle_and_claim(self, queue, settlements, **kwargs):
        return settle_then_claim(self, queue, settlements, **kwargs)


def open_losing(url, *, clock=None):
    return LosingStore(url.split("://", 1)[1], clock=clock)


@hookimpl
def localqueue_store_schemes():
    return [StoreScheme("losing", open_losing)]
"""

HANGING_PLUGIN = """
import time
from localqueue.store import StoreScheme, hookimpl
from localqueue.stores.sqlite import SQLiteStore


class HangingStore(SQLiteStore):
    # Broken on purpose: a claim never returns, so consumers never finish.
    def claim(self, queue, **kwargs):
        time.sleep(3600)

    def settle_and_claim(self, queue, settlements, **kwargs):
        time.sleep(3600)


def open_hanging(url, *, clock=None):
    return HangingStore(url.split("://", 1)[1], clock=clock)


@hookimpl
def localqueue_store_schemes():
    return [StoreScheme("hanging", open_hanging)]
"""


SLOW_PLUGIN = """
import time
from localqueue.store import StoreScheme, hookimpl, settle_then_claim
from localqueue.stores.sqlite import SQLiteStore


class SlowStore(SQLiteStore):
    # Correct, but slow now and then: every 40th message's first claim
    # returns only after its lease ended, so its consumer holds it past the
    # lease and another may take it over - a redelivery the contract allows.
    def claim(self, queue, **kwargs):
        result = super().claim(queue, **kwargs)
        if any(r.id % 40 == 0 and r.attempts == 1 for r in result.leased):
            time.sleep(kwargs["lease_seconds"] + 0.3)
        return result

    def settle_and_claim(self, queue, settlements, **kwargs):
        return settle_then_claim(self, queue, settlements, **kwargs)


def open_slow(url, *, clock=None):
    return SlowStore(url.split("://", 1)[1], clock=clock)


@hookimpl
def localqueue_store_schemes():
    return [StoreScheme("slow", open_slow)]
"""

DOUBLE_DELIVERY_PLUGIN = """
import time
from localqueue.store import StoreScheme, hookimpl, settle_then_claim
from localqueue.stores.sqlite import SQLiteStore


class DoubleDeliveringStore(SQLiteStore):
    # Broken on purpose: every 40th message's first lease is written as
    # already over, so another consumer claims it while its holder still
    # has a lease that runs for lease_seconds (the record it got says so).
    def claim(self, queue, **kwargs):
        result = super().claim(queue, **kwargs)
        early = [r.id for r in result.leased if r.id % 40 == 0 and r.attempts == 1]
        for ident in early:
            self._pool.get().execute(
                "UPDATE lq_messages SET available_at = 0 WHERE id = ?", (ident,)
            )
        if early:
            time.sleep(0.3)  # time for the other consumer to claim it too
        return result

    def settle_and_claim(self, queue, settlements, **kwargs):
        return settle_then_claim(self, queue, settlements, **kwargs)


def open_double(url, *, clock=None):
    return DoubleDeliveringStore(url.split("://", 1)[1], clock=clock)


@hookimpl
def localqueue_store_schemes():
    return [StoreScheme("double", open_double)]
"""


REFUSING_PLUGIN = """
from localqueue.store import StoreScheme, hookimpl, settle_then_claim
from localqueue.stores.sqlite import SQLiteStore


class RefusingStore(SQLiteStore):
    # Broken on purpose: the first ack of every 40th message is refused as
    # stale although its lease runs (as a store might under lock contention,
    # instead of raising a busy error). The message then comes back after
    # its lease, as a stale ack would have it.
    def ack(self, queue, leases):
        refused = [lease for lease in leases if lease.id % 40 == 0 and self._first(lease)]
        done = super().ack(queue, [lease for lease in leases if lease not in refused])
        return [*done, *refused]

    def _first(self, lease):
        record = self.get("harness-run", lease.id)
        return record is not None and record.attempts == 1

    def settle_and_claim(self, queue, settlements, **kwargs):
        return settle_then_claim(self, queue, settlements, **kwargs)


def open_refusing(url, *, clock=None):
    return RefusingStore(url.split("://", 1)[1], clock=clock)


@hookimpl
def localqueue_store_schemes():
    return [StoreScheme("refusing", open_refusing)]
"""


def install_plugin(tmp_path: Path, name: str, source: str) -> Path:
    """A store plugin installed the way any is: an entry point on sys.path."""
    site = tmp_path / "site"
    info = site / f"{name}-0.dist-info"
    info.mkdir(parents=True)
    (site / f"{name}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[localqueue]\n{name} = {name}\n")
    return site
