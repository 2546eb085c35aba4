"""Claim+ack throughput of the Redis store, against a bare redis-py loop.

Prints msgs/s for claim+ack one message at a time (``PersistentQueue.get``
+ ``ack``) and batched by 100 (``get_many(100)`` + ``ack_many``), each next
to a bare redis-py loop that runs the same fenced operations with the same
Lua scripts (the store's claim and ack scripts, called directly with raw
arguments: no records, no queue object), and decodes every payload as the
queue does. Bare and plugin runs are interleaved, so both see the same load;
each number is the best of ``--repeats``.

Target: the plugin at >= 0.8x the bare loop, one at a time and batched.

    python examples/redis_benchmark.py [--url redis://...] [--messages N]
        [--repeats R] [--json] [--save FILE]

Without ``--url`` (or LOCALQUEUE_TEST_REDIS_URL) it starts a throwaway
server with scripts/redis-server.sh (AOF, appendfsync always) and stops it
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_record import record

from localqueue import PersistentQueue
from localqueue.store import EXPIRED_ERROR_TYPE, NewMessage
from localqueue_redis import scripts
from localqueue_redis.connection import make_client
from localqueue_redis.store import RedisStore
from localqueue_redis.url import parse_redis_url

PAYLOAD = {"user": 12345, "action": "resize", "file": "images/2026/11/28/cat.png", "w": 640}
PAYLOAD_BYTES = json.dumps(PAYLOAD).encode()
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "lease expired on attempt %d; no attempts left"


def with_prefix(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}prefix=bench{uuid.uuid4().hex[:8]}"


def fill(url: str, count: int) -> None:
    store = RedisStore(url)
    for start in range(0, count, 500):
        store.enqueue("bench", [NewMessage(PAYLOAD_BYTES)] * min(500, count - start))
    store.close()


def drop(url: str) -> None:
    parsed = parse_redis_url(url)
    client = make_client(parsed.connection)
    keys = list(client.scan_iter(match=f"{parsed.prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def bare_rate(url: str, count: int, batch: int) -> float:
    """The store's own claim and ack scripts through redis-py, nothing else."""
    fill(url, count)
    parsed = parse_redis_url(url)
    client = make_client(parsed.connection)
    claim = client.register_script(scripts.CLAIM)
    ack = client.register_script(scripts.ACK)
    keys = [f"{parsed.prefix}:{{bench}}:"]
    channel = f"{parsed.prefix}:wake:{{bench}}"
    head = ["", channel, "bench-worker", str(batch), "30.0", "4", EXPIRED_ERROR_TYPE, TEMPLATE]
    started = time.perf_counter()
    done = 0
    while True:
        receipts = [secrets.token_hex(16) for _ in range(batch)]
        _, leased, _ = claim(keys=keys, args=[*head, *receipts])
        if not leased:
            break
        pairs: list[Any] = ["", channel]
        for row in leased:
            json.loads(row[1])  # the queue decodes every value too
            pairs += [row[0], row[8]]
        stale = ack(keys=keys, args=pairs)
        assert not stale
        done += len(leased)
    elapsed = time.perf_counter() - started
    client.close()
    drop(url)
    assert done == count, (done, count)
    return count / elapsed


def plugin_rate(url: str, count: int, batch: int) -> float:
    fill(url, count)
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
        elapsed = time.perf_counter() - started
    drop(url)
    return count / elapsed


def start_server(directory: str) -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "redis-server.sh"), "start", directory],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"could not start a Redis server: {out.stderr.strip()}")
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LOCALQUEUE_TEST_REDIS_URL"))
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    args = parser.parse_args()
    # Measure the store alone: other installed plugins (an exporter observing
    # every event, say) are not part of it.
    os.environ["LOCALQUEUE_PLUGINS"] = "redis"
    server_dir = os.path.join(tempfile.mkdtemp(), "server")
    url = args.url or start_server(server_dir)
    results: dict[str, Any] = {"messages": args.messages}

    def say(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    try:
        probe = RedisStore(with_prefix(url))
        info = probe.info().settings
        probe.close()
        results["server"] = {k: info[k] for k in ("redis_version", "persistence")}
        say(f"server: {results['server']}; {args.messages} messages; best of {args.repeats}")
        for batch, label in ((1, "one at a time"), (100, "batched by 100")):
            count = args.messages * 4 if batch > 1 else args.messages
            bare_runs, lib_runs = [], []
            for _ in range(args.repeats):
                bare_runs.append(bare_rate(with_prefix(url), count, batch))
                lib_runs.append(plugin_rate(with_prefix(url), count, batch))
            bare, lib = max(bare_runs), max(lib_runs)
            results[label] = {"bare": bare, "plugin": lib, "ratio": lib / bare}
            say(f"claim+ack {label:15} bare redis-py {bare:9,.0f}/s   localqueue-redis "
                f"{lib:9,.0f}/s   ratio {lib / bare:.2f}x (target >= 0.8x)")  # fmt: skip
    finally:
        if not args.url:
            stop = ["bash", str(ROOT / "scripts" / "redis-server.sh"), "stop", server_dir]
            subprocess.run(stop, check=False)
    if args.save:
        record(args.save, "redis", results, sys.argv)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
