"""The asyncio API on SQLite against the blocking API, in one run.

Prints msgs/s for ``put`` one at a time and ``get(block=False)`` + ``ack``
one at a time, through PersistentQueue and through AsyncPersistentQueue
(each call awaited in turn: the cost of the hop to a store thread and
back, shown beside its floor, the blocking calls each awaited through
``loop.run_in_executor``), then the same work from 50 coroutines at once (as a web service's
request handlers make it: puts and acks that meet go in one transaction),
each against the blocking API's one-at-a-time rate (target: >= 0.8x). Then 100
coroutines wait in ``get`` at once: it prints how many threads the process
has while they wait (target: a handful, not 100) and how long one
``put_many`` takes to wake them all; and how long a waiting ``get`` takes
to return a message another process put, blocking and async (target: the
same).

    python examples/async_benchmark.py [--messages N] [--repeats R] [--json] [--save FILE]

Each rate is the best of ``--repeats`` runs (shared machines are noisy);
compare the ratios, not the absolute numbers. ``--save FILE`` appends the
run to a JSON file (examples/bench_record.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_record import record

from localqueue import PersistentQueue
from localqueue.aio import AsyncPersistentQueue


def sync_rates(path: Path, n: int) -> tuple[float, float]:
    with PersistentQueue("bench", store=f"sqlite://{path}") as q:
        started = time.perf_counter()
        for i in range(n):
            q.put(i)
        put = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(n):
            q.ack(q.get(block=False))
        get_ack = n / (time.perf_counter() - started)
    return put, get_ack


async def async_rates(path: Path, n: int) -> tuple[float, float]:
    async with AsyncPersistentQueue("bench", store=f"sqlite://{path}") as q:
        started = time.perf_counter()
        for i in range(n):
            await q.put(i)
        put = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(n):
            await q.ack(await q.get(block=False))
        get_ack = n / (time.perf_counter() - started)
    return put, get_ack


async def offloaded_rates(path: Path, n: int) -> tuple[float, float]:
    """The floor of any async API over a blocking store: the blocking
    queue's own calls, each awaited through ``loop.run_in_executor``."""
    loop = asyncio.get_running_loop()
    with PersistentQueue("bench", store=f"sqlite://{path}") as q:
        started = time.perf_counter()
        for i in range(n):
            await loop.run_in_executor(None, q.put, i)
        put = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(n):
            message = await loop.run_in_executor(None, lambda: q.get(block=False))
            await loop.run_in_executor(None, q.ack, message)
        get_ack = n / (time.perf_counter() - started)
    return put, get_ack


async def concurrent_rates(path: Path, n: int, tasks: int = 50) -> tuple[float, float]:
    """The same work from ``tasks`` coroutines at once (a web service's
    request handlers): writes that meet in the store go in one transaction."""
    async with AsyncPersistentQueue("bench", store=f"sqlite://{path}") as q:
        share = n // tasks

        async def produce() -> None:
            for i in range(share):
                await q.put(i)

        async def consume() -> None:
            for _ in range(share):
                await q.ack(await q.get(block=False))

        started = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(tasks)))
        put = share * tasks / (time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(consume() for _ in range(tasks)))
        get_ack = share * tasks / (time.perf_counter() - started)
    return put, get_ack


async def waiters(path: Path, count: int) -> tuple[int, int, float]:
    async with AsyncPersistentQueue("wait", store=f"sqlite://{path}") as q:
        before = threading.active_count()
        tasks = [asyncio.create_task(q.get(timeout=30)) for _ in range(count)]
        while q._waker.waiting < count:
            await asyncio.sleep(0.01)
        during = threading.active_count()
        started = time.perf_counter()
        await q.put_many(range(count))
        got = await asyncio.gather(*tasks)
        woke = time.perf_counter() - started
        await q.ack_many(got)
    return before, during, woke


PUT_LATER = """
import sys, time
from localqueue import PersistentQueue
q = PersistentQueue("latency", store=sys.argv[1])
time.sleep(0.2)
started = time.time()
q.put(started)
"""


def wake_latency(path: Path, use_async: bool, rounds: int = 5) -> float:
    """Median seconds from another process's put starting to a waiting get
    returning it (blocking get, or an awaited async get)."""
    url = f"sqlite://{path}"
    PersistentQueue("latency", store=url).close()  # the file exists before the child opens it
    delays = []
    for _ in range(rounds):
        child = subprocess.Popen([sys.executable, "-c", PUT_LATER, url])
        if use_async:

            async def wait_async() -> float:
                async with AsyncPersistentQueue("latency", store=url) as q:
                    message = await q.get(timeout=30)
                    woke = time.time()
                    await q.ack(message)
                    return woke - float(message.value)

            delays.append(asyncio.run(wait_async()))
        else:
            with PersistentQueue("latency", store=url) as q:
                message = q.get(timeout=30)
                woke = time.time()
                q.ack(message)
                delays.append(woke - float(message.value))
        child.wait()
    return statistics.median(delays)


def best(repeats: int, measure: Callable[[Path], tuple[float, float]]) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(measure(Path(tmp) / "bench.db"))
    return max(r[0] for r in runs), max(r[1] for r in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="asyncio API vs the blocking API on SQLite")
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    args = parser.parse_args(argv)
    n, r = args.messages, args.repeats

    # Interleaved, so a slow patch of a noisy machine hits both sides.
    sync_put = sync_get = async_put = async_get = many_put = many_get = 0.0
    hop_put = hop_get = 0.0
    for _ in range(r):
        put, get = best(1, lambda p: sync_rates(p, n))
        sync_put, sync_get = max(sync_put, put), max(sync_get, get)
        put, get = best(1, lambda p: asyncio.run(async_rates(p, n)))
        async_put, async_get = max(async_put, put), max(async_get, get)
        put, get = best(1, lambda p: asyncio.run(offloaded_rates(p, n)))
        hop_put, hop_get = max(hop_put, put), max(hop_get, get)
        put, get = best(1, lambda p: asyncio.run(concurrent_rates(p, n)))
        many_put, many_get = max(many_put, put), max(many_get, get)
    with tempfile.TemporaryDirectory() as tmp:
        before, during, woke = asyncio.run(waiters(Path(tmp) / "wait.db", 100))
        sync_latency = wake_latency(Path(tmp) / "latency.db", use_async=False)
        async_latency = wake_latency(Path(tmp) / "latency.db", use_async=True)
    results: dict[str, Any] = {
        "messages": n,
        "repeats": r,
        "sync_put_per_s": round(sync_put),
        "async_put_per_s": round(async_put),
        "async_put_vs_sync": round(async_put / sync_put, 3),
        "sync_get_ack_per_s": round(sync_get),
        "async_get_ack_per_s": round(async_get),
        "async_get_ack_vs_sync": round(async_get / sync_get, 3),
        "run_in_executor_put_per_s": round(hop_put),
        "async_put_vs_run_in_executor": round(async_put / hop_put, 3),
        "run_in_executor_get_ack_per_s": round(hop_get),
        "async_get_ack_vs_run_in_executor": round(async_get / hop_get, 3),
        "async_50_tasks_put_per_s": round(many_put),
        "async_50_tasks_put_vs_sync": round(many_put / sync_put, 3),
        "async_50_tasks_get_ack_per_s": round(many_get),
        "async_50_tasks_get_ack_vs_sync": round(many_get / sync_get, 3),
        "threads_before_waiting": before,
        "threads_with_100_waiting": during,
        "wake_100_waiters_s": round(woke, 4),
        "put_by_another_process_to_blocking_get_s": round(sync_latency, 4),
        "put_by_another_process_to_async_get_s": round(async_latency, 4),
    }
    if args.save:
        record(args.save, "async", results, sys.argv)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{n:,} messages, best of {r} runs, SQLite")

    def line(label: str, sync: float, aio: float) -> None:
        mark = "PASS" if aio / sync >= 0.8 else "MISS"
        print(f"{label:<26} blocking {sync:>8,.0f}/s  async {aio:>8,.0f}/s  "
              f"{aio / sync:.2f}x  >= 0.8x {mark}")  # fmt: skip

    line("put, one await at a time", sync_put, async_put)
    line("get+ack, one at a time", sync_get, async_get)
    print(f"{'  floor: run_in_executor':<26} put {hop_put:>8,.0f}/s "
          f"(async {async_put / hop_put:.2f}x)  get+ack {hop_get:>8,.0f}/s "
          f"(async {async_get / hop_get:.2f}x)")  # fmt: skip
    line("put from 50 tasks", sync_put, many_put)
    line("get+ack from 50 tasks", sync_get, many_get)
    print(f"100 waiting gets: {during} threads (before: {before}); "
          f"one put_many woke them all in {woke * 1000:.1f} ms")  # fmt: skip
    print(f"another process's put to the waiting get (median of 5): blocking "
          f"{sync_latency * 1000:.1f} ms, async {async_latency * 1000:.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
