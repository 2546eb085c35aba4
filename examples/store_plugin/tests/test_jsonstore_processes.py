"""Several processes on one jsonfile store: concurrent writers, SIGKILL in the
middle of a write, and waits woken by another process."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from localqueue.store import NewMessage, SystemClock
from localqueue_jsonstore import JsonFileStore

PUTTER = """
import sys, time
from pathlib import Path
from localqueue import PersistentQueue
url, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
with PersistentQueue("jobs", store=url) as q:
    while not go.exists():
        time.sleep(0.001)
    for i in range(count):
        q.put({"by": name, "i": i})
"""

# Puts big messages forever, journaling each index once its put returned.
JOURNALED_PUTTER = """
import sys
from localqueue import PersistentQueue
url, journal, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
with PersistentQueue("jobs", store=url) as q, open(journal, "a") as out:
    i = start
    while True:
        q.put({"i": i, "pad": "x" * 4000}, dedupe_key=str(i))
        out.write(f"{i}\\n")
        out.flush()
        i += 1
"""

# Confirms one put, then dies half-way through writing the next version.
DIES_MID_WRITE = """
import os, signal, sys
from localqueue.store import NewMessage
from localqueue_jsonstore import JsonFileStore
store = JsonFileStore(sys.argv[1])
store.enqueue("jobs", [NewMessage(b"confirmed")])
real_write = os.write
def write_half_then_die(fd, data):
    real_write(fd, bytes(data[: len(data) // 2]))
    os.kill(os.getpid(), signal.SIGKILL)
os.write = write_half_then_die
store.enqueue("jobs", [NewMessage(b"never confirmed")])
"""


def python(script: str, *args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)])


def test_processes_putting_at_once_lose_nothing_and_share_no_id(tmp_path: Path) -> None:
    url, go, count = f"jsonfile://{tmp_path}/q.json", tmp_path / "go", 150
    JsonFileStore(tmp_path / "q.json").close()
    procs = [python(PUTTER, url, name, count, go) for name in ("a", "b", "c")]
    time.sleep(0.5)  # let them start, then release them together
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    store = JsonFileStore(tmp_path / "q.json")
    records = store.list_messages("jobs")
    assert [r.id for r in records] == list(range(1, 3 * count + 1))
    values = sorted((v["by"], v["i"]) for v in (json.loads(r.payload) for r in records))
    assert values == sorted((name, i) for name in "abc" for i in range(count))
    assert store.check() == []


def test_a_writer_killed_half_way_through_a_write_leaves_the_last_version(
    tmp_path: Path,
) -> None:
    proc = python(DIES_MID_WRITE, tmp_path / "q.json")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / "q.json.tmp").exists(), "the kill landed in the temporary file"
    store = JsonFileStore(tmp_path / "q.json")
    assert [r.payload for r in store.list_messages("jobs")] == [b"confirmed"]
    assert store.check() == []
    store.enqueue("jobs", [NewMessage(b"next")])  # the lock died with its holder
    assert len(store.list_messages("jobs")) == 2


def journaled(journal: Path) -> list[str]:
    return journal.read_text().split() if journal.exists() else []


def test_sigkill_at_random_moments_loses_no_confirmed_put(tmp_path: Path) -> None:
    url, journal = f"jsonfile://{tmp_path}/q.json", tmp_path / "journal"
    rng = random.Random(12)
    for _ in range(8):
        done = len(journaled(journal))
        proc = python(JOURNALED_PUTTER, url, journal, done)
        deadline = time.monotonic() + 60
        while len(journaled(journal)) == done and time.monotonic() < deadline:
            time.sleep(0.005)  # past start-up: the next kill lands among puts
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        store = JsonFileStore(tmp_path / "q.json")  # opens: the file is whole
        stored = {json.loads(r.payload)["i"] for r in store.list_messages("jobs")}
        confirmed = {int(i) for i in journaled(journal)}
        assert len(confirmed) > done, "the writer made progress before the kill"
        assert confirmed <= stored, f"confirmed puts lost: {sorted(confirmed - stored)[:5]}"
        assert store.check() == []
        store.close()


def test_wait_wakes_when_another_process_puts(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "q.json")
    putter = python(
        "import sys, time\n"
        "from localqueue import PersistentQueue\n"
        "time.sleep(0.5)\n"
        "PersistentQueue('jobs', store=sys.argv[1]).put(1)\n",
        store.url,
    )
    started = time.monotonic()
    store.wait("jobs", 20)
    waited = time.monotonic() - started
    assert putter.wait(timeout=30) == 0
    assert store.stats("jobs").ready == 1
    assert 0.3 < waited < 10, waited


def test_wait_wakes_when_a_delayed_message_comes_due(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "q.json", clock=SystemClock())
    store.enqueue("jobs", [NewMessage(b"x", delay=0.4)])
    started = time.monotonic()
    store.wait("jobs", 20)
    waited = time.monotonic() - started
    assert 0.3 < waited < 5, waited
    assert store.claim("jobs", worker_id="w", limit=1, lease_seconds=5).leased


def test_wait_ignores_other_queues_and_times_out(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "q.json")
    store.enqueue("other", [NewMessage(b"x")])
    started = time.monotonic()
    store.wait("jobs", 0.3)
    assert 0.25 < time.monotonic() - started < 3


def test_an_idle_waiter_is_cheap(tmp_path: Path) -> None:
    """Polling backs off to every few milliseconds: a one-second wait costs
    well under a tenth of a second of CPU."""
    store = JsonFileStore(tmp_path / "q.json")
    cpu = os.times()
    store.wait("jobs", 1.0)
    after = os.times()
    assert (after.user - cpu.user) + (after.system - cpu.system) < 0.2
