"""Claim+ack throughput of the PostgreSQL store, against a bare psycopg loop.

Prints msgs/s for:

1. claim+ack one message at a time: the bare loop (one ``UPDATE ... FOR
   UPDATE SKIP LOCKED RETURNING`` and one ``DELETE`` per message, on a
   minimal table of its own), then ``PersistentQueue.get`` + ``ack``;
2. the same batched by 100 (``get_many(100)`` + ``ack_many``);
3. one transaction per job: ``ack_and_get`` in a loop (each ack and the
   next claim in one statement), and one no-op ``persistent_worker``
   in-process (which does the same), against the bare loop's two round
   trips per message;
4. 4 worker processes (``persistent_worker`` with a no-op handler) draining
   one queue together, against 1 such process;
5. batches (``--only batches``): ``get_many(10)`` + ``ack_many`` against the
   bare loop claiming 10 at a time, ``put_many(100)`` against a bare
   ``INSERT ... SELECT FROM unnest`` of 100 rows per statement (sending the
   same bytes every time, and again encoding each value as JSON first, as
   ``put_many`` does and as the bare claim loop decodes), and a no-op batch
   worker (``prefetch=50``) in-process against the bare claim-10 loop.

Targets: the plugin at >= 0.8x the bare loop, one at a time and batched;
``ack_and_get`` at >= 1.3x the bare loop; ``get_many(10)`` + ``ack_many``
and ``put_many(100)`` at >= 0.8x theirs.
The bare loop is measured in the same run on the same server, so the
ratios hold on any machine; the absolute numbers depend on the server's
durability settings (printed).

    python examples/postgres_benchmark.py [--url postgresql://...] [--messages N]
        [--repeats R] [--only claim,combined,workers,batches] [--json] [--save FILE]

Without ``--url`` (or LOCALQUEUE_TEST_POSTGRES_URL) it starts a throwaway
durable server with scripts/postgres-server.sh and stops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from bench_record import record

from localqueue import PersistentQueue
from localqueue.worker import persistent_worker
from localqueue_postgres.url import parse_postgres_url

PAYLOAD = {"user": 12345, "action": "resize", "file": "images/2026/11/28/cat.png", "w": 640}
PAYLOAD_BYTES = json.dumps(PAYLOAD).encode()
ROOT = Path(__file__).resolve().parent.parent

BARE_SETUP = """
DROP SCHEMA IF EXISTS bench_bare CASCADE;
CREATE SCHEMA bench_bare;
CREATE TABLE bench_bare.jobs (
    id bigserial PRIMARY KEY, queue text NOT NULL, payload bytea NOT NULL,
    state smallint NOT NULL DEFAULT 0, priority int NOT NULL DEFAULT 0,
    attempts int NOT NULL DEFAULT 0, available_at float8 NOT NULL, receipt text);
CREATE INDEX ON bench_bare.jobs (queue, priority DESC, available_at, id) WHERE state < 2;
"""
BARE_CLAIM = """
UPDATE bench_bare.jobs j SET state = 1, attempts = j.attempts + 1,
    available_at = extract(epoch FROM now()) + 30, receipt = gen_random_uuid()::text
WHERE j.id = ANY(ARRAY(
    SELECT id FROM bench_bare.jobs
    WHERE queue = 'bench' AND state < 2 AND available_at <= extract(epoch FROM now())
    ORDER BY priority DESC, available_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED))
RETURNING j.id, j.payload, j.receipt
"""
# Arrays in binary (%b), as the plugin sends them: psycopg's text format
# escapes every element of a bytea array through a regex.
BARE_PUT_MANY = """
INSERT INTO bench_bare.jobs (queue, payload, available_at)
SELECT 'bench', p, extract(epoch FROM now()) FROM unnest(%b::bytea[]) AS p
"""
BARE_ACK_ONE = "DELETE FROM bench_bare.jobs WHERE id = %s AND receipt = %s AND state = 1"
BARE_ACK_MANY = """
DELETE FROM bench_bare.jobs
WHERE state = 1 AND (id, receipt) IN (SELECT * FROM unnest(%b::bigint[], %b::text[]))
"""


def bare_fill(conn: psycopg.Connection[Any], count: int) -> None:
    conn.execute(
        "INSERT INTO bench_bare.jobs (queue, payload, available_at) "
        "SELECT 'bench', %s, extract(epoch FROM now()) FROM generate_series(1, %s)",
        (PAYLOAD_BYTES, count),
    )


def bare_rate(conninfo: str, count: int, batch: int) -> float:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(BARE_SETUP)
        bare_fill(conn, count)
        conn.execute("VACUUM ANALYZE bench_bare.jobs")
        # The batch size is written into the text, as the plugin does: a
        # prepared statement's generic plan cannot see a LIMIT parameter.
        claim = BARE_CLAIM.format(limit=int(batch))
        started = time.perf_counter()
        done = 0
        while True:
            rows = conn.execute(claim).fetchall()
            if not rows:
                break
            for row in rows:
                json.loads(row[1])  # the plugin decodes every value too
            if batch == 1:
                conn.execute(BARE_ACK_ONE, (rows[0][0], rows[0][2]))
            else:
                conn.execute(BARE_ACK_MANY, ([r[0] for r in rows], [r[2] for r in rows]))
            done += len(rows)
        elapsed = time.perf_counter() - started
        conn.execute("DROP SCHEMA bench_bare CASCADE")
    assert done == count, (done, count)
    return count / elapsed


def bare_put_rate(conninfo: str, count: int, batch: int, *, encode: bool = False) -> float:
    """Bare psycopg: one INSERT of ``batch`` rows per statement, autocommit.
    With ``encode``, it JSON-encodes every value per batch, as ``put_many``
    (and any program that queues values, not bytes) must; the bare claim
    loop likewise decodes every value it claims."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(BARE_SETUP)
        payloads = [PAYLOAD_BYTES] * batch
        values = [PAYLOAD] * batch
        started = time.perf_counter()
        for _ in range(count // batch):
            if encode:
                payloads = [json.dumps(value).encode() for value in values]
            conn.execute(BARE_PUT_MANY, (payloads,))
        elapsed = time.perf_counter() - started
        conn.execute("DROP SCHEMA bench_bare CASCADE")
    return (count // batch * batch) / elapsed


def plugin_put_rate(url: str, count: int, batch: int) -> float:
    with PersistentQueue("bench", store=url) as q:
        values = [PAYLOAD] * batch
        started = time.perf_counter()
        for _ in range(count // batch):
            q.put_many(values)
        return (count // batch * batch) / (time.perf_counter() - started)


def fill(url: str, count: int) -> None:
    with PersistentQueue("bench", store=url) as q:
        for start in range(0, count, 500):
            q.put_many([PAYLOAD] * min(500, count - start))


def analyze(url: str) -> None:
    parsed = parse_postgres_url(url)
    with psycopg.connect(parsed.conninfo, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {parsed.schema}.lq_messages")


def plugin_rate(url: str, count: int, batch: int) -> float:
    fill(url, count)
    analyze(url)
    with PersistentQueue("bench", store=url) as q:
        started = time.perf_counter()
        done = 0
        if batch == 1:
            for _ in range(count):
                q.ack(q.get(block=False))
            done = count
        else:
            while done < count:
                got = q.get_many(batch)
                q.ack_many(got)
                done += len(got)
        return count / (time.perf_counter() - started)


def combined_rate(url: str, count: int) -> float:
    """ack_and_get in a loop: one statement (one round trip) per message."""
    fill(url, count)
    analyze(url)
    with PersistentQueue("bench", store=url) as q:
        started = time.perf_counter()
        message = q.get(block=False)
        for _ in range(count - 1):
            message.value  # noqa: B018  (decoded, as the bare loop does)
            message = q.ack_and_get(message, block=False)
        q.ack(message)
        return count / (time.perf_counter() - started)


def worker_rate(url: str, count: int, prefetch: int = 1) -> float:
    fill(url, count)
    analyze(url)
    started = time.perf_counter()
    acked = worker_drain(url, prefetch)
    elapsed = time.perf_counter() - started
    assert acked == count, (acked, count)
    return count / elapsed


def worker_drain(url: str, prefetch: int = 1) -> int:
    with PersistentQueue("bench", store=url) as q:

        @persistent_worker(q, handle_signals=False, poll_interval=0.05, prefetch=prefetch)
        def handle(value: object) -> None:
            pass

        return handle.run(until_empty=True).acked


def processes_rate(url: str, count: int, processes: int) -> float:
    fill(url, count)
    analyze(url)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.apply(time.sleep, (0,))  # start-up is not part of the measurement
        started = time.perf_counter()
        acked = sum(pool.map(worker_drain, [url] * processes))
        elapsed = time.perf_counter() - started
    assert acked == count, (acked, count)
    return count / elapsed


def best(repeats: int, measure: Callable[[], float]) -> float:
    return max(measure() for _ in range(repeats))


def server_settings(conninfo: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    """The server's version and durability settings; a server that cannot be
    reached is a one-line usage error about --url."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            return {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("server_version", "fsync", "synchronous_commit")
            }
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        parser.error(f"cannot reach the server of --url: {first}")


def start_server(directory: str) -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres-server.sh"), "start", directory, "--durable"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"could not start a PostgreSQL server: {out.stderr.strip()}")
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LOCALQUEUE_TEST_POSTGRES_URL"))
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--only",
        default="claim,combined,workers,batches",
        help="comma-separated sections: claim, combined, workers, batches",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    unknown = sections - {"claim", "combined", "workers", "batches"}
    if unknown:
        parser.error(f"unknown --only section(s) {sorted(unknown)}; known: claim, combined, "
                     "workers, batches")  # fmt: skip
    if args.messages < 100 or args.repeats < 1:
        parser.error("--messages must be at least 100 and --repeats at least 1")
    # Measure the store alone: other installed plugins (an exporter observing
    # every event, say) are not part of it. Worker processes inherit this.
    os.environ["LOCALQUEUE_PLUGINS"] = "postgres"
    tmp = tempfile.mkdtemp()
    os.chmod(tmp, 0o755)
    server_dir = os.path.join(tmp, "server")
    url = args.url or start_server(server_dir)
    conninfo = parse_postgres_url(url).conninfo
    sep = "&" if "?" in url else "?"
    settings = server_settings(conninfo, parser)
    results: dict[str, Any] = {"server": settings, "messages": args.messages}

    def schema_url() -> str:
        return f"{url}{sep}schema=bench_{uuid.uuid4().hex[:8]}"

    def say(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    say(f"server: {results['server']}; {args.messages} messages; best of {args.repeats}")
    try:
        n = args.messages
        claim_batches = ((1, "one at a time"), (100, "batched by 100"))
        for batch, label in claim_batches if "claim" in sections else ():
            count = n * 4 if batch > 1 else n
            bare_runs, lib_runs = [], []
            for _ in range(args.repeats):  # interleaved, so both see the same load
                bare_runs.append(bare_rate(conninfo, count, batch))
                lib_runs.append(plugin_rate(schema_url(), count, batch))
            bare, lib = max(bare_runs), max(lib_runs)
            results[label] = {"bare": bare, "plugin": lib, "ratio": lib / bare}
            say(f"claim+ack {label:15} bare psycopg {bare:9,.0f}/s   localqueue-postgres "
                f"{lib:9,.0f}/s   ratio {lib / bare:.2f}x (target >= 0.8x)")  # fmt: skip
        if "batches" in sections:
            batches(args.repeats, n, conninfo, schema_url, results, say)
        if "combined" in sections:
            combined_section(args.repeats, n, conninfo, schema_url, results, say)
        if "workers" in sections:
            one = best(args.repeats, lambda: processes_rate(schema_url(), n, 1))
            four = best(args.repeats, lambda: processes_rate(schema_url(), n, 4))
            results["workers"] = {"1 process": one, "4 processes": four, "ratio": four / one}
            say(f"no-op workers    1 process {one:9,.0f}/s   4 processes {four:9,.0f}/s   "
                f"ratio {four / one:.2f}x")  # fmt: skip
    finally:
        if not args.url:
            stop = ["bash", str(ROOT / "scripts" / "postgres-server.sh"), "stop", server_dir]
            subprocess.run(stop, check=False)
    if args.save:
        record(args.save, "postgres", results, sys.argv)
    if args.json:
        print(json.dumps(results))


def batches(
    repeats: int,
    n: int,
    conninfo: str,
    schema_url: Callable[[], str],
    results: dict[str, Any],
    say: Callable[[str], None],
) -> None:
    """get_many(10) + ack_many and put_many(100) against their bare loops,
    interleaved; a batch worker against the bare claim-10 loop."""
    claim_bare, claim_lib, put_bare, put_encoding, put_lib, worker_runs = [], [], [], [], [], []
    for _ in range(repeats):
        claim_bare.append(bare_rate(conninfo, n, 10))
        claim_lib.append(plugin_rate(schema_url(), n, 10))
        put_bare.append(bare_put_rate(conninfo, n * 4, 100))
        put_encoding.append(bare_put_rate(conninfo, n * 4, 100, encode=True))
        put_lib.append(plugin_put_rate(schema_url(), n * 4, 100))
        worker_runs.append(worker_rate(schema_url(), n, 50))
    cb, cl, pb, pe, pl, wk = (
        max(x) for x in (claim_bare, claim_lib, put_bare, put_encoding, put_lib, worker_runs)
    )
    results["batches"] = {
        "claim 10 bare": cb, "get_many(10)+ack_many": cl, "claim ratio": cl / cb,
        "put 100 bare": pb, "put_many(100)": pl, "put ratio": pl / pb,
        "put 100 bare, encoding": pe, "put ratio to the encoding bare loop": pl / pe,
        "worker prefetch=50": wk, "worker vs bare claim 10": wk / cb,
    }  # fmt: skip
    say(f"claim+ack by 10  bare psycopg {cb:9,.0f}/s   get_many+ack_many {cl:9,.0f}/s   "
        f"ratio {cl / cb:.2f}x (target >= 0.8x)")  # fmt: skip
    say(f"put by 100       bare psycopg {pb:9,.0f}/s   put_many          {pl:9,.0f}/s   "
        f"ratio {pl / pb:.2f}x (target >= 0.8x)")  # fmt: skip
    say(f"  the bare loop encoding its values as JSON {pe:9,.0f}/s   "
        f"ratio {pl / pe:.2f}x")  # fmt: skip
    say(f"batch worker     bare claim 10 {cb:8,.0f}/s   prefetch=50       {wk:9,.0f}/s   "
        f"ratio {wk / cb:.2f}x")  # fmt: skip


def combined_section(
    repeats: int,
    n: int,
    conninfo: str,
    schema_url: Callable[[], str],
    results: dict[str, Any],
    say: Callable[[str], None],
) -> None:
    """ack_and_get and an in-process no-op worker against the bare loop's
    two round trips per message."""
    bare = results.get("one at a time", {}).get("bare") or best(
        repeats, lambda: bare_rate(conninfo, n, 1)
    )
    combined = best(repeats, lambda: combined_rate(schema_url(), n))
    worker = best(repeats, lambda: worker_rate(schema_url(), n))
    results["one transaction per job"] = {
        "bare two round trips": bare,
        "ack_and_get": combined,
        "ratio": combined / bare,
        "worker, in-process": worker,
        "worker ratio": worker / bare,
    }
    say(f"ack_and_get      bare psycopg {bare:9,.0f}/s   ack_and_get {combined:9,.0f}/s   "
        f"ratio {combined / bare:.2f}x (target >= 1.3x)")  # fmt: skip
    say(f"no-op worker     bare psycopg {bare:9,.0f}/s   1 worker    {worker:9,.0f}/s   "
        f"ratio {worker / bare:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
