"""How fast the SQLite store moves messages, next to bare sqlite3 doing the same work.

Run it::

    python examples/sqlite_concurrency_benchmark.py [--quick] [--json]

It measures messages per second on the SQLite store (WAL, ``synchronous=NORMAL``,
the defaults; a fresh temporary directory per measurement) with JSON payloads of
about 100 bytes:

1. ``put``: one message per call, one transaction each (``PersistentQueue.put``);
2. ``put_many``: batches of 500 (``PersistentQueue.put_many``);
3. ``get`` + ``ack`` (``get(block=False)`` then ``ack``) at a backlog of 20,000;
4. 2 producer + 2 consumer processes (spawn) moving N messages through one file,
   end to end, checking that every message arrived (lost ones make the exit
   status 1; duplicates are counted);
5. ``get`` + ``ack`` at a backlog of 2,000 against 200,000: the claim should
   cost the same whatever the backlog.

Beside 1-4 it measures "the floor": the same operations as bare sqlite3
statements on a fresh file with a minimal equivalent schema (one table, one
partial index serving the claim), WAL + ``synchronous=NORMAL``, an autocommit
connection, and the same claim shape (``UPDATE ... WHERE id IN (SELECT ...
LIMIT 1) RETURNING`` then ``DELETE ... WHERE id = ? AND receipt = ?``). The
ratio localqueue/floor is the price of the library's own work per message.

Every rate is the best of several runs (``--repeats``, 3 by default) because a
shared machine is noisy. Targets are marked PASS or MISS; a miss is reported,
not fatal: the exit status is 0 unless a message was lost or something broke.
This is a benchmark, not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue as stdlib_queue
import sqlite3
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_record import record

import localqueue
from localqueue import PersistentQueue

if TYPE_CHECKING:
    from multiprocessing.queues import Queue as MPQueue
    from multiprocessing.synchronize import Barrier, Event

QUEUE = "bench"
LEASE_SECONDS = 30.0  # long enough that no lease expires during a run
PAYLOAD_TARGET_BYTES = 100
# localqueue >= this x the floor, per operation (the library's own work per
# message may cost at most 10% of the transaction, 15% for get+ack).
PUT_TARGET = 0.9
PUT_MANY_TARGET = 0.9
GET_ACK_TARGET = 0.85
BACKLOG_TOLERANCE = 0.2  # the two backlog rates within 20 % of each other


# -- payloads --------------------------------------------------------------------------


def _value_without_body(producer: int, seq: int) -> dict[str, Any]:
    return {"producer": producer, "seq": seq, "kind": "email.send", "to": "user@example.com"}


def _body_length() -> int:
    probe = dict(_value_without_body(0, 10_000), body="")
    return max(0, PAYLOAD_TARGET_BYTES - len(_dumps(probe)))


def _dumps(value: Any) -> bytes:
    # The same encoding as localqueue's JSONSerializer, so both sides store equal bytes.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def make_value(producer: int, seq: int) -> dict[str, Any]:
    """A dict whose compact JSON encoding is about 100 bytes."""
    value = _value_without_body(producer, seq)
    value["body"] = BODY
    return value


BODY = "x" * _body_length()


def make_values(count: int, *, producer: int = 0, start: int = 0) -> list[dict[str, Any]]:
    return [make_value(producer, seq) for seq in range(start, start + count)]


# -- the floor: bare sqlite3 ------------------------------------------------------------

FLOOR_SCHEMA = (
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        payload BLOB NOT NULL,
        state INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        available_at REAL NOT NULL,
        attempts INTEGER NOT NULL,
        receipt TEXT
    )
    """,
    "CREATE INDEX messages_claim ON messages (queue, priority DESC, available_at) WHERE state < 2",
)
FLOOR_INSERT = (
    "INSERT INTO messages (queue, payload, state, priority, available_at, attempts) "
    "VALUES (?, ?, 0, 0, ?, 0)"
)
FLOOR_CLAIM = """
UPDATE messages SET state = 1, attempts = attempts + 1, available_at = ?,
    receipt = lower(hex(randomblob(16)))
WHERE id IN (
    SELECT id FROM messages
    WHERE queue = ? AND state < 2 AND available_at <= ?
    ORDER BY priority DESC, available_at
    LIMIT 1
)
RETURNING id, payload, receipt
"""
FLOOR_ACK = "DELETE FROM messages WHERE id = ? AND receipt = ?"


def floor_connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    if create:
        conn.execute("PRAGMA journal_mode=WAL")  # a property of the file
        for statement in FLOOR_SCHEMA:
            conn.execute(statement)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def floor_put(conn: sqlite3.Connection, value: Any) -> int:
    cursor = conn.execute(FLOOR_INSERT, (QUEUE, _dumps(value), time.time()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def floor_put_many(conn: sqlite3.Connection, values: Sequence[Any]) -> None:
    now = time.time()
    rows = [(QUEUE, _dumps(value), now) for value in values]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(FLOOR_INSERT, rows)
    conn.execute("COMMIT")


def floor_claim(conn: sqlite3.Connection) -> tuple[int, bytes, str] | None:
    now = time.time()
    rows = conn.execute(FLOOR_CLAIM, (now + LEASE_SECONDS, QUEUE, now)).fetchall()
    if not rows:
        return None
    id_, payload, receipt = rows[0]
    return int(id_), bytes(payload), str(receipt)


def floor_ack(conn: sqlite3.Connection, id_: int, receipt: str) -> None:
    if conn.execute(FLOOR_ACK, (id_, receipt)).rowcount != 1:
        raise RuntimeError(f"floor: ack of message {id_} changed nothing")


# -- plumbing ---------------------------------------------------------------------------


@contextmanager
def scratch_file(base: str | None, name: str) -> Iterator[Path]:
    """A fresh temporary directory per measurement, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lq-bench-", dir=base) as tmp:
        yield Path(tmp) / name


def store_url(path: Path) -> str:
    return f"sqlite://{path}"


def open_queue(path: Path) -> PersistentQueue:
    return PersistentQueue(QUEUE, store=store_url(path), lease_timeout=LEASE_SECONDS)


def fill_localqueue(q: PersistentQueue, count: int, *, start: int = 0, batch: int = 500) -> None:
    for offset in range(0, count, batch):
        q.put_many(make_values(min(batch, count - offset), start=start + offset))


def fill_floor(conn: sqlite3.Connection, count: int, *, start: int = 0, batch: int = 500) -> None:
    for offset in range(0, count, batch):
        floor_put_many(conn, make_values(min(batch, count - offset), start=start + offset))


# -- 1. put, one per transaction ------------------------------------------------------------


def lq_put(base: str | None, count: int) -> float:
    values = make_values(count)
    with scratch_file(base, "lq.db") as path, open_queue(path) as q:
        start = time.perf_counter()
        for value in values:
            q.put(value)
        return count / (time.perf_counter() - start)


def floor_put_rate(base: str | None, count: int) -> float:
    values = make_values(count)
    with scratch_file(base, "floor.db") as path:
        conn = floor_connect(path, create=True)
        try:
            start = time.perf_counter()
            for value in values:
                floor_put(conn, value)
            return count / (time.perf_counter() - start)
        finally:
            conn.close()


# -- 2. put_many ------------------------------------------------------------------------------


def lq_put_many(base: str | None, count: int, batch: int) -> float:
    batches = [make_values(min(batch, count - i), start=i) for i in range(0, count, batch)]
    with scratch_file(base, "lq.db") as path, open_queue(path) as q:
        start = time.perf_counter()
        for values in batches:
            q.put_many(values)
        return count / (time.perf_counter() - start)


def floor_put_many_rate(base: str | None, count: int, batch: int) -> float:
    batches = [make_values(min(batch, count - i), start=i) for i in range(0, count, batch)]
    with scratch_file(base, "floor.db") as path:
        conn = floor_connect(path, create=True)
        try:
            start = time.perf_counter()
            for values in batches:
                floor_put_many(conn, values)
            return count / (time.perf_counter() - start)
        finally:
            conn.close()


# -- 3 and 5. get + ack at a steady backlog ----------------------------------------------------
#
# The queue is prefilled with `backlog` messages once. A run then consumes
# `count` messages in chunks of `chunk`; after each chunk the clock stops and the
# chunk is put back with one untimed put_many. The backlog therefore stays
# between backlog - chunk and backlog for the whole measurement (it is not
# consumed from `backlog` down to zero), and the repeated runs reuse the same
# file at the same backlog instead of paying for a new prefill each time.


@contextmanager
def lq_consumer(
    base: str | None, backlog: int, count: int, chunk: int
) -> Iterator[Callable[[], float]]:
    """Prefill a queue; yield a function that times one run and returns its rate."""
    with scratch_file(base, "lq.db") as path, open_queue(path) as q:
        fill_localqueue(q, backlog)
        seq = backlog

        def run_once() -> float:
            nonlocal seq
            elapsed = 0.0
            done = 0
            while done < count:
                n = min(chunk, count - done)
                top_up = make_values(n, start=seq)
                start = time.perf_counter()
                for _ in range(n):
                    q.ack(q.get(block=False))
                elapsed += time.perf_counter() - start
                q.put_many(top_up)
                settle()
                seq += n
                done += n
            return count / elapsed

        yield run_once


@contextmanager
def floor_consumer(
    base: str | None, backlog: int, count: int, chunk: int
) -> Iterator[Callable[[], float]]:
    """The floor's twin of lq_consumer: bare claim + delete statements."""
    with scratch_file(base, "floor.db") as path:
        conn = floor_connect(path, create=True)
        try:
            fill_floor(conn, backlog)
            seq = backlog

            def run_once() -> float:
                nonlocal seq
                elapsed = 0.0
                done = 0
                while done < count:
                    n = min(chunk, count - done)
                    top_up = make_values(n, start=seq)
                    start = time.perf_counter()
                    for _ in range(n):
                        claimed = floor_claim(conn)
                        if claimed is None:
                            raise RuntimeError("floor: the queue ran dry during a measurement")
                        floor_ack(conn, claimed[0], claimed[2])
                    elapsed += time.perf_counter() - start
                    floor_put_many(conn, top_up)
                    settle()
                    seq += n
                    done += n
                return count / elapsed

            yield run_once
        finally:
            conn.close()


# -- 4. two producers and two consumers in separate processes -----------------------------------
#
# Producers put one message per call; consumers get(block=False) + ack (or the
# floor's claim + delete) and decode every payload to check it. A consumer that
# finds the queue empty sleeps 0.5 ms and retries (the same for both sides, so
# neither gains from a smarter wait); it stops on an empty queue seen after the
# producers finished (the flag is read before the get, so every put was already
# committed when that get found nothing). The clock runs from a barrier that all four processes pass
# once they are imported and connected, to the last consumer's finish.


def _produce(impl: str, path: Path, producer: int, count: int, barrier: Barrier) -> list[int]:
    values = make_values(count, producer=producer)
    if impl == "localqueue":
        with open_queue(path) as q:
            barrier.wait(timeout=120)
            return [q.put(value).id for value in values]
    conn = floor_connect(path)
    try:
        barrier.wait(timeout=120)
        return [floor_put(conn, value) for value in values]
    finally:
        conn.close()


def _consume(impl: str, path: Path, done: Event, barrier: Barrier) -> list[tuple[int, int, int]]:
    received: list[tuple[int, int, int]] = []  # (message id, producer, seq)
    if impl == "localqueue":
        with open_queue(path) as q:
            barrier.wait(timeout=120)
            while True:
                finished = done.is_set()  # before the get: see the comment above
                try:
                    msg = q.get(block=False)
                except stdlib_queue.Empty:
                    if finished:
                        return received
                    time.sleep(0.0005)
                    continue
                value = msg.value
                received.append((msg.id, value["producer"], value["seq"]))
                q.ack(msg)
    conn = floor_connect(path)
    try:
        barrier.wait(timeout=120)
        while True:
            finished = done.is_set()
            claimed = floor_claim(conn)
            if claimed is None:
                if finished:
                    return received
                time.sleep(0.0005)
                continue
            id_, payload, receipt = claimed
            value = json.loads(payload)
            received.append((id_, value["producer"], value["seq"]))
            floor_ack(conn, id_, receipt)
    finally:
        conn.close()


def mp_worker(
    role: str,
    impl: str,
    path: str,
    index: int,
    count: int,
    barrier: Barrier,
    done: Event,
    results: MPQueue[tuple[Any, ...]],
) -> None:
    """Entry point of one spawned process; reports (role, index, finish time, data)."""
    try:
        if role == "producer":
            ids = _produce(impl, Path(path), index, count, barrier)
            results.put(("producer", index, time.time(), ids))
        else:
            received = _consume(impl, Path(path), done, barrier)
            results.put(("consumer", index, time.time(), received))
    except BaseException:
        barrier.abort()
        results.put(("error", index, time.time(), traceback.format_exc()))


def _next_result(
    results: MPQueue[tuple[Any, ...]],
    procs: Sequence[multiprocessing.process.BaseProcess],
    timeout: float = 600.0,
) -> tuple[Any, ...]:
    """The next report, or an error as soon as a worker died without one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return results.get(timeout=1.0)
        except stdlib_queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a worker died (exit code {dead[0].exitcode})") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker report within {timeout:g} s") from None


@dataclass
class Delivery:
    rate: float
    seconds: float
    lost: int
    duplicates: int
    received: int


def run_processes(impl: str, base: str | None, total: int, producers: int = 2) -> Delivery:
    ctx = multiprocessing.get_context("spawn")
    consumers = 2
    per_producer = total // producers
    total = per_producer * producers
    with scratch_file(base, f"{impl}.db") as path:
        if impl == "localqueue":
            open_queue(path).close()  # create the file once, before the race
        else:
            floor_connect(path, create=True).close()
        barrier = ctx.Barrier(producers + consumers + 1)
        done = ctx.Event()
        results: MPQueue[tuple[Any, ...]] = ctx.Queue()
        procs = [
            ctx.Process(
                target=mp_worker,
                args=("producer", impl, str(path), i, per_producer, barrier, done, results),
            )
            for i in range(producers)
        ] + [
            ctx.Process(
                target=mp_worker, args=("consumer", impl, str(path), i, 0, barrier, done, results)
            )
            for i in range(consumers)
        ]
        for proc in procs:
            proc.start()
        try:
            barrier.wait(timeout=120)
            start = time.time()
            produced: dict[int, list[int]] = {}
            received: list[tuple[int, int, int]] = []
            finished: list[float] = []
            for _ in procs:
                role, index, when, data = _next_result(results, procs)
                if role == "error":
                    raise RuntimeError(f"{impl} worker failed:\n{data}")
                if role == "producer":
                    produced[index] = data
                    if len(produced) == producers:
                        done.set()
                else:
                    received.extend(data)
                    finished.append(when)
        finally:
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.terminate()
    seconds = max(finished) - start
    expected_values = {(p, s) for p in range(producers) for s in range(per_producer)}
    expected_ids = {id_ for ids in produced.values() for id_ in ids}
    got_values = Counter((p, s) for _, p, s in received)
    got_ids = {id_ for id_, _, _ in received}
    lost = max(len(expected_values - set(got_values)), len(expected_ids - got_ids))
    unexpected = set(got_values) - expected_values
    if unexpected:
        raise RuntimeError(f"{impl}: received values nobody sent: {sorted(unexpected)[:5]}")
    duplicates = sum(n - 1 for n in got_values.values())
    return Delivery(total / seconds, seconds, lost, duplicates, len(received))


# -- the report -------------------------------------------------------------------------------


@dataclass
class Row:
    operation: str
    localqueue: float
    floor: float | None
    target: str
    passed: bool | None
    ratio: float | None = None
    runs: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "localqueue_msgs_per_s": round(self.localqueue, 1),
            "floor_msgs_per_s": None if self.floor is None else round(self.floor, 1),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "result": _verdict(self.passed),
            "runs_msgs_per_s": {k: [round(r, 1) for r in v] for k, v in self.runs.items()},
            **self.extra,
        }


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "MISS")


def _best(rates: Sequence[float]) -> float:
    return max(rates)


def _interleaved(
    repeats: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Alternate the two sides so a noisy spell hurts both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        settle()
        a.append(first())
        settle()
        b.append(second())
    return a, b


def settle() -> None:
    """Write dirty pages out before a timed stretch: otherwise the kernel's
    writeback of untimed writes (fills, top-ups, the other side's run) can
    land inside it and stall its writes - on the development machine up to
    3x, at random."""
    os.sync()


def floor_row(name: str, lq: list[float], floor: list[float], target: float) -> Row:
    ratio = _best(lq) / _best(floor)
    return Row(
        name,
        _best(lq),
        _best(floor),
        f">= {target:g}x floor",
        ratio >= target,
        ratio,
        {"localqueue": lq, "floor": floor},
    )


SECTIONS = ("put", "put_many", "consume", "processes", "backlog")


@dataclass
class Config:
    repeats: int
    put_count: int
    put_many_count: int
    batch: int
    backlog: int
    consume_count: int
    consume_chunk: int
    mp_messages: int
    small_backlog: int
    large_backlog: int
    backlog_count: int
    backlog_chunk: int
    tmpdir: str | None
    skip_floor_backlog: bool
    sections: tuple[str, ...] = SECTIONS


def section_put(cfg: Config) -> list[Row]:
    count, base = cfg.put_count, cfg.tmpdir
    lq, fl = _interleaved(
        cfg.repeats, lambda: lq_put(base, count), lambda: floor_put_rate(base, count)
    )
    return [floor_row("put (1 msg/txn)", lq, fl, PUT_TARGET)]


def section_put_many(cfg: Config) -> list[Row]:
    count, batch, base = cfg.put_many_count, cfg.batch, cfg.tmpdir
    lq, fl = _interleaved(
        cfg.repeats,
        lambda: lq_put_many(base, count, batch),
        lambda: floor_put_many_rate(base, count, batch),
    )
    return [floor_row(f"put_many({batch})", lq, fl, PUT_MANY_TARGET)]


def section_consume(cfg: Config) -> list[Row]:
    args = (cfg.tmpdir, cfg.backlog, cfg.consume_count, cfg.consume_chunk)
    with lq_consumer(*args) as lq_run, floor_consumer(*args) as floor_run:
        lq, fl = _interleaved(cfg.repeats, lq_run, floor_run)
    return [floor_row(f"get+ack @{_short(cfg.backlog)} backlog", lq, fl, GET_ACK_TARGET)]


def section_processes(cfg: Config) -> list[Row]:
    lq_runs: list[Delivery] = []
    fl_runs: list[Delivery] = []
    for _ in range(cfg.repeats):
        lq_runs.append(run_processes("localqueue", cfg.tmpdir, cfg.mp_messages))
        fl_runs.append(run_processes("floor", cfg.tmpdir, cfg.mp_messages))
    row = floor_row(
        "2 prod + 2 cons (procs)", [d.rate for d in lq_runs], [d.rate for d in fl_runs], 0.0
    )
    row.target = "0 lost (ratio: info)"
    row.passed = sum(d.lost for d in lq_runs + fl_runs) == 0
    row.extra = {
        "messages": cfg.mp_messages,
        "localqueue_lost": [d.lost for d in lq_runs],
        "localqueue_duplicates": [d.duplicates for d in lq_runs],
        "floor_lost": [d.lost for d in fl_runs],
        "floor_duplicates": [d.duplicates for d in fl_runs],
    }
    return [row]


def section_backlog(cfg: Config) -> list[Row]:
    # All four files are prefilled first and their runs alternate, so a noisy
    # spell on the machine falls on every side alike instead of on one backlog.
    sides: list[tuple[str, int]] = [("lq", cfg.small_backlog), ("lq", cfg.large_backlog)]
    if not cfg.skip_floor_backlog:
        sides += [("floor", cfg.small_backlog), ("floor", cfg.large_backlog)]
    rates: dict[tuple[str, int], list[float]] = {side: [] for side in sides}
    with ExitStack() as stack:
        runners = {
            (kind, backlog): stack.enter_context(
                (lq_consumer if kind == "lq" else floor_consumer)(
                    cfg.tmpdir, backlog, cfg.backlog_count, cfg.backlog_chunk
                )
            )
            for kind, backlog in sides
        }
        for _ in range(cfg.repeats):
            for side, run_once in runners.items():
                rates[side].append(run_once())
    small = rates[("lq", cfg.small_backlog)]
    large = rates[("lq", cfg.large_backlog)]
    fsmall = rates.get(("floor", cfg.small_backlog), [])
    flarge = rates.get(("floor", cfg.large_backlog), [])
    rows: list[Row] = []
    for backlog, lq_rates, fl_rates in (
        (cfg.small_backlog, small, fsmall),
        (cfg.large_backlog, large, flarge),
    ):
        runs = {"localqueue": lq_rates, "floor": fl_rates} if fl_rates else {"localqueue": lq_rates}
        rows.append(
            Row(
                f"get+ack @{_short(backlog)} backlog",
                _best(lq_rates),
                _best(fl_rates) if fl_rates else None,
                "(input to the next line)",
                None,
                _best(lq_rates) / _best(fl_rates) if fl_rates else None,
                runs,
            )
        )
    spread = min(_best(large), _best(small)) / max(_best(large), _best(small))
    rows.append(
        Row(
            f"backlog {_short(cfg.large_backlog)} / {_short(cfg.small_backlog)}",
            _best(large) / _best(small),
            _best(flarge) / _best(fsmall) if fsmall else None,
            f"within {BACKLOG_TOLERANCE:.0%}",
            spread >= 1 - BACKLOG_TOLERANCE,
            None,
            {},
            {"note": "the localqueue and floor columns hold rate ratios (large/small), not rates"},
        )
    )
    return rows


def run(cfg: Config, log: Callable[[str], None]) -> list[Row]:
    plan: dict[str, tuple[str, Callable[[Config], list[Row]]]] = {
        "put": (f"put x {cfg.put_count:,}", section_put),
        "put_many": (f"put_many({cfg.batch}) x {cfg.put_many_count:,}", section_put_many),
        "consume": (
            f"get+ack x {cfg.consume_count:,} at backlog {cfg.backlog:,}",
            section_consume,
        ),
        "processes": (
            f"2 producers + 2 consumers x {cfg.mp_messages:,} (spawn)",
            section_processes,
        ),
        "backlog": (
            f"get+ack x {cfg.backlog_count:,} at backlog {cfg.small_backlog:,} "
            f"and {cfg.large_backlog:,}",
            section_backlog,
        ),
    }
    rows: list[Row] = []
    for number, name in enumerate(SECTIONS, start=1):
        if name in cfg.sections:
            title, section = plan[name]
            started = time.perf_counter()
            log(f"{number}. {title} ...")
            rows.extend(section(cfg))
            log(f"   {time.perf_counter() - started:.1f} s")
    return rows


def _short(n: int) -> str:
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def _times(value: float) -> str:
    return f"{value:.2f}x"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def format_table(rows: Sequence[Row]) -> str:
    header = ("operation", "localqueue msg/s", "floor msg/s", "ratio", "target", "result")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        fmt = _times if row.operation.startswith("backlog ") else _rate
        lines.append(
            (
                row.operation,
                fmt(row.localqueue),
                "-" if row.floor is None else fmt(row.floor),
                "-" if row.ratio is None else f"{row.ratio:.2f}",
                row.target,
                _verdict(row.passed),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.ljust(w) if i in (0, 4, 5) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# -- command line -------------------------------------------------------------------------------

FULL = {
    "put_count": 20_000,
    "put_many_count": 200_000,
    "consume_count": 10_000,
    "mp_messages": 20_000,
    "backlog_count": 10_000,
}
QUICK = {
    "put_count": 2_000,
    "put_many_count": 30_000,
    "consume_count": 2_000,
    "mp_messages": 4_000,
    "backlog_count": 1_000,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="localqueue SQLite store throughput next to bare sqlite3 (the floor)."
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (~30 s)")
    parser.add_argument("--json", action="store_true", help="print a JSON document, not a table")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; best kept")
    parser.add_argument("--put-count", type=int, help="messages for put (1 per call)")
    parser.add_argument("--put-many-count", type=int, help="messages for put_many")
    parser.add_argument("--batch", type=int, default=500, help="put_many batch size")
    parser.add_argument("--backlog", type=int, default=20_000, help="backlog for get+ack")
    parser.add_argument("--consume-count", type=int, help="get+acks timed per run")
    parser.add_argument("--consume-chunk", type=int, default=1_000, help="get+acks per top-up")
    parser.add_argument("--mp-messages", type=int, help="messages through 2+2 processes")
    parser.add_argument(
        "--small-backlog", type=int, default=2_000, help="the cheap end of the backlog check"
    )
    parser.add_argument(
        "--large-backlog", type=int, default=200_000, help="the big end of the backlog check"
    )
    parser.add_argument("--backlog-count", type=int, help="get+acks timed per backlog run")
    parser.add_argument("--backlog-chunk", type=int, default=200, help="get+acks per top-up")
    parser.add_argument(
        "--skip-floor-backlog", action="store_true", help="no floor runs for the 2k/200k lines"
    )
    parser.add_argument("--tmpdir", help="where the temporary directories go (default: system)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of: {','.join(SECTIONS)} (default: all)",
    )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    defaults = QUICK if args.quick else FULL

    def pick(name: str) -> int:
        given: int | None = getattr(args, name)
        return defaults[name] if given is None else given

    cfg = Config(
        repeats=args.repeats,
        put_count=pick("put_count"),
        put_many_count=pick("put_many_count"),
        batch=args.batch,
        backlog=args.backlog,
        consume_count=pick("consume_count"),
        consume_chunk=args.consume_chunk,
        mp_messages=pick("mp_messages"),
        small_backlog=args.small_backlog,
        large_backlog=args.large_backlog,
        backlog_count=pick("backlog_count"),
        backlog_chunk=args.backlog_chunk,
        tmpdir=args.tmpdir,
        skip_floor_backlog=args.skip_floor_backlog,
        sections=tuple(part.strip() for part in args.only.split(",") if part.strip()),
    )
    unknown = set(cfg.sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {sorted(unknown)}; known: {SECTIONS}")
    for name, value in vars(cfg).items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if cfg.consume_chunk > cfg.backlog or cfg.backlog_chunk > cfg.small_backlog:
        raise SystemExit("a chunk may not exceed its backlog: the queue would run dry")
    return cfg


def _lost(rows: Sequence[Row]) -> int:
    return sum(
        sum(row.extra.get(key, ())) for row in rows for key in ("localqueue_lost", "floor_lost")
    )


def _notes(cfg: Config, rows: Sequence[Row]) -> list[str]:
    notes: list[str] = []
    for row in rows:
        if "localqueue_lost" in row.extra:
            x = row.extra
            notes.append(
                f"2+2 processes: {x['messages']:,} messages per run; lost "
                f"localqueue={x['localqueue_lost']} floor={x['floor_lost']}; duplicates "
                f"localqueue={x['localqueue_duplicates']} floor={x['floor_duplicates']}"
            )
    if "consume" in cfg.sections:
        notes.append(
            f"get+ack @{_short(cfg.backlog)}: {cfg.consume_count:,} per run, the backlog kept "
            f"between {cfg.backlog - cfg.consume_chunk:,} and {cfg.backlog:,} by untimed top-ups"
        )
    if "backlog" in cfg.sections:
        notes.append(
            f"backlog lines: {cfg.backlog_count:,} get+acks per run, an untimed top-up every "
            f"{cfg.backlog_chunk}"
        )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from(args)

    def log(text: str) -> None:
        if not args.json:
            print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    rows = run(cfg, log)
    elapsed = time.perf_counter() - started
    lost = _lost(rows)
    env = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "localqueue": f"{localqueue.__version__} ({Path(localqueue.__file__).parent})",
        "cpus": os.cpu_count(),
        "payload_bytes": len(_dumps(make_value(0, cfg.backlog))),
        "journal_mode": "WAL",
        "synchronous": "NORMAL",
        "best_of": cfg.repeats,
    }
    doc = {
        "environment": env,
        "config": vars(cfg),
        "results": [row.as_dict() for row in rows],
        "lost": lost,
        "elapsed_seconds": round(elapsed, 1),
    }
    if args.save:
        record(args.save, "sqlite", doc, list(sys.argv))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(
            f"localqueue {env['localqueue']} SQLite store vs bare sqlite3 (the floor)\n"
            f"Python {env['python']}, SQLite {env['sqlite']}, {env['cpus']} CPUs, "
            f"WAL + synchronous=NORMAL, ~{env['payload_bytes']}-byte JSON payloads\n"
            f"each rate is the best of {cfg.repeats} runs (the machine is noisy); "
            "ratio = localqueue / floor"
        )
        print()
        print(format_table(rows))
        print()
        for note in _notes(cfg, rows):
            print(note)
        print(f"total time {elapsed:.1f} s")
    if lost:
        print(f"{lost} message(s) LOST: the delivery contract was broken", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
