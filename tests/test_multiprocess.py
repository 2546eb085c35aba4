"""Real processes sharing one SQLite file: no loss, no duplicates, prompt wake-ups,
and recovery of a lease held by a process that was SIGKILLed.

The workers below are module-level functions because the "spawn" start method
pickles them by module name; the child imports this module through the
``sys.path`` the parent hands it (pytest puts ``tests/`` on it; the
``_importable`` fixture makes sure). Every wait is bounded, so a hang fails the
test instead of hanging CI.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest

from localqueue import PersistentQueue
from localqueue.stores.sqlite import SQLiteStore

PER_PRODUCER = 2_500
PRODUCERS = 2
CONSUMERS = 2
STOP = {"stop": True}
SHORT_LEASE = 0.5


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch) -> SpawnContext:
    """A spawn context whose children can import this module by its name."""
    here = Path(__file__).resolve().parent
    module_dir = here if __name__ == "test_multiprocess" else here.parent
    monkeypatch.syspath_prepend(str(module_dir))
    return multiprocessing.get_context("spawn")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """The shared file, created (schema and WAL) before any child opens it."""
    path = tmp_path / "shared.sqlite3"
    SQLiteStore(path).close()
    yield path


def _open(db_path: str, lease_timeout: float = 30.0, max_attempts: int = 5) -> PersistentQueue:
    return PersistentQueue(
        "jobs",
        store=f"sqlite://{db_path}",
        lease_timeout=lease_timeout,
        max_attempts=max_attempts,
    )


def _join_all(procs: Sequence[SpawnProcess], deadline: float) -> None:
    """Join every process by ``deadline`` (monotonic); kill them all and fail otherwise."""
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    hung = [proc.name for proc in procs if proc.is_alive()]
    if hung:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        pytest.fail(f"processes still running at the deadline: {hung}")
    failed = {proc.name: proc.exitcode for proc in procs if proc.exitcode != 0}
    assert not failed, f"child processes failed (exit codes): {failed}"


def _kill_all(procs: Sequence[SpawnProcess]) -> None:
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join(5)


# -- workers (run in spawned children) ------------------------------------------------------


def produce(db_path: str, producer: int, count: int) -> None:
    """Put ``count`` distinct values, alternating single puts and put_many batches."""
    rng = random.Random(producer)
    with _open(db_path) as q:
        i = 0
        while i < count:
            if rng.random() < 0.3:
                q.put({"p": producer, "i": i})
                i += 1
            else:
                size = min(rng.randint(2, 100), count - i)
                q.put_many([{"p": producer, "i": j} for j in range(i, i + size)])
                i += size


def consume(db_path: str, result_path: str, get_timeout: float) -> None:
    """get + ack until a stop message; write every acked value to ``result_path``."""
    acked: list[Any] = []
    with _open(db_path) as q:
        while True:
            message = q.get(timeout=get_timeout)
            q.ack(message)
            if message.value == STOP:
                break
            acked.append(message.value)
    Path(result_path).write_text(json.dumps(acked))


def put_after_signal(db_path: str, go: Event, pause: float, conn: Connection) -> None:
    """Wait for ``go``, sleep ``pause``, put one message, then send the wall time."""
    with _open(db_path) as q:
        if not go.wait(30):
            return
        time.sleep(pause)
        q.put("wake up")
        conn.send(time.time())
    conn.close()


def hold_lease_until_killed(db_path: str, lease_timeout: float, conn: Connection) -> None:
    """Take one message with a short lease, report it, and never finish it."""
    with _open(db_path, lease_timeout=lease_timeout) as q:
        message = q.get(timeout=10)
        conn.send((message.id, message.value, message.attempts, message.leased_until))
        time.sleep(120)  # the parent SIGKILLs us long before this ends


def drain(db_path: str, expected: int, result_path: str, get_timeout: float) -> None:
    """Ack ``expected`` messages; write (id, value, attempts, wall time) of each."""
    seen: list[tuple[int, Any, int, float]] = []
    with _open(db_path) as q:
        while len(seen) < expected:
            message = q.get(timeout=get_timeout)
            delivered_at = time.time()
            q.ack(message)
            seen.append((message.id, message.value, message.attempts, delivered_at))
    Path(result_path).write_text(json.dumps(seen))


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_producers_and_consumers_lose_and_duplicate_nothing(
    ctx: SpawnContext, db: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    deadline = started + 50.0
    results = [tmp_path / f"consumer-{n}.json" for n in range(CONSUMERS)]
    consumers = [
        ctx.Process(target=consume, args=(str(db), str(path), 40.0), name=f"consumer-{n}")
        for n, path in enumerate(results)
    ]
    producers = [
        ctx.Process(target=produce, args=(str(db), n, PER_PRODUCER), name=f"producer-{n}")
        for n in range(PRODUCERS)
    ]
    try:
        for proc in [*consumers, *producers]:
            proc.start()
        _join_all(producers, deadline)
        produced = time.monotonic()
        # Every value is in the store now. The stop messages rank below them
        # (lower priority), so a consumer sees one only when no value is left
        # to claim; each consumer stops after acking one.
        with _open(str(db)) as q:
            q.put_many([STOP] * CONSUMERS, priority=-1)
        _join_all(consumers, deadline)
    finally:
        _kill_all([*consumers, *producers])
    finished = time.monotonic()

    acked = [(v["p"], v["i"]) for path in results for v in json.loads(path.read_text())]
    counts = Counter(acked)
    expected = {(p, i) for p in range(PRODUCERS) for i in range(PER_PRODUCER)}
    lost = expected - counts.keys()
    duplicated = {value: n for value, n in counts.items() if n > 1}
    unexpected = counts.keys() - expected
    assert not lost, f"{len(lost)} lost, e.g. {sorted(lost)[:5]}"
    assert not duplicated, f"{len(duplicated)} duplicated, e.g. {list(duplicated.items())[:5]}"
    assert not unexpected
    assert len(acked) == PRODUCERS * PER_PRODUCER

    store = SQLiteStore(db)
    try:
        assert store.stats("jobs").total == 0
        assert store.queues() == []
        assert store.check() == []
    finally:
        store.close()
    per_consumer = [len(json.loads(path.read_text())) for path in results]
    print(
        f"moved {len(acked)} messages in {finished - started:.2f}s "
        f"(producers done after {produced - started:.2f}s); per consumer: {per_consumer}"
    )


def test_blocking_get_wakes_promptly_when_another_process_puts(ctx: SpawnContext, db: Path) -> None:
    pause = 0.3
    go = ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=put_after_signal, args=(str(db), go, pause, sender), name="putter")
    child.start()
    try:
        with _open(str(db)) as q:
            asked = time.time()
            go.set()
            message = q.get(timeout=10)
            returned = time.time()
            q.ack(message)
        assert receiver.poll(10), "the child never reported its put"
        put_at: float = receiver.recv()
        _join_all([child], time.monotonic() + 10)
    finally:
        _kill_all([child])

    assert message.value == "wake up"
    assert returned - asked >= pause, "get returned before the other process could have put"
    latency = returned - put_at
    print(f"blocking get returned {latency * 1000:.1f} ms after the other process's put")
    assert latency < 0.5


def test_lease_of_a_sigkilled_consumer_expires_and_is_redelivered(
    ctx: SpawnContext, db: Path, tmp_path: Path
) -> None:
    values = [{"n": n} for n in range(5)]
    with _open(str(db)) as q:
        q.put_many(values)

    receiver, sender = ctx.Pipe(duplex=False)
    victim = ctx.Process(
        target=hold_lease_until_killed, args=(str(db), SHORT_LEASE, sender), name="victim"
    )
    result = tmp_path / "rescuer.json"
    rescuer = ctx.Process(
        target=drain, args=(str(db), len(values), str(result), 10.0), name="rescuer"
    )
    try:
        victim.start()
        assert receiver.poll(20), "the victim never took a message"
        held_id, held_value, held_attempts, leased_until = receiver.recv()
        assert held_attempts == 1
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        assert victim.exitcode == -signal.SIGKILL

        rescuer.start()
        _join_all([rescuer], time.monotonic() + 30)
    finally:
        _kill_all([victim, rescuer])

    seen = json.loads(result.read_text())
    assert sorted(json.dumps(v, sort_keys=True) for _, v, _, _ in seen) == sorted(
        json.dumps(v, sort_keys=True) for v in values
    ), "a message was lost or duplicated"
    attempts = {id_: n for id_, _, n, _ in seen}
    assert attempts.pop(held_id) == 2, "the killed consumer's message was not re-delivered"
    assert set(attempts.values()) == {1}
    redelivered_at = next(at for id_, _, _, at in seen if id_ == held_id)
    assert redelivered_at >= leased_until, "re-delivered before the lease ran out"
    assert next(v for id_, v, _, _ in seen if id_ == held_id) == held_value

    store = SQLiteStore(db)
    try:
        assert store.stats("jobs").total == 0
        assert store.check() == []
    finally:
        store.close()
