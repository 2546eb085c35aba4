"""Multi-process runs on a real store: throughput, and recovery from SIGKILL.

Producers put messages whose values are unique ids and journal each id once
its put has returned (a confirmed put). Consumers journal each id when they
start handling it, then ack. The runner can SIGKILL producers and consumers
at random moments and start replacements; at the end it drains the queue
and compares the journals:

* lost: a confirmed id that was never acked — must be 0 (an id whose
  consumer was killed after journaling ``acking`` counts as acked: the ack
  may have committed just before the kill);
* duplicated: ids handled more than once, allowed only once the lease of
  the previous delivery could have ended and never after an ack (a killed
  consumer's message, or a live one held past its lease), or for a message
  a replaced producer may have put twice (see ``journals``);
* the store must be empty, nothing stuck inflight, and ``check()`` clean.

A seed reproduces the schedule of kills. Every run returns a JSON-ready
report.

For a store behind a server, ``restart_cmd`` is a shell command run once in
the middle of the run (one that restarts the server): producers and
consumers ride out the outage, retrying on ``StoreConnectionLost`` and
``StoreBusyError`` with a short backoff, and the run must still lose
nothing. A put whose outcome is unknown is retried with its dedupe key and
journaled as confirmed only once a put returned; an ack whose outcome is
unknown is journaled ``unsure ID`` (it may have committed).

No process outlives the run: everything it started is killed and joined
when it ends, whatever way it ends (see ``process_group``), and
``deadline`` bounds the whole run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as stdlib_queue
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any, TextIO, TypeVar

from localqueue.errors import LeaseExpired, StoreBusyError, StoreConnectionLost, StoreError
from localqueue.message import Message
from localqueue.queue import PersistentQueue
from localqueue.store import State, Store, all_stats, redact_url
from localqueue_harness.journals import (
    early_refusals,
    read_journals,
    unexplained_redeliveries,
)
from localqueue_harness.process_group import (
    child_setup,
    kill_group,
    reap,
    signals_blocked,
    signals_raise,
)

QUEUE = "harness-run"
T = TypeVar("T")
# The whole run's time limit unless told otherwise (``--deadline``).
DEFAULT_DEADLINE = 600.0
# The longest deadline, a week (cli_plugin keeps a copy for --deadline): far
# beyond it the run's end no longer fits a timestamp (time_t).
MAX_DEADLINE = 7 * 86400.0
# Errors a networked store raises while its server is away: the operation
# may or may not have been applied, and the next call reconnects.
TRANSIENT = (StoreConnectionLost, StoreBusyError)
BACKOFF = 0.2  # seconds between retries while the store is away
# How long a process keeps trying to open the store (it may start while the
# server restarts: a first connection that fails is a plain StoreError).
OPEN_PATIENCE = 60.0
# Consumers exit after this long with nothing to get.
IDLE_EXIT = 3.0
# After the deadline, how long a call into the store may still hang before
# the runner gives up on it.
ALARM_GRACE = 10.0


@dataclass
class Report:
    store: str
    mode: str
    seed: int
    producers: int
    consumers: int
    messages: int
    prefetch: int = 1  # consumers take batches of this many (1: one at a time)
    confirmed: int = 0
    handled: int = 0
    lost: int = 0
    duplicated: int = 0
    redelivered: int = 0  # messages a killed consumer held, handled again
    # messages a live consumer held past their lease (its ack refused) that
    # another delivery took over: allowed, and a sign of a slow store
    leases_outlived: int = 0
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
    # One entry per run of the restart command: command (redacted),
    # started_s (seconds into the run), seconds, exit_status (None: it was
    # killed at the deadline or by a signal).
    restarts: list[dict[str, Any]] = field(default_factory=list)
    # ids whose ack raised a connection error (it may have committed)
    acks_unsure: int = 0
    # puts retried after a connection error (kept by their dedupe key)
    puts_retried: int = 0
    # Stateful mode: the shrunk steps, the failing check, the store's
    # exception with its traceback, and the command that replays the run.
    steps: list[str] = field(default_factory=list)
    failure: str | None = None
    traceback: str | None = None
    replay: str | None = None
    notes: list[str] = field(default_factory=list)

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
            lines = [f"stateful on {self.store} (seed {self.seed}): {verdict}"]
            lines += [
                f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in self.invariants.items()
            ]
            if self.failure:
                lines += ["", "What failed:", *(f"  {line}" for line in self.failure.splitlines())]
            if self.steps:
                lines += ["", "Shrunk steps that reproduce it:"]
                lines += [f"  {line}" for line in self.steps]
            if self.traceback:
                lines += ["", "The store's exception:"]
                lines += [f"  {line}" for line in self.traceback.splitlines()]
            if self.replay:
                lines += ["", "Replay it with:", f"  {self.replay}"]
            lines += [f"note: {note}" for note in self.notes]
            return "\n".join(lines)
        lines = [
            f"{self.mode} on {self.store} (seed {self.seed}): "
            f"{'PASSED' if self.passed else 'FAILED'}",
            f"  {self.confirmed} confirmed, {self.handled} acked, {self.lost} lost, "
            f"{self.duplicated} duplicated ({self.redelivered} held by killed consumers, "
            f"{self.leases_outlived} outlived their lease), "
            f"{self.kills} kills "
            f"({self.killed_consumers} consumers, {self.killed_producers} producers)",
            f"  {self.msgs_per_s:,.0f} msgs/s over {self.seconds:.1f}s"
            + (f", consumers in batches of {self.prefetch}" if self.prefetch > 1 else ""),
        ]
        if self.puts_retried or self.acks_unsure:
            lines.append(
                f"  {self.puts_retried} puts retried and {self.acks_unsure} acks of unknown "
                "outcome after connection errors"
            )
        for restart in self.restarts:
            status = restart["exit_status"]
            lines.append(
                f"  restart command ran at {restart['started_s']:.1f}s for "
                f"{restart['seconds']:.1f}s: "
                + (f"exit status {status}" if status is not None else "killed, unfinished")
                + f" ({restart['command']})"
            )
        lines += [f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in self.invariants.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def redact_command(command: str, url: str) -> str:
    """``command`` fit to print: every ``scheme://`` URL in it redacted, and
    the store URL's password masked wherever it appears."""
    shown = re.sub(
        r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", lambda m: redact_url(m.group(0)), command
    )
    password = _password(url)
    return shown.replace(password, "***") if password else shown


def _password(url: str) -> str | None:
    _, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0] if sep else ""
    userinfo, at, _ = authority.rpartition("@")
    if at and ":" in userinfo:
        return userinfo.split(":", 1)[1] or None
    return None


def _open_queue(url: str, **options: Any) -> PersistentQueue:
    """Open the run's queue, waiting out a server that is restarting (a
    first connection that fails is a plain StoreError) for OPEN_PATIENCE s."""
    give_up = time.monotonic() + OPEN_PATIENCE
    while True:
        try:
            return PersistentQueue(QUEUE, store=url, **options)
        except StoreError:
            if time.monotonic() > give_up:
                raise
            time.sleep(BACKOFF)


def _produce(url: str, journal: str, start: int, stop: int, lease: float, parent: int = 0) -> None:
    """Put ids ``start`` to ``stop``, journaling each once its put returned.
    A put that raised a connection error may or may not have been applied:
    it is retried (its dedupe key makes a second put of a live message a
    no-op) and its id written to ``JOURNAL.retried``: if the first put was
    applied and already acked, the retry adds it again, a duplicate the
    runner allows."""
    if parent:
        child_setup(parent)
    name = Path(journal).stem
    retried = Path(journal).with_suffix(".retried")
    with _open_queue(url, lease_timeout=lease) as q, open(journal, "a") as out:
        for i in range(start, stop):
            ident = f"{name}-{i}"
            value = {"id": ident, "t": time.time()}
            while True:
                try:
                    # The dedupe key makes a replacement's re-put of an unjournaled
                    # message a no-op while that message is still in the queue.
                    q.put(value, dedupe_key=ident)
                    break
                except TRANSIENT:
                    with open(retried, "a") as note:
                        note.write(ident + "\n")
                    time.sleep(BACKOFF)
            out.write(ident + "\n")
            out.flush()


def _consume(
    url: str,
    journal: str,
    lease: float,
    idle_exit: float,
    work: float,
    prefetch: int = 1,
    parent: int = 0,
) -> None:
    """Journal ``start ID LATENCY LEASED_UNTIL ASKED GOT .`` before handling,
    ``acking ID`` just before the ack, and ``acked ID`` once it returned
    (``refused ID AT`` if the lease was stale, ``unsure ID`` if the ack
    raised a connection error and may or may not have committed), so a
    message lost while held is told apart from one whose ack committed just
    before a kill or an outage. ASKED, GOT and AT are this host's monotonic
    clock around the claiming call and at a refusal (see ``journals``)."""
    if parent:
        child_setup(parent)
    if prefetch > 1:
        _consume_batches(url, journal, lease, idle_exit, work, prefetch)
        return
    with (
        _open_queue(url, lease_timeout=lease, max_attempts=None) as q,
        open(journal, "a") as out,
    ):
        # Every other ack claims the next message in the same transaction
        # (ack_and_get, the workers' way), so kills also land between the
        # two halves of that operation.
        combine = False
        following: Message | None = None
        asked_following = got_following = 0.0
        while True:
            if following is not None:
                msg, following = following, None
                asked, got = asked_following, got_following
            else:
                try:
                    msg, asked, got = _timed(partial(q.get, timeout=idle_exit))
                except stdlib_queue.Empty:
                    return
                except TRANSIENT:
                    # A claim applied but never seen leaves its lease to expire:
                    # the message is delivered again, and was never started here.
                    time.sleep(BACKOFF)
                    continue
            value = msg.value
            _journal_start(out, msg, asked, got)
            if work:
                time.sleep(work)  # holding the message: a kill now must lead to redelivery
            # From here the ack may commit before a kill can stop it, and then
            # nobody will journal "acked": this line tells that case apart
            # from a message that vanished while held.
            out.write(f"acking {value['id']}\n")
            out.flush()
            combine = not combine
            try:
                if combine:
                    with suppress(stdlib_queue.Empty):  # acked; nothing was claimable
                        following, asked_following, got_following = _timed(
                            partial(q.ack_and_get, msg, block=False)
                        )
                else:
                    q.ack(msg)
            except LeaseExpired:
                # The ack returned, refused: this "acking" line excuses nothing.
                out.write(f"refused {value['id']} {time.monotonic()!r}\n")
                out.flush()
                continue  # another consumer handles the message again
            except TRANSIENT:
                # Applied or not, nobody can tell: if not, the lease expires
                # and the message is handled again.
                out.write(f"unsure {value['id']}\n")
                out.flush()
                time.sleep(BACKOFF)
                continue
            out.write(f"acked {value['id']}\n")
            out.flush()


def _timed(claim: Callable[[], T]) -> tuple[T, float, float]:
    """``claim()``'s result, with this host's monotonic clock just before and
    just after it: the claim happened in between."""
    asked = time.monotonic()
    result = claim()
    return result, asked, time.monotonic()


def _journal_start(out: TextIO, msg: Message, asked: float, got: float) -> None:
    """``start ID LATENCY LEASED_UNTIL ASKED GOT .``: when the claim happened,
    on this host's clock (between asked and got) and the store's
    (leased_until), so the runner can check that a message came back only
    after the lease it had could have ended (see ``journals``)."""
    value = msg.value
    latency = (time.time() - value["t"]) * 1000
    until = "-" if msg.leased_until is None else repr(float(msg.leased_until))
    out.write(f"start {value['id']} {latency:.3f} {until} {asked!r} {got!r} .\n")
    out.flush()


def _consume_batches(
    url: str, journal: str, lease: float, idle_exit: float, work: float, prefetch: int
) -> None:
    """``_consume`` as a batch worker does it: lease ``prefetch`` messages at
    once, handle them one by one, then ack them all with the claim of the
    next batch in one operation (``ack_many_and_get_many``). The journal is
    the same, per message; a kill now lands in the middle of batches."""
    with (
        _open_queue(url, lease_timeout=lease, max_attempts=None) as q,
        open(journal, "a") as out,
    ):
        batch: list[Message] = []
        asked = got = 0.0
        while True:
            if not batch:
                try:
                    batch, asked, got = _timed(partial(q.get_many, prefetch, timeout=idle_exit))
                except stdlib_queue.Empty:
                    return
                except TRANSIENT:
                    time.sleep(BACKOFF)
                    continue
            for msg in batch:
                _journal_start(out, msg, asked, got)
                if work:
                    time.sleep(work)
            for msg in batch:
                out.write(f"acking {msg.value['id']}\n")
            out.flush()
            try:
                (lost, following), next_asked, next_got = _timed(
                    partial(q.ack_many_and_get_many, batch, prefetch)
                )
            except TRANSIENT:
                for msg in batch:
                    out.write(f"unsure {msg.value['id']}\n")
                out.flush()
                batch = []
                time.sleep(BACKOFF)
                continue
            refused_at = time.monotonic()
            lost_ids = {m.id for m in lost}
            for msg in batch:
                word = (
                    f"refused {msg.value['id']} {refused_at!r}"
                    if msg.id in lost_ids
                    else (f"acked {msg.value['id']}")
                )
                out.write(word + "\n")
            out.flush()
            batch, asked, got = following, next_asked, next_got


def _read_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def counts_match_a_recount(store: Store) -> bool:
    """Whether the store's counts (its kept ones, where it keeps them) equal
    its messages counted one by one: after kills, a count that drifted shows."""
    every = all_stats(store)
    if [s.queue for s in every] != store.queues():
        return False
    for stats in every:
        counted = Counter(m.state for m in store.list_messages(stats.queue))
        found = {
            State.READY: stats.ready,
            State.DELAYED: stats.delayed,
            State.INFLIGHT: stats.inflight,
            State.DEAD: stats.dead,
        }
        if any(counted.get(state, 0) != n for state, n in found.items()):
            return False
    return True


@contextmanager
def _deadline_alarm(deadline: float) -> Iterator[None]:
    """SIGALRM shortly after the deadline (main thread, POSIX only): a call
    into the store that hangs cannot hold the runner past it. (Every wait
    of the runner ends at the deadline itself; the grace lets it finish its
    checks.)"""
    if not hasattr(signal, "setitimer") or not _main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise DeadlinePassed()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, deadline + ALARM_GRACE - time.monotonic()))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class DeadlinePassed(Exception):
    """The run's deadline passed while the runner waited on the store."""


def _retrying(call: Callable[[], Any], until: float) -> Any:
    """``call()``, retried on connection errors until ``until`` (monotonic)."""
    while True:
        try:
            return call()
        except TRANSIENT:
            if time.monotonic() > until:
                raise
            time.sleep(BACKOFF)


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
    deadline: float = DEFAULT_DEADLINE,
    progress: Callable[[str], object] | None = None,
    work: float = 0.002,
    restart_cmd: str | None = None,
    prefetch: int = 1,
) -> Report:
    """Run producers and consumers on ``url``; with ``kills`` > 0, SIGKILL
    random ones that many times (crash-recovery mode). ``progress`` gets a
    line at each kill and phase, for long runs. ``restart_cmd`` is run once
    through the shell in the middle of the run (after half the kills).
    ``prefetch`` > 1 makes the consumers work in batches of that many, as a
    batch worker does. The run ends within ``deadline`` seconds (more than 0,
    at most ``MAX_DEADLINE``, else ValueError), failing "finished in time" if
    it had to stop early; every process it started is gone when it returns or
    raises (SIGINT and SIGTERM raise ``process_group.Interrupted``)."""
    if not 0 < deadline <= MAX_DEADLINE:  # nan fails both comparisons
        raise ValueError(
            f"deadline must be more than 0 and at most {MAX_DEADLINE:g} seconds (a week), "
            f"not {deadline!r}"
        )
    say = progress or (lambda line: None)
    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    report = Report(url, mode, seed, producers, consumers, messages, prefetch=prefetch)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ends = started + deadline
    started_procs: list[SpawnProcess] = []  # everything started, for the clean-up
    restart: list[subprocess.Popen[bytes]] = []
    with signals_raise():
        try:
            try:
                with _deadline_alarm(ends):
                    _run(url, report, rng, producers, consumers, messages, kills, lease, workdir,
                         started, ends, say, work, restart_cmd, started_procs, restart,
                         prefetch)  # fmt: skip
            except DeadlinePassed:
                report.invariants = {"finished in time": False}
                report.notes.append(
                    f"the deadline ({deadline:g}s) passed while the runner waited on the "
                    "store: the run was stopped before its checks"
                )
        finally:
            # Whatever ended the run, nothing it started outlives it; a
            # signal that comes meanwhile is raised once this is done.
            with signals_blocked((signal.SIGINT, signal.SIGTERM)):
                for proc in restart:
                    if proc.poll() is None:
                        kill_group(proc.pid)
                    proc.wait(5)
                left = reap(started_procs)
                if left and report.invariants:
                    report.notes.append(f"{len(left)} process(es) still running were killed")
    report.seconds = report.seconds or time.monotonic() - started
    (workdir / "report.json").write_text(json.dumps(report.as_dict(), indent=2))
    return report


def _run(
    url: str,
    report: Report,
    rng: random.Random,
    producers: int,
    consumers: int,
    messages: int,
    kills: int,
    lease: float,
    workdir: Path,
    started: float,
    ends: float,
    say: Callable[[str], object],
    work: float,
    restart_cmd: str | None,
    started_procs: list[SpawnProcess],
    restart: list[subprocess.Popen[bytes]],
    prefetch: int = 1,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    me = os.getpid()
    with PersistentQueue(QUEUE, store=url) as q:
        q.purge()
    per_producer = messages // producers
    prod_journals = [workdir / f"p{n}.log" for n in range(producers)]

    def left() -> float:
        return max(0.0, ends - time.monotonic())

    def spawn(target: Callable[..., None], args: tuple[Any, ...]) -> SpawnProcess:
        # daemon: should anything still run at interpreter exit,
        # multiprocessing terminates it instead of waiting for it.
        proc = ctx.Process(target=target, args=(*args, me), daemon=True)
        started_procs.append(proc)
        with signals_blocked():
            proc.start()
        return proc

    def start_producer(n: int) -> SpawnProcess:
        done = len(_read_ids(prod_journals[n]))
        return spawn(_produce, (url, str(prod_journals[n]), done, per_producer, lease))

    consumer_count = 0
    consumer_number: dict[int, int] = {}  # slot -> journal number of its process

    def start_consumer(slot: int | None = None) -> SpawnProcess:
        nonlocal consumer_count
        consumer_count += 1
        if slot is not None:
            consumer_number[slot] = consumer_count
        journal = workdir / f"c{consumer_count}.log"
        return spawn(_consume, (url, str(journal), lease, IDLE_EXIT, work, prefetch))

    def run_restart() -> None:
        assert restart_cmd is not None
        # Mid-run: once a quarter of the messages are confirmed (producers
        # and consumers connected and busy), or the producers are done.
        wait_until = min(ends, time.monotonic() + 60.0)
        while time.monotonic() < wait_until and any(p.is_alive() for p in prods.values()):
            if sum(len(_read_ids(path)) for path in prod_journals) >= messages // 4:
                break
            time.sleep(0.05)
        shown = redact_command(restart_cmd, url)
        at = time.monotonic()
        say(f"restart: running {shown}")
        log_path = workdir / f"restart-{len(report.restarts) + 1}.log"
        with open(log_path, "wb") as log:
            # A session of its own: killed as a group if it outlives the run;
            # daemons it starts on purpose (setsid) are left alone.
            proc = subprocess.Popen(
                restart_cmd, shell=True, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            restart.append(proc)
            status: int | None
            try:
                status = proc.wait(left())
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                proc.wait(5)
                status = None
        took = time.monotonic() - at
        report.restarts.append(
            {"command": shown, "started_s": round(at - started, 3), "seconds": round(took, 3),
             "exit_status": status}
        )  # fmt: skip
        say(
            f"restart: {shown} "
            + (f"exited with status {status}" if status is not None else "killed at the deadline")
            + f" after {took:.1f}s"
        )
        if status != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-10:]
            for line in tail:
                say(f"  | {redact_command(line, url)}")

    # Ids a replacement producer may put twice: the one its killed
    # predecessor may have put without journaling (if it was acked meanwhile,
    # the dedupe key is no longer live and the re-put is a new message).
    reput: set[str] = set()
    killed_journals: list[Path] = []

    prods = {n: start_producer(n) for n in range(producers)}
    cons = [start_consumer(i) for i in range(consumers)]
    # The restart runs after half the kills (at once after a short while
    # when there are none), while producers and consumers are busy.
    restart_after = kills // 2 if restart_cmd else None
    if restart_after == 0:
        time.sleep(min(left(), rng.uniform(0.3, 1.0)))
        run_restart()
        restart_after = None
    while report.kills < kills and time.monotonic() < ends:
        time.sleep(min(left(), rng.uniform(0.05, 0.4)))
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
        if report.kills == restart_after:
            run_restart()
            restart_after = None
    if restart_after is not None and time.monotonic() < ends:
        run_restart()  # every process exited before its turn came
    say("waiting for the producers to finish")
    for proc in prods.values():
        proc.join(left())
    say(f"draining (leases held by killed consumers end after {lease:g}s)")
    # Drain: consumers exit after IDLE_EXIT s with nothing to get; messages
    # held by a killed consumer come back once their lease (``lease`` s) is over.
    for proc in cons:
        proc.join(left())
    if time.monotonic() < ends:
        drainer = start_consumer()
        drainer.join(left())
    in_time = time.monotonic() < ends and not any(p.is_alive() for p in started_procs)
    if not in_time:
        stuck = [p.pid for p in started_procs if p.is_alive()]
        say(f"deadline passed with {len(stuck)} process(es) still running: killing them")
        reap(started_procs)
        report.notes.append(
            f"the deadline passed with {len(stuck)} process(es) still running; they were killed"
        )
    report.seconds = time.monotonic() - started

    confirmed = {i for path in prod_journals for i in _read_ids(path)}
    retried = {
        i for n in range(producers) for i in _read_ids(prod_journals[n].with_suffix(".retried"))
    }
    journals = read_journals(workdir.glob("c*.log"), killed_journals)
    starts = journals.starts
    acked, unsure = journals.acked, journals.unsure
    held_by_killed = journals.held_by_killed()
    ack_cut_short = journals.ack_cut_short()
    duplicates = {i: n - 1 for i, n in starts.items() if n > 1}
    # A message put twice (a replaced producer's re-put, a retried put) is two
    # messages; every other one may come back only after its lease ended.
    unexplained = unexplained_redeliveries(journals, lease, reput | retried)
    refused_early = early_refusals(journals, lease)
    latencies = journals.latencies_ms
    latencies.sort()
    report.confirmed = len(confirmed)
    report.handled = len(acked)
    report.redelivered = len(held_by_killed & set(duplicates))
    report.leases_outlived = len(journals.outlived_leases() & set(duplicates))
    # Lost: confirmed and never acked - unless a consumer was killed while
    # acking it, or its ack raised a connection error: the ack may have
    # committed. (A message that vanished while held has neither: it fails here.)
    report.lost = len(confirmed - acked - ack_cut_short - unsure)
    report.acked_unjournaled = len((confirmed & (ack_cut_short | unsure)) - acked)
    report.acks_unsure = len(unsure)
    report.puts_retried = len(retried)
    report.duplicated = sum(duplicates.values())
    report.msgs_per_s = report.handled / report.seconds if report.seconds else 0.0
    if latencies:
        report.latency_ms_p50 = latencies[len(latencies) // 2]
        report.latency_ms_p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    expected = messages - messages % producers
    invariants = {
        "every confirmed put was acked (0 lost)": report.lost == 0,
        "all puts confirmed": report.confirmed == expected,
    }
    if in_time:
        # The store is asked only while time is left: a store that hangs
        # must not hold the verdict (the alarm stops a call at the deadline).
        def final() -> tuple[Any, list[str], bool]:
            with PersistentQueue(QUEUE, store=url) as q:
                return q.stats(), q.store.check(), counts_match_a_recount(q.store)

        stats, problems, counted = _retrying(final, ends)
        invariants["no message left in the store"] = stats.total == 0
        invariants["store integrity check clean"] = problems == []
        invariants["every queue's counts equal a recount of its messages"] = counted
    else:
        report.notes.append("the store was not checked (stats, check()): no time was left")
    invariants[
        "a message came back only after its lease ended, never after an ack"
    ] = not unexplained
    invariants["an ack was refused only once its lease could have ended"] = not refused_early
    if report.restarts:
        invariants["the restart command succeeded (exit status 0)"] = all(
            r["exit_status"] == 0 for r in report.restarts
        )
    invariants["finished in time"] = in_time
    report.invariants = invariants
    for ident in sorted(unexplained)[:10]:
        say(f"redelivered against the contract: {ident}: {unexplained[ident]}")
    for ident in sorted(refused_early)[:10]:
        say(f"ack refused against the contract: {ident}: {refused_early[ident]}")
