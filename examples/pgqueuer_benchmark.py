"""localqueue's batch worker against pgqueuer's worker, on one PostgreSQL server.

Drains ``--jobs`` no-op jobs with each library's worker, in 1 and in 4
worker processes, on the same throwaway durable server (fsync on,
synchronous_commit on), and prints jobs/s and the ratio localqueue /
pgqueuer. Each configuration runs ``--runs`` times, interleaved (localqueue,
pgqueuer, localqueue, ...), and the median is reported.

- **localqueue**: ``persistent_worker`` with ``prefetch`` (``--prefetch``,
  50 by default: it claims 50 in one statement and acks each batch with the
  claim of the next), a no-op handler, ``until_empty``.
- **pgqueuer**: ``QueueManager.run(mode=drain)`` with its default
  ``batch_size=10`` and an ``async`` no-op entrypoint, on its asyncpg
  driver; it deletes finished jobs and logs them in batches. (Its psycopg
  driver drained 96 jobs/s here against asyncpg's 3,064/s, so asyncpg it
  is, as pgqueuer's own docs use.)

Both fill their queue first (not timed), refresh the planner's statistics,
and start their worker processes before the clock starts. Targets (issue
21): localqueue >= 1.3x pgqueuer with one process, >= 1.2x with four.

pgqueuer is not a dependency of localqueue; install it for this benchmark
only, with the PostgreSQL plugin's ``bench`` extra::

    pip install -e 'plugins/postgres[bench]'
    python examples/pgqueuer_benchmark.py [--url postgresql://...] [--jobs 5000]
        [--runs 3] [--prefetch 50] [--json] [--save FILE]

Without ``--url`` (or LOCALQUEUE_TEST_POSTGRES_URL) it starts a throwaway
durable server with scripts/postgres-server.sh and stops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from bench_record import record
from postgres_benchmark import server_settings, start_server

from localqueue import PersistentQueue
from localqueue.worker import persistent_worker
from localqueue_postgres.url import parse_postgres_url

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = {"user": 12345, "action": "resize", "file": "images/2026/11/28/cat.png", "w": 640}
PAYLOAD_BYTES = json.dumps(PAYLOAD).encode()
QUEUE = "bench"
LQ_SCHEMA = "bench_lq"


def require_pgqueuer() -> None:
    try:
        import pgqueuer  # noqa: F401
    except ImportError:
        sys.exit(
            "pgqueuer is not installed; it is only needed for this benchmark: "
            "pip install -e 'plugins/postgres[bench]'"
        )


# -- localqueue ----------------------------------------------------------------------------


def lq_url(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={LQ_SCHEMA}"


def lq_fill(url: str, jobs: int) -> None:
    with PersistentQueue(QUEUE, store=url) as q:
        q.purge()
        for start in range(0, jobs, 500):
            q.put_many([PAYLOAD] * min(500, jobs - start))
    with psycopg.connect(parse_postgres_url(url).conninfo, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {LQ_SCHEMA}.lq_messages")


def lq_drain(url: str, prefetch: int) -> int:
    with PersistentQueue(QUEUE, store=url) as q:

        @persistent_worker(q, handle_signals=False, poll_interval=0.05, prefetch=prefetch)
        def handle(value: object) -> None:
            pass

        return handle.run(until_empty=True).acked


def lq_left(url: str) -> int:
    with PersistentQueue(QUEUE, store=url) as q:
        return q.stats().total


# -- pgqueuer ------------------------------------------------------------------------------


async def _pgq_connect(conninfo: str) -> Any:
    import asyncpg

    return await asyncpg.connect(conninfo)


async def _pgq_fill(conninfo: str, jobs: int) -> None:
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await _pgq_connect(conninfo)
    try:
        queries = Queries(AsyncpgDriver(conn))
        # A clean install every time: the same starting state as localqueue's.
        await conn.execute("DROP TABLE IF EXISTS pgqueuer, pgqueuer_log, pgqueuer_statistics,"
                           " pgqueuer_schedules CASCADE")  # fmt: skip
        await conn.execute("DROP TYPE IF EXISTS pgqueuer_status CASCADE")
        await conn.execute("DROP FUNCTION IF EXISTS fn_pgqueuer_changed CASCADE")
        await queries.install()
        for start in range(0, jobs, 1000):
            n = min(1000, jobs - start)
            await queries.enqueue([QUEUE] * n, [PAYLOAD_BYTES] * n, [0] * n)
        await conn.execute("VACUUM ANALYZE pgqueuer")
    finally:
        await conn.close()


async def _pgq_drain(conninfo: str) -> int:
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    done = 0
    conn = await _pgq_connect(conninfo)
    try:
        qm = QueueManager(Queries(AsyncpgDriver(conn)))

        @qm.entrypoint(QUEUE)  # type: ignore[untyped-decorator,unused-ignore]
        async def handle(job: Job) -> None:
            nonlocal done
            json.loads(job.payload or b"null")  # decoded, as localqueue's worker does
            done += 1

        await qm.run(mode=QueueExecutionMode.drain, batch_size=10)
    finally:
        await conn.close()
    return done


async def _pgq_left(conninfo: str) -> int:
    conn = await _pgq_connect(conninfo)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pgqueuer"))
    finally:
        await conn.close()


def pgq_fill(conninfo: str, jobs: int) -> None:
    asyncio.run(_pgq_fill(conninfo, jobs))


def pgq_drain(conninfo: str, _prefetch: int) -> int:
    return asyncio.run(_pgq_drain(conninfo))


def pgq_left(conninfo: str) -> int:
    return asyncio.run(_pgq_left(conninfo))


# -- measuring -----------------------------------------------------------------------------


def rate(
    fill: Callable[[str, int], None],
    drain: Callable[[str, int], int],
    left: Callable[[str], int],
    target: str,
    jobs: int,
    processes: int,
    prefetch: int,
) -> float:
    """Jobs/s of ``processes`` worker processes draining ``jobs`` jobs."""
    fill(target, jobs)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.map(time.sleep, [0] * processes)  # start-up is not part of the measurement
        started = time.perf_counter()
        handled = sum(pool.starmap(drain, [(target, prefetch)] * processes))
        elapsed = time.perf_counter() - started
    remaining = left(target)
    if handled < jobs or remaining:
        sys.exit(f"{drain.__name__}: {handled} of {jobs} jobs handled, {remaining} left")
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LOCALQUEUE_TEST_POSTGRES_URL"))
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    args = parser.parse_args()
    if args.jobs < 100 or args.runs < 1 or not 1 <= args.prefetch <= 1000:
        parser.error("--jobs must be at least 100, --runs at least 1, --prefetch from 1 to 1000")
    require_pgqueuer()
    server_dir = None
    url = args.url
    if not url:
        server_dir = tempfile.mkdtemp(prefix="lq-pgq-bench-")
        url = start_server(server_dir)
    try:
        conninfo = parse_postgres_url(url).conninfo
        settings = server_settings(conninfo, parser)
        found: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for processes in (1, 4):
                for name, fill, drain, left, target in (
                    ("localqueue", lq_fill, lq_drain, lq_left, lq_url(url)),
                    ("pgqueuer", pgq_fill, pgq_drain, pgq_left, conninfo),
                ):
                    measured = rate(fill, drain, left, target, args.jobs, processes, args.prefetch)
                    found.setdefault(f"{name} {processes}", []).append(measured)
        medians = {key: statistics.median(values) for key, values in found.items()}
        result: dict[str, Any] = {
            "server": settings,
            "jobs": args.jobs,
            "runs": args.runs,
            "prefetch": args.prefetch,
            "jobs_per_s": medians,
            "every_run": found,
            "ratio_1_process": medians["localqueue 1"] / medians["pgqueuer 1"],
            "ratio_4_processes": medians["localqueue 4"] / medians["pgqueuer 4"],
        }
        if args.save:
            record(args.save, "pgqueuer_benchmark", result, sys.argv)
        if args.json:
            print(json.dumps(result, indent=2))
            return
        print(f"server {settings}; {args.jobs} no-op jobs; median of {args.runs} runs")
        for processes in (1, 4):
            lq, pq = medians[f"localqueue {processes}"], medians[f"pgqueuer {processes}"]
            print(
                f"{processes} process{'es' if processes > 1 else '  '}  "
                f"localqueue prefetch={args.prefetch} {lq:8,.0f}/s   "
                f"pgqueuer batch_size=10 {pq:8,.0f}/s   ratio {lq / pq:.2f}x"
            )
    finally:
        if server_dir is not None:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres-server.sh"), "stop", server_dir],
                capture_output=True, check=False,
            )  # fmt: skip


if __name__ == "__main__":
    main()
