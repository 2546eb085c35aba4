"""What the web dashboard's overview costs with a large backlog.

Run it::

    LOCALQUEUE_PLUGINS= python examples/web_benchmark.py [--queues 100] [--per-queue 10000]
        [--repeats 20] [--save FILE]
    python examples/web_benchmark.py --url postgresql://... [--save FILE]

Fills a store (a temporary SQLite file, or ``--url``, which must be empty)
with ``--queues`` queues of ``--per-queue`` ready messages each - 1,000,000
messages by default - then times, in the same run:

1. **the overview page**: ``GET /`` of the dashboard (localqueue-web's
   ASGI app, in process through Starlette's TestClient: the request, one
   ``all_stats`` call, the history, and the rendering of every row);
2. **the live refresh**: ``GET /?fragment=rows``, what an open overview
   fetches every two seconds;
3. **the baseline**: ``all_stats(store)`` alone, the store's part of it.

Each figure is the median of ``--repeats`` requests; the target is the
overview under 0.5 s. The ratio page / baseline says how much of the time
is the dashboard's own. A benchmark, not a test: read it on an idle
machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_record import median_ms, record
from starlette.testclient import TestClient

from localqueue.errors import LocalQueueError
from localqueue.store import NewMessage, Store, all_stats, open_store, redact_url
from localqueue_web.app import build_app

PAYLOAD = b'{"job": "resize", "id": 12345}'
BATCH = 10_000
TARGET_SECONDS = 0.5


def fill(store: Store, queues: int, per_queue: int) -> float:
    started = time.perf_counter()
    for n in range(queues):
        left = per_queue
        while left:
            batch = min(BATCH, left)
            store.enqueue(f"queue-{n:03d}", [NewMessage(PAYLOAD)] * batch)
            left -= batch
    return time.perf_counter() - started


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", type=positive, default=100)
    parser.add_argument("--per-queue", type=positive, default=10_000)
    parser.add_argument("--repeats", type=positive, default=20)
    parser.add_argument("--url", help="an empty store to fill (default: a temporary SQLite file)")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite://{tmp}/web-benchmark.db"
        try:
            store = open_store(url)
        except (LocalQueueError, ValueError) as exc:
            parser.error(f"cannot open {redact_url(url)}: {exc}")
        try:
            if store.queues():
                parser.error(f"{redact_url(url)} already holds messages; give an empty store")
            total = args.queues * args.per_queue
            print(f"filling {args.queues} queues x {args.per_queue:,} = {total:,} messages ...")
            took = fill(store, args.queues, args.per_queue)
            print(f"  filled in {took:.1f} s")
            app = build_app(store, label=redact_url(url), sample_every=None)
            with TestClient(app, base_url="http://127.0.0.1") as client:
                page = client.get("/")
                assert page.status_code == 200 and page.text.count("data-queue=") == args.queues
                overview = median_ms(lambda: client.get("/"), args.repeats)
                rows = median_ms(lambda: client.get("/?fragment=rows"), args.repeats)
            baseline = median_ms(lambda: all_stats(store), args.repeats)
        finally:
            store.close()

    verdict = "PASS" if overview / 1000 < TARGET_SECONDS else "MISS"
    print(f"overview page (GET /)        {overview:8.2f} ms   target < 500 ms: {verdict}")
    print(f"live refresh (rows only)     {rows:8.2f} ms")
    print(f"all_stats alone (baseline)   {baseline:8.2f} ms")
    print(f"overview / baseline          {overview / baseline:8.1f}x")
    if args.save:
        results = {
            "store": url.split("://", 1)[0],
            "queues": args.queues,
            "per_queue": args.per_queue,
            "messages": total,
            "overview_ms": round(overview, 3),
            "rows_ms": round(rows, 3),
            "all_stats_ms": round(baseline, 3),
            "overview_over_baseline": round(overview / baseline, 2),
            "target": "overview < 500 ms",
            "verdict": verdict,
        }
        record(args.save, "web_benchmark", results, sys.argv)


if __name__ == "__main__":
    main()
