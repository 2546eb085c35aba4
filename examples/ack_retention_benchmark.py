"""What acked retention costs an ack, and what it costs a queue that does not use it.

Run it::

    python examples/ack_retention_benchmark.py [--messages N] [--repeats R]

Acks per second on the SQLite store (WAL, ``synchronous=NORMAL``), one ack
per call (one DELETE statement each, the worker's path), in three setups on
fresh files:

1. ``no trigger``: the archive trigger dropped from the connection, i.e. the
   ack exactly as it was before schema version 3;
2. ``retention off``: schema 3 as shipped, the queue without ``keep_acked``
   (the trigger's WHEN test runs and finds no setting);
3. ``retention on``: ``keep_acked`` set, every ack also archives its message.

Each rate is the best of ``--repeats`` runs (a shared machine is noisy); the
ratios to setup 1 are what to read. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from localqueue.store import Lease, NewMessage
from localqueue.stores.sqlite import SQLiteStore


def acks_per_second(setup: str, messages: int) -> float:
    with tempfile.TemporaryDirectory() as where:
        store = SQLiteStore(Path(where) / "q.db")
        if setup == "no trigger":
            store._pool.get().execute("DROP TRIGGER temp.lq_archive_acked")
        if setup == "retention on":
            store.set_keep_acked("jobs", 86400)
        store.enqueue("jobs", [NewMessage(b'{"n": 1, "pad": "' + b"x" * 80 + b'"}')] * messages)
        leases: list[Lease] = []
        while len(leases) < messages:
            records = store.claim("jobs", worker_id="w", limit=500, lease_seconds=3600).leased
            leases.extend(Lease(r.id, r.receipt or "") for r in records)
        started = time.perf_counter()
        for lease in leases:
            if store.ack("jobs", [lease]):
                raise SystemExit("an ack was refused")
        elapsed = time.perf_counter() - started
        archived = len(store.list_acked("jobs", limit=messages))
        expected = messages if setup == "retention on" else 0
        if archived != expected:
            raise SystemExit(f"{setup}: {archived} archived, expected {expected}")
        store.close()
        return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    setups = ["no trigger", "retention off", "retention on"]
    best = dict.fromkeys(setups, 0.0)
    for _ in range(args.repeats):  # interleaved, so drift hits every setup alike
        for setup in setups:
            best[setup] = max(best[setup], acks_per_second(setup, args.messages))
    base = best["no trigger"]
    for setup in setups:
        print(f"{setup:<14} {best[setup]:>10,.0f} acks/s   ratio {best[setup] / base:.3f}")


if __name__ == "__main__":
    main()
