"""What stats cost as the backlog grows: kept counts against counting every message.

Run it::

    LOCALQUEUE_PLUGINS= python examples/stats_benchmark.py [--sizes 10000,100000,1000000]
        [--queues 100 --per-queue 10000] [--delayed 100000] [--url URL] [--save FILE]

Three measurements, each on a store grown to the size in question (one
store, grown step by step, so the larger sizes cost no more set-up than
they must):

1. **one queue**: ``stats(queue)`` with N ready messages in that queue, for
   each N in ``--sizes``;
2. **every queue**: ``all_stats(store)`` over ``--queues`` queues of
   ``--per-queue`` ready messages each (what ``queue list``, a Prometheus
   scrape and a dashboard pay);
3. **a delayed backlog**: ``stats(queue)`` with ``--delayed`` messages not yet
   due, the case the kept counts do not cover (delayed and inflight change
   with time alone, so they are counted through an index at read time).

Each figure is the median of ``--repeats`` calls. The same run also times
the baseline, counting every message, and prints the ratio baseline / kept:
on SQLite ``stats`` as it was before schema version 4 (still used for a
file opened without migrating it), on PostgreSQL the counting statement the
store ran before schema version 2. On another store (``--url``) only the
kept side is timed. A benchmark, not a test: read it on
an idle machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_record import median_ms, record

from localqueue.store import NewMessage, QueueStats, Store, all_stats, open_store
from localqueue.stores.sqlite import SQLiteStore

PAYLOAD = b'{"job": "resize", "id": 12345}'
BATCH = 50_000


def grow(store: Store, queue: str, count: int, *, delay: float = 0.0) -> None:
    """Add ``count`` messages to ``queue`` in large batches."""
    while count > 0:
        n = min(BATCH, count)
        store.enqueue(queue, [NewMessage(PAYLOAD, delay=delay)] * n)
        count -= n


# What the PostgreSQL store ran for stats before it kept counts (schema
# version 1): a count of the queue's rows per state, through its indexes.
POSTGRES_COUNTING = """
WITH t AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
SELECT
    (SELECT count(*) FROM {s}.lq_messages
        WHERE queue = %(queue)s AND state < 2 AND available_at <= t.now),
    (SELECT count(*) FROM {s}.lq_messages
        WHERE queue = %(queue)s AND state = 0 AND available_at > t.now),
    (SELECT count(*) FROM {s}.lq_messages
        WHERE queue = %(queue)s AND state = 1 AND available_at > t.now),
    (SELECT count(*) FROM {s}.lq_messages WHERE queue = %(queue)s AND state = 2),
    (SELECT min(available_at) FROM {s}.lq_messages
        WHERE queue = %(queue)s AND state < 2 AND available_at <= t.now)
FROM t
"""


def counted_stats(store: Store, url: str) -> Callable[[str], QueueStats] | None:
    """The baseline: stats by counting every message, on SQLite and PostgreSQL."""
    if isinstance(store, SQLiteStore):
        return store._counted_stats
    if url.startswith(("postgresql:", "postgres:")):
        return postgres_counting(url)  # store.url hides the password
    return None


def postgres_counting(url: str) -> Callable[[str], QueueStats]:
    # Imported here: a run on SQLite needs neither psycopg nor the plugin.
    import psycopg

    from localqueue_postgres.url import parse_postgres_url

    parsed = parse_postgres_url(url)
    conn = psycopg.connect(parsed.conninfo, autocommit=True)
    statement = POSTGRES_COUNTING.format(s=parsed.schema)

    def stats(queue: str) -> QueueStats:
        row = conn.execute(statement, {"queue": queue}).fetchone()
        assert row is not None
        ready, delayed, inflight, dead, _oldest = row
        return QueueStats(queue, int(ready), int(delayed), int(inflight), int(dead), None)

    return stats


def each(stats: Callable[[str], QueueStats], names: list[str]) -> list[QueueStats]:
    return [stats(name) for name in names]


def timed(
    label: str,
    kept: Callable[[], object],
    baseline: Callable[[], object] | None,
    repeats: int,
    baseline_repeats: int,
) -> dict[str, Any]:
    kept_ms = median_ms(kept, repeats)
    row: dict[str, Any] = {"case": label, "kept_ms": round(kept_ms, 3)}
    line = f"{label:<44} kept {kept_ms:9.2f} ms"
    if baseline is not None:
        counted_ms = median_ms(baseline, baseline_repeats)
        row["counted_ms"] = round(counted_ms, 3)
        row["ratio"] = round(counted_ms / kept_ms, 1)
        line += f"   counting {counted_ms:9.2f} ms   ratio {counted_ms / kept_ms:8.1f}x"
    print(line, flush=True)
    return row


def check_equal(store: Store, url: str, queue: str) -> None:
    """The kept counts must say what counting says, or the timing means nothing."""
    baseline = counted_stats(store, url)
    if baseline is None:
        return
    kept, counted = store.stats(queue), baseline(queue)
    if (kept.ready, kept.delayed, kept.inflight, kept.dead) != (
        counted.ready,
        counted.delayed,
        counted.inflight,
        counted.dead,
    ):
        raise SystemExit(f"kept counts {kept} differ from counting {counted}")


def run(args: argparse.Namespace, where: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def url(name: str) -> str:
        return args.url or f"sqlite:///{where / name}"

    store = open_store(url("one.db"))
    for name in ("one", "wide-0", "delayed"):
        store.purge(name)
    baseline = counted_stats(store, url("one.db"))
    have = 0
    for size in args.sizes:
        grow(store, "one", size - have)
        have = size
        check_equal(store, url("one.db"), "one")
        rows.append(
            timed(
                f"one queue, {size:,} ready: stats",
                lambda: store.stats("one"),
                None if baseline is None else partial(baseline, "one"),
                args.repeats,
                args.baseline_repeats,
            )
        )
    store.purge("one")
    store.close()

    if args.queues:
        store = open_store(url("wide.db"))
        names = [f"wide-{i}" for i in range(args.queues)]
        for name in names:
            store.purge(name)
            grow(store, name, args.per_queue)
        baseline = counted_stats(store, url("wide.db"))
        rows.append(
            timed(
                f"{args.queues} queues x {args.per_queue:,}: all_stats",
                lambda: all_stats(store),
                None if baseline is None else partial(each, baseline, names),
                args.repeats,
                args.baseline_repeats,
            )
        )
        for name in names:
            store.purge(name)
        store.close()

    if args.delayed:
        store = open_store(url("delayed.db"))
        grow(store, "delayed", args.delayed, delay=86_400)
        check_equal(store, url("delayed.db"), "delayed")
        baseline = counted_stats(store, url("delayed.db"))
        rows.append(
            timed(
                f"one queue, {args.delayed:,} delayed: stats",
                lambda: store.stats("delayed"),
                None if baseline is None else partial(baseline, "delayed"),
                args.repeats,
                args.baseline_repeats,
            )
        )
        store.purge("delayed")
        store.close()
    return rows


def sizes(text: str) -> list[int]:
    """``--sizes``: positive message counts, comma-separated, ascending."""
    try:
        numbers = [int(n) for n in text.split(",")]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1 or numbers != sorted(numbers):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give positive counts, comma-separated and ascending, e.g. 10000,100000"
        )
    return numbers


def count(text: str) -> int:
    """A count of 0 or more (0 leaves that measurement out)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 0 or more")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=sizes,
        default=[10_000, 100_000, 1_000_000],
        help="ready messages in one queue, comma-separated, ascending",
    )
    parser.add_argument("--queues", type=count, default=100)
    parser.add_argument("--per-queue", type=count, default=10_000)
    parser.add_argument("--delayed", type=count, default=100_000)
    parser.add_argument("--repeats", type=count, default=21, help="calls per kept figure")
    parser.add_argument("--baseline-repeats", type=count, default=3, help="calls per counted one")
    parser.add_argument("--url", help="a store URL instead of fresh SQLite files (emptied)")
    parser.add_argument("--save", metavar="FILE", help="append the run to this JSON file")
    args = parser.parse_args()
    if args.repeats < 1 or args.baseline_repeats < 1:
        parser.error("--repeats and --baseline-repeats must be at least 1")
    with tempfile.TemporaryDirectory() as where:
        rows = run(args, Path(where))
    if args.save:
        record(args.save, "stats", {"rows": rows}, sys.argv)


if __name__ == "__main__":
    main()
