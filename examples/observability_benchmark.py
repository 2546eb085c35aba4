"""What events cost on the hot path: put and get+ack msgs/s on SQLite.

Three variants of the same loops, interleaved in one run:

1. ``no events``: a PersistentQueue whose put/get/ack are the code before
   events existed (copied below, the event calls left out): the baseline;
2. ``no observer``: the real PersistentQueue with no ``localqueue_event``
   implementation loaded (installed plugins are turned off here): the
   target is >= 0.95x the baseline;
3. ``no-op observer``: the same with one observer that does nothing, to
   show what building and handing out events costs when someone listens.

    python examples/observability_benchmark.py [--messages N] [--repeats R] [--json]

Each rate is the best of ``--repeats`` runs, since shared machines are
noisy; compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import queue as stdlib_queue
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Only the built-in plugins: an installed metrics plugin would be an observer.
os.environ["LOCALQUEUE_PLUGINS"] = ""
os.environ.pop("LOCALQUEUE_LOG_EVENTS", None)

from localqueue import PersistentQueue, hookimpl
from localqueue.errors import stale_lease_error
from localqueue.message import _UNSET, Message
from localqueue.observability.events import Event
from localqueue.observability.observers import listening
from localqueue.plugins import get_plugin_manager
from localqueue.store import NewMessage, check_dedupe_key, check_priority, check_seconds

PAYLOAD = {"user": 12345, "action": "resize", "file": "images/2026/11/28/cat.png", "w": 640}


class NoEventsQueue(PersistentQueue):
    """put, get and ack as they were before events (dedupe-free paths)."""

    def put(
        self,
        value: Any,
        *,
        delay: float = 0.0,
        priority: int = 0,
        dedupe_key: str | None = None,
    ) -> Message:
        check_dedupe_key(dedupe_key)
        new = NewMessage(
            payload=self._dump(value),
            delay=check_seconds("delay", delay),
            priority=check_priority(priority),
            dedupe_key=dedupe_key,
        )
        [record] = self.store.enqueue(self.name, [new]).records
        if record.receipt is not None:
            return self._observed(record)
        known = value if record.payload == new.payload else _UNSET
        return Message(record, self.serializer, known)

    def get_many(
        self,
        limit: int,
        *,
        block: bool = True,
        timeout: float | None = None,
        leased_by: str | None = None,
    ) -> list[Message]:
        records = self.store.claim(
            self.name,
            worker_id=leased_by or self.worker_id,
            limit=limit,
            lease_seconds=self.lease_timeout,
            max_attempts=self.max_attempts,
        ).leased
        if records:
            return [self._message(r) for r in records]
        raise stdlib_queue.Empty

    def ack(self, message: Message) -> None:
        self._check_own(message)
        if self.store.ack(self.name, [message.lease]):
            raise stale_lease_error([message.id])


class NoOpObserver:
    @hookimpl
    def localqueue_event(self, event: Event) -> None:
        pass


def put_rate(queue: PersistentQueue, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        queue.put(PAYLOAD)
    return count / (time.perf_counter() - started)


def get_ack_rate(queue: PersistentQueue, count: int) -> float:
    for start in range(0, count, 500):
        queue.put_many([PAYLOAD] * min(500, count - start))
    os.sync()  # the fill's disk writeback must not land in the timed loop
    started = time.perf_counter()
    for _ in range(count):
        queue.ack(queue.get(block=False))
    return count / (time.perf_counter() - started)


def measure(
    kind: type[PersistentQueue], observed: bool, loop: Callable[[PersistentQueue, int], float],
    count: int, directory: Path, run: int,
) -> float:  # fmt: skip
    pm = get_plugin_manager()
    if observed:
        pm.register(NoOpObserver(), name="noop")
    try:
        assert bool(listening()) == observed
        path = directory / f"{kind.__name__}-{observed}-{loop.__name__}-{run}.sqlite3"
        with kind("bench", store=f"sqlite://{path}") as q:
            return loop(q, count)
    finally:
        if observed:
            pm.unregister(name="noop")


VARIANTS = {
    "no events": (NoEventsQueue, False),
    "no observer": (PersistentQueue, False),
    "no-op observer": (PersistentQueue, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeats):
            for loop in (put_rate, get_ack_rate):
                for name, (kind, observed) in VARIANTS.items():
                    rate = measure(kind, observed, loop, args.messages, Path(tmp), run)
                    key = (loop.__name__, name)
                    best[key] = max(best.get(key, 0.0), rate)
    rows: list[dict[str, Any]] = []
    for loop_name, label in (("put_rate", "put"), ("get_ack_rate", "get+ack")):
        baseline = best[(loop_name, "no events")]
        for name in VARIANTS:
            rate = best[(loop_name, name)]
            rows.append({"loop": label, "variant": name, "msgs_per_s": round(rate),
                         "ratio": round(rate / baseline, 3)})  # fmt: skip
    if args.json:
        print(json.dumps({"messages": args.messages, "repeats": args.repeats, "rows": rows}))
        return
    print(f"SQLite, {args.messages} messages, best of {args.repeats} (ratio: vs no events)")
    for row in rows:
        verdict = ""
        if row["variant"] == "no observer":
            verdict = "  ok (>= 0.95)" if row["ratio"] >= 0.95 else "  SLOWER than 0.95"
        print(f"{row['loop']:8} {row['variant']:15} {row['msgs_per_s']:>9} msgs/s  "
              f"{row['ratio']:.3f}x{verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
