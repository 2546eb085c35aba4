"""Worker throughput on the SQLite store, against bare sqlite3 doing get+ack.

Prints msgs/s for:

1. the floor: bare sqlite3 claiming and deleting one message at a time (two
   transactions per message, the statements of
   examples/sqlite_concurrency_benchmark.py), measured in the same run;
2. ``get(block=False)`` + ``ack`` through PersistentQueue (two transactions);
3. one ``persistent_worker`` with a no-op handler. A worker acks a job with
   the claim of its next message, one transaction per job, so it can beat
   the floor's two: target >= 1.2x the floor;
4. the same no-op worker with ``prefetch`` (``--prefetch``, 50 by
   default, the recommendation for short jobs): it leases a batch at once
   and acks the batch with the claim of the next one, one transaction per
   batch: target >= 2x the floor;
5. the same no-op worker in 1 and 2 processes (spawn) draining one file
   together, and with a handler that waits 1 ms (like a small network
   call): target 2 processes >= 1.8x one with the 1 ms handler. With a
   no-op handler SQLite's single writer is the limit, and a second process
   mostly adds contention.

    python examples/worker_benchmark.py [--messages N] [--repeats R] [--prefetch N]
        [--json] [--save FILE]
    python examples/worker_benchmark.py --profile [--messages N]

``--profile`` runs one no-op worker, one job at a time, under cProfile
instead, and prints where its time goes (the functions with the most time
of their own): how much of a job is the SQL and how much the worker.

Each rate is the best of ``--repeats`` runs, since shared machines are noisy;
compare the ratios, not the absolute numbers. ``--save FILE`` appends the
run (with the command, machine and date) to a JSON file
(examples/bench_record.py).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_record import record
from sqlite_concurrency_benchmark import fill_floor, floor_ack, floor_claim, floor_connect

from localqueue import PersistentQueue
from localqueue.worker import persistent_worker

PAYLOAD = {"user": 12345, "action": "resize", "file": "images/2026/11/28/cat.png", "w": 640}


def fill(url: str, count: int) -> None:
    with PersistentQueue("bench", store=url) as q:
        for start in range(0, count, 500):
            q.put_many([PAYLOAD] * min(500, count - start))


def floor_rate(url: str, count: int) -> float:
    """Bare sqlite3: one claim and one delete per message, like get+ack."""
    path = Path(url.removeprefix("sqlite://"))
    conn = floor_connect(path, create=True)
    try:
        fill_floor(conn, count)
        started = time.perf_counter()
        for _ in range(count):
            claimed = floor_claim(conn)
            if claimed is None:
                raise SystemExit("floor: the queue ran dry")
            floor_ack(conn, claimed[0], claimed[2])
        return count / (time.perf_counter() - started)
    finally:
        conn.close()


def raw_rate(url: str, count: int) -> float:
    fill(url, count)
    with PersistentQueue("bench", store=url) as q:
        started = time.perf_counter()
        for _ in range(count):
            q.ack(q.get(block=False))
        return count / (time.perf_counter() - started)


def worker_drain(url: str, work_seconds: float = 0.0, prefetch: int = 1) -> int:
    with PersistentQueue("bench", store=url) as q:

        @persistent_worker(q, handle_signals=False, poll_interval=0.05, prefetch=prefetch)
        def handle(value: Any) -> None:
            if work_seconds:
                time.sleep(work_seconds)

        return handle.run(until_empty=True).acked


def worker_rate(url: str, count: int, prefetch: int = 1) -> float:
    fill(url, count)
    started = time.perf_counter()
    done = worker_drain(url, prefetch=prefetch)
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


def profile_worker(count: int) -> int:
    """One no-op worker draining ``count`` jobs, one at a time, under cProfile."""
    with tempfile.TemporaryDirectory(prefix="lq-worker-profile-") as tmp:
        url = f"sqlite://{Path(tmp) / 'profile.sqlite3'}"
        fill(url, count)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        done = worker_drain(url)
        profiler.disable()
        elapsed = time.perf_counter() - started
    print(
        f"{done:,} jobs in {elapsed:.2f} s under the profiler ({elapsed / done * 1e6:.0f} us each)"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


def best(repeats: int, measure: Any, *args: Any) -> float:
    rates: list[float] = []
    for n in range(repeats):
        with tempfile.TemporaryDirectory(prefix="lq-worker-bench-") as tmp:
            rates.append(measure(f"sqlite://{Path(tmp) / f'run{n}.sqlite3'}", *args))
    return max(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="worker throughput vs bare get+ack")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=50, help="the batch worker's prefetch")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    parser.add_argument(
        "--profile", action="store_true", help="profile one no-op worker instead of measuring"
    )
    args = parser.parse_args(argv)
    n, r = args.messages, args.repeats
    for name in ("messages", "repeats", "prefetch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.profile:
        return profile_worker(n)

    floor = best(r, floor_rate, n)
    raw = best(r, raw_rate, n)
    worker = best(r, worker_rate, n)
    batch = best(r, worker_rate, n, args.prefetch)
    one = best(r, processes_rate, n, 1)
    two = best(r, processes_rate, n, 2)
    slow_n = max(200, n // 10)
    one_slow = best(r, processes_rate, slow_n, 1, 0.001)
    two_slow = best(r, processes_rate, slow_n, 2, 0.001)
    results = {
        "messages": n,
        "repeats": r,
        "floor_get_ack_per_s": round(floor),
        "queue_get_ack_per_s": round(raw),
        "queue_get_ack_vs_floor": round(raw / floor, 3),
        "worker_noop_per_s": round(worker),
        "worker_vs_floor": round(worker / floor, 3),
        "prefetch": args.prefetch,
        "worker_prefetch_per_s": round(batch),
        "worker_prefetch_vs_floor": round(batch / floor, 3),
        "one_process_per_s": round(one),
        "two_processes_per_s": round(two),
        "two_vs_one": round(two / one, 3),
        "one_process_1ms_handler_per_s": round(one_slow),
        "two_processes_1ms_handler_per_s": round(two_slow),
        "two_vs_one_1ms_handler": round(two_slow / one_slow, 3),
    }
    if args.save:
        record(args.save, "worker", results, sys.argv)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{n:,} messages, best of {r} runs, SQLite WAL + NORMAL")
    print(f"bare sqlite3 get+ack (floor) {floor:>10,.0f} msg/s")
    print(f"PersistentQueue get+ack      {raw:>10,.0f} msg/s  {raw / floor:.2f}x")
    mark = "PASS" if worker / floor >= 1.2 else "MISS"
    print(
        f"no-op worker                 {worker:>10,.0f} msg/s  {worker / floor:.2f}x  "
        f">= 1.2x {mark}"
    )
    mark = "PASS" if batch / floor >= 2 else "MISS"
    print(
        f"no-op worker, prefetch {args.prefetch:<5} {batch:>10,.0f} msg/s  {batch / floor:.2f}x  "
        f">= 2x {mark}"
    )
    print(f"1 worker process             {one:>10,.0f} msg/s")
    print(f"2 worker processes           {two:>10,.0f} msg/s  {two / one:.2f}x")
    print(f"1 process, 1 ms handler      {one_slow:>10,.0f} msg/s  ({slow_n:,} messages)")
    ratio = two_slow / one_slow
    mark = "PASS" if ratio >= 1.8 else "MISS"
    print(f"2 processes, 1 ms handler    {two_slow:>10,.0f} msg/s  {ratio:.2f}x  >= 1.8x {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
