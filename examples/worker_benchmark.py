"""Worker throughput on the SQLite store, against the raw get+ack floor.

Prints msgs/s for:

1. raw ``get(block=False)`` + ``ack`` through PersistentQueue (the floor,
   measured in the same run);
2. one ``persistent_worker`` with a no-op handler (target: >= 0.7x the floor);
3. the same no-op worker in 1 process and in 2 processes (spawn) draining one
   file together (target: 2 processes beat 1), and the same again with a
   handler that waits 1 ms (like a small network call).

With a no-op handler every job is two short write transactions and SQLite
admits one writer at a time: a second process only adds contention, and the
bare get+ack loop (printed as the floor for the process lines) does not
scale either. As soon as a handler does real work outside the store, extra
processes scale.

    python examples/worker_benchmark.py [--messages N] [--repeats R] [--json]

Each rate is the best of ``--repeats`` runs, since shared machines are noisy;
compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue as stdlib_queue
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localqueue import PersistentQueue
from localqueue.worker import persistent_worker

PAYLOAD = {"user": 12345, "action": "resize", "file": "images/2026/11/28/cat.png", "w": 640}


def fill(url: str, count: int) -> None:
    with PersistentQueue("bench", store=url) as q:
        for start in range(0, count, 500):
            q.put_many([PAYLOAD] * min(500, count - start))


def raw_rate(url: str, count: int) -> float:
    fill(url, count)
    with PersistentQueue("bench", store=url) as q:
        started = time.perf_counter()
        for _ in range(count):
            q.ack(q.get(block=False))
        return count / (time.perf_counter() - started)


def worker_drain(url: str, work_seconds: float = 0.0) -> int:
    with PersistentQueue("bench", store=url) as q:

        @persistent_worker(q, handle_signals=False, poll_interval=0.05)
        def handle(value: Any) -> None:
            if work_seconds:
                time.sleep(work_seconds)

        return handle.run(until_empty=True).acked


def raw_drain(url: str) -> int:
    done = 0
    with PersistentQueue("bench", store=url) as q:
        while True:
            try:
                q.ack(q.get(block=False))
            except stdlib_queue.Empty:
                return done
            done += 1


def raw_processes_rate(url: str, count: int, processes: int) -> float:
    """The floor for the process lines: bare get+ack loops, no worker."""
    fill(url, count)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.map(time.sleep, [0] * processes)
        started = time.perf_counter()
        done = sum(pool.map(raw_drain, [url] * processes))
        elapsed = time.perf_counter() - started
    if done != count:
        raise SystemExit(f"{processes} raw processes acked {done} of {count} messages")
    return count / elapsed


def worker_rate(url: str, count: int) -> float:
    fill(url, count)
    started = time.perf_counter()
    done = worker_drain(url)
    elapsed = time.perf_counter() - started
    if done != count:
        raise SystemExit(f"worker acked {done} of {count} messages")
    return count / elapsed


def processes_rate(url: str, count: int, processes: int, work_seconds: float = 0.0) -> float:
    fill(url, count)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.map(time.sleep, [0] * processes)  # interpreters started before the clock runs
        started = time.perf_counter()
        done = sum(pool.starmap(worker_drain, [(url, work_seconds)] * processes))
        elapsed = time.perf_counter() - started
    if done != count:
        raise SystemExit(f"{processes} worker processes acked {done} of {count} messages")
    return count / elapsed


def best(repeats: int, measure: Any, *args: Any) -> float:
    rates: list[float] = []
    for n in range(repeats):
        with tempfile.TemporaryDirectory(prefix="lq-worker-bench-") as tmp:
            rates.append(measure(f"sqlite://{Path(tmp) / f'run{n}.sqlite3'}", *args))
    return max(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="worker throughput vs raw get+ack")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n, r = args.messages, args.repeats

    raw = best(r, raw_rate, n)
    worker = best(r, worker_rate, n)
    raw_one = best(r, raw_processes_rate, n, 1)
    raw_two = best(r, raw_processes_rate, n, 2)
    one = best(r, processes_rate, n, 1)
    two = best(r, processes_rate, n, 2)
    slow_n = max(200, n // 10)
    one_slow = best(r, processes_rate, slow_n, 1, 0.001)
    two_slow = best(r, processes_rate, slow_n, 2, 0.001)
    results = {
        "messages": n,
        "repeats": r,
        "raw_get_ack_per_s": round(raw),
        "worker_noop_per_s": round(worker),
        "worker_vs_raw": round(worker / raw, 3),
        "raw_one_process_per_s": round(raw_one),
        "raw_two_processes_per_s": round(raw_two),
        "raw_two_vs_one": round(raw_two / raw_one, 3),
        "one_process_per_s": round(one),
        "two_processes_per_s": round(two),
        "two_vs_one": round(two / one, 3),
        "one_process_1ms_handler_per_s": round(one_slow),
        "two_processes_1ms_handler_per_s": round(two_slow),
        "two_vs_one_1ms_handler": round(two_slow / one_slow, 3),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{n:,} messages, best of {r} runs, SQLite WAL + NORMAL")
    print(f"raw get+ack (the floor)      {raw:>10,.0f} msg/s")
    mark = "PASS" if worker / raw >= 0.7 else "MISS"
    print(
        f"no-op worker                 {worker:>10,.0f} msg/s  {worker / raw:.2f}x  >= 0.7x {mark}"
    )
    print(f"raw get+ack, 1 process       {raw_one:>10,.0f} msg/s  (floor for the next lines)")
    print(f"raw get+ack, 2 processes     {raw_two:>10,.0f} msg/s  {raw_two / raw_one:.2f}x")
    mark = "PASS" if two > one else "MISS"
    print(f"1 worker process             {one:>10,.0f} msg/s")
    print(f"2 worker processes           {two:>10,.0f} msg/s  {two / one:.2f}x  > 1x   {mark}")
    mark = "PASS" if two_slow > one_slow else "MISS"
    print(f"1 process, 1 ms handler      {one_slow:>10,.0f} msg/s  ({slow_n:,} messages)")
    ratio = two_slow / one_slow
    print(f"2 processes, 1 ms handler    {two_slow:>10,.0f} msg/s  {ratio:.2f}x  > 1x   {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
