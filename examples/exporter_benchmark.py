"""What an installed exporter costs every process: put and get+ack msgs/s on
SQLite with the localqueue-prometheus plugin observing, against the same
loops with no installed plugin.

Each measurement runs in a fresh process that loads plugins the way any
program does (through the entry points; ``LOCALQUEUE_PLUGINS`` selects
``prometheus`` or nothing), alternating the two, best of ``--repeats``:

    python examples/exporter_benchmark.py [--messages N] [--repeats R] [--json]

Shared machines are noisy; compare the ratios, not the absolute numbers.
Each loop starts after ``os.sync()``, so that the disk writeback of the
previous loop's writes does not land in it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

PAYLOAD = {"user": 12345, "action": "resize", "file": "images/2026/11/28/cat.png", "w": 640}


def one_run(count: int) -> dict[str, float]:
    """In this process: put ``count`` one by one, then get+ack them."""
    from localqueue import PersistentQueue

    with (
        tempfile.TemporaryDirectory() as tmp,
        PersistentQueue("bench", store=f"sqlite://{tmp}/bench.sqlite3") as q,
    ):
        started = time.perf_counter()
        for _ in range(count):
            q.put(PAYLOAD)
        put = count / (time.perf_counter() - started)
        # Flush the freshly written WAL to disk before timing the next loop:
        # on this kind of machine the kernel's writeback of those pages
        # otherwise overlaps the get+ack loop and makes its writes stall,
        # sometimes and not others (measured: 3x either way, depending only on
        # how long the code before it took).
        os.sync()
        started = time.perf_counter()
        for _ in range(count):
            q.ack(q.get(block=False))
        get_ack = count / (time.perf_counter() - started)
    return {"put": put, "get+ack": get_ack}


def measure(plugins: str, count: int) -> dict[str, float]:
    env = {**os.environ, "LOCALQUEUE_PLUGINS": plugins}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("LOCALQUEUE_LOG_EVENTS", None)
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(count)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rates: dict[str, float] = json.loads(out.stdout)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one)))
        return
    best: dict[str, dict[str, float]] = {"none": {}, "prometheus": {}}
    for _ in range(args.repeats):
        for label, plugins in (("none", ""), ("prometheus", "prometheus")):
            for loop, rate in measure(plugins, args.messages).items():
                best[label][loop] = max(best[label].get(loop, 0.0), rate)
    ratios = {loop: best["prometheus"][loop] / best["none"][loop] for loop in best["none"]}
    if args.json:
        print(json.dumps({"best": best, "ratios": ratios}))
        return
    print(f"SQLite, {args.messages} messages, best of {args.repeats}, one process per run")
    for loop in ("put", "get+ack"):
        print(f"{loop:8} no plugins {best['none'][loop]:9,.0f}/s   localqueue-prometheus "
              f"{best['prometheus'][loop]:9,.0f}/s   ratio {ratios[loop]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
