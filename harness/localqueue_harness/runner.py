"""Multi-process runs on a real store: throughput, and recovery from SIGKILL.

Producers put messages whose values are unique ids and journal each id once
its put has returned (a confirmed put). Consumers journal each id when they
start handling it, then ack. The runner can SIGKILL producers and consumers
at random moments and start replacements; at the end it drains the queue
and compares the journals:

* lost: a confirmed id that was never acked — must be 0 (an id whose
  consumer was killed after journaling ``acking`` counts as acked: the ack
  may have committed just before the kill);
* duplicated: ids handled more than once (allowed for messages a killed
  consumer held, or re-put by a replaced producer; reported);
* the store must be empty, nothing stuck inflight, and ``check()`` clean.

A seed reproduces the schedule of kills. Every run returns a JSON-ready
report.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as stdlib_queue
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from localqueue.errors import LeaseExpired
from localqueue.queue import PersistentQueue
from localqueue.store import redact_url

QUEUE = "harness-run"


@dataclass
class Report:
    store: str
    mode: str
    seed: int
    producers: int
    consumers: int
    messages: int
    confirmed: int = 0
    handled: int = 0
    lost: int = 0
    duplicated: int = 0
    redelivered: int = 0  # messages a killed consumer held, handled again
    # acked with no "acked" line: its consumer was killed between the ack and
    # the journal line (counted as acked, not lost)
    acked_unjournaled: int = 0
    kills: int = 0
    killed_consumers: int = 0
    killed_producers: int = 0
    seconds: float = 0.0
    msgs_per_s: float = 0.0
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    invariants: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A report is printed and written to a file: it names the store
        # without its password (redact_url), whatever URL it was given.
        self.store = redact_url(self.store)

    @property
    def passed(self) -> bool:
        return all(self.invariants.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        if self.mode == "stateful":
            lines = [f"stateful on {self.store}: {verdict}"]
            lines += [
                f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in self.invariants.items()
            ]
            return "\n".join(lines)
        lines = [
            f"{self.mode} on {self.store} (seed {self.seed}): "
            f"{'PASSED' if self.passed else 'FAILED'}",
            f"  {self.confirmed} confirmed, {self.handled} acked, {self.lost} lost, "
            f"{self.duplicated} duplicated ({self.redelivered} held by killed consumers), "
            f"{self.kills} kills "
            f"({self.killed_consumers} consumers, {self.killed_producers} producers)",
            f"  {self.msgs_per_s:,.0f} msgs/s over {self.seconds:.1f}s",
        ]
        lines += [f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in self.invariants.items()]
        return "\n".join(lines)


def _produce(url: str, journal: str, start: int, stop: int, lease: float) -> None:
    name = Path(journal).stem
    with PersistentQueue(QUEUE, store=url, lease_timeout=lease) as q, open(journal, "a") as out:
        for i in range(start, stop):
            ident = f"{name}-{i}"
            # The dedupe key makes a replacement's re-put of an unjournaled
            # message a no-op while that message is still in the queue.
            q.put({"id": ident, "t": time.time()}, dedupe_key=ident)
            out.write(ident + "\n")
            out.flush()


def _consume(url: str, journal: str, lease: float, idle_exit: float, work: float) -> None:
    """Journal ``start ID latency`` before handling, ``acking ID`` just before
    the ack, and ``acked ID`` once it returned (``refused ID`` if the lease
    was stale), so a message lost while held is told apart from one whose ack
    committed just before a kill."""
    with (
        PersistentQueue(QUEUE, store=url, lease_timeout=lease, max_attempts=None) as q,
        open(journal, "a") as out,
    ):
        while True:
            try:
                msg = q.get(timeout=idle_exit)
            except stdlib_queue.Empty:
                return
            value = msg.value
            latency = (time.time() - value["t"]) * 1000
            out.write(f"start {value['id']} {latency:.3f}\n")
            out.flush()
            if work:
                time.sleep(work)  # holding the message: a kill now must lead to redelivery
            # From here the ack may commit before a kill can stop it, and then
            # nobody will journal "acked": this line tells that case apart
            # from a message that vanished while held.
            out.write(f"acking {value['id']}\n")
            out.flush()
            try:
                q.ack(msg)
            except LeaseExpired:
                # The ack returned, refused: this "acking" line excuses nothing.
                out.write(f"refused {value['id']}\n")
                out.flush()
                continue  # another consumer handles the message again
            out.write(f"acked {value['id']}\n")
            out.flush()


def _read_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def run(
    url: str,
    *,
    mode: str = "throughput",
    producers: int = 2,
    consumers: int = 2,
    messages: int = 2000,
    kills: int = 0,
    seed: int | None = None,
    lease: float = 1.0,
    workdir: Path,
    timeout: float = 600.0,
    progress: Callable[[str], object] | None = None,
    work: float = 0.002,
) -> Report:
    """Run producers and consumers on ``url``; with ``kills`` > 0, SIGKILL
    random ones that many times (crash-recovery mode). ``progress`` gets a
    line at each kill and phase, for long runs."""
    say = progress or (lambda line: None)
    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    report = Report(url, mode, seed, producers, consumers, messages)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    with PersistentQueue(QUEUE, store=url) as q:
        q.purge()
    per_producer = messages // producers
    prod_journals = [workdir / f"p{n}.log" for n in range(producers)]
    started = time.monotonic()
    deadline = started + timeout

    def start_producer(n: int) -> SpawnProcess:
        done = len(_read_ids(prod_journals[n]))
        proc = ctx.Process(
            target=_produce, args=(url, str(prod_journals[n]), done, per_producer, lease)
        )
        proc.start()
        return proc

    consumer_count = 0
    consumer_number: dict[int, int] = {}  # slot -> journal number of its process

    def start_consumer(slot: int | None = None) -> SpawnProcess:
        nonlocal consumer_count
        consumer_count += 1
        if slot is not None:
            consumer_number[slot] = consumer_count
        journal = workdir / f"c{consumer_count}.log"
        proc = ctx.Process(target=_consume, args=(url, str(journal), lease, 3.0, work))
        proc.start()
        return proc

    # Ids a replacement producer may put twice: the one its killed
    # predecessor may have put without journaling (if it was acked meanwhile,
    # the dedupe key is no longer live and the re-put is a new message).
    reput: set[str] = set()
    killed_journals: list[Path] = []

    prods = {n: start_producer(n) for n in range(producers)}
    cons = [start_consumer(i) for i in range(consumers)]
    while report.kills < kills and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.05, 0.4))
        live_prods = [n for n, p in prods.items() if p.is_alive()]
        live_cons = [i for i, p in enumerate(cons) if p.is_alive()]
        if not live_prods and not live_cons:
            break
        if live_prods and (not live_cons or rng.random() < 0.4):
            n = rng.choice(live_prods)
            os.kill(prods[n].pid or 0, signal.SIGKILL)
            prods[n].join()
            reput.add(f"p{n}-{len(_read_ids(prod_journals[n]))}")
            prods[n] = start_producer(n)
            report.killed_producers += 1
            say(f"kill {report.kills + 1}/{kills}: producer {n}, replaced")
        else:
            i = rng.choice(live_cons)
            os.kill(cons[i].pid or 0, signal.SIGKILL)
            cons[i].join()
            killed_journals.append(workdir / f"c{consumer_number[i]}.log")
            cons[i] = start_consumer(i)
            report.killed_consumers += 1
            say(f"kill {report.kills + 1}/{kills}: consumer {i}, replaced")
        report.kills += 1
    say("waiting for the producers to finish")
    for proc in prods.values():
        proc.join(max(1.0, deadline - time.monotonic()))
    say(f"draining (leases held by killed consumers end after {lease:g}s)")
    # Drain: consumers exit after 3 s with nothing to get; messages held by a
    # killed consumer come back once their lease (``lease`` s) is over.
    for proc in cons:
        proc.join(max(1.0, deadline - time.monotonic()))
    drainer = start_consumer()
    drainer.join(max(1.0, deadline - time.monotonic()))
    report.seconds = time.monotonic() - started

    confirmed = {i for path in prod_journals for i in _read_ids(path)}
    starts: Counter[str] = Counter()
    acked: set[str] = set()
    latencies: list[float] = []
    for path in sorted(workdir.glob("c*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "start":
                starts[parts[1]] += 1
                latencies.append(float(parts[2]))
            elif len(parts) == 2 and parts[0] == "acked":
                acked.add(parts[1])
    # A consumer killed while holding a message started it and never acked
    # it: that message, and only that, may be started again.
    held_by_killed: set[str] = set()
    # Killed after "acking": the ack may have committed with no "acked" line.
    ack_cut_short: set[str] = set()
    for path in killed_journals:
        if not path.exists():
            continue  # killed before it opened its journal
        started_here: set[str] = set()
        acked_here: set[str] = set()
        # In journal order: an "acking" still open when the journal ends is
        # the one the kill cut short (one answered "acked" or "refused" is not).
        acking_open: dict[str, bool] = {}
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            kind, ident = parts[0], parts[1]
            if kind == "start":
                started_here.add(ident)
            elif kind == "acking":
                acking_open[ident] = True
            elif kind in ("acked", "refused"):
                acking_open[ident] = False
                if kind == "acked":
                    acked_here.add(ident)
        held_by_killed |= started_here - acked_here
        ack_cut_short |= {ident for ident, still_open in acking_open.items() if still_open}
    duplicates = {i: n - 1 for i, n in starts.items() if n > 1}
    unexplained = sorted(set(duplicates) - held_by_killed - reput)
    latencies.sort()
    report.confirmed = len(confirmed)
    report.handled = len(acked)
    report.redelivered = len(held_by_killed & set(starts))
    # Lost: confirmed and never acked - unless a consumer was killed while
    # acking it, after the ack may have committed. (A message that vanished
    # while held has no "acking" line: it fails here.)
    report.lost = len(confirmed - acked - ack_cut_short)
    report.acked_unjournaled = len((confirmed & ack_cut_short) - acked)
    report.duplicated = sum(duplicates.values())
    report.msgs_per_s = report.handled / report.seconds if report.seconds else 0.0
    if latencies:
        report.latency_ms_p50 = latencies[len(latencies) // 2]
        report.latency_ms_p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    with PersistentQueue(QUEUE, store=url) as q:
        stats = q.stats()
        problems = q.store.check()
    expected = messages - messages % producers
    report.invariants = {
        "every confirmed put was acked (0 lost)": report.lost == 0,
        "all puts confirmed": report.confirmed == expected,
        "no message left in the store": stats.total == 0,
        "store integrity check clean": problems == [],
        "duplicates only for messages a killed process held": not unexplained,
        "finished in time": time.monotonic() < deadline,
    }
    if unexplained:
        say(f"unexplained duplicates: {', '.join(unexplained[:10])}")
    (workdir / "report.json").write_text(json.dumps(report.as_dict(), indent=2))
    return report
