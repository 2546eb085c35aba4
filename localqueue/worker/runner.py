"""persistent_worker: run a handler over a queue, with leases kept alive,
retries decided by policy plugins, and a graceful stop.

    @persistent_worker(queue, max_retries=5)
    def send(value):
        ...

    summary = send.run(until_empty=True)

One loop per handler thread: ask the fetch gates (pacing, breaker), lease a
message, call the handler through the handler hook while a heartbeat thread
extends the lease, then ack, or ask the retry policy and release or
dead-letter. SIGTERM/SIGINT finish the current job and stop; a second signal
stops at once and leaves the message to its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import queue as stdlib_queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from localqueue.errors import (
    LeaseExpired,
    LocalQueueError,
    StoreBusyError,
    StoreConnectionLost,
)
from localqueue.message import Message
from localqueue.observability import worker_events
from localqueue.observability.observers import listening
from localqueue.plugins import get_plugin_manager
from localqueue.policies import retry as builtin_retry
from localqueue.queue import PersistentQueue
from localqueue.spec import PersistentWorkerConfig
from localqueue.worker.heartbeat import LeaseKeeper, TrackedLease
from localqueue.worker.hook_types import (
    Action,
    Failure,
    FetchGate,
    HandlerCall,
    JobOutcome,
    Outcome,
    RetryDecision,
    WorkerView,
)
from localqueue.worker.signals import stop_signals_handled

log = logging.getLogger("localqueue.worker")

# Seconds between fetches while a networked store's connection keeps
# breaking, or another process keeps the store's write lock (a long vacuum):
# quick at first (a blip), then no faster than every 5 s.
OUTAGE_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)

# Store errors that go away by waiting: the worker rides them out.
TRANSIENT_STORE_ERRORS = (StoreConnectionLost, StoreBusyError)

LOST_BEFORE_RECORDED = "lease lost before the result could be recorded; not recorded"

_worker_numbers = itertools.count(1)


def default_worker_id() -> str:
    """host:pid:n — n tells apart several workers in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{next(_worker_numbers)}"


class WorkerAborted(BaseException):
    """Raised inside a running handler by a second stop signal: stop now.

    A BaseException, like KeyboardInterrupt, so handler code that catches
    Exception does not swallow it.
    """


@dataclass
class WorkerSummary:
    """What one ``run()`` did."""

    processed: int = 0
    acked: int = 0
    released: int = 0
    dead: int = 0
    lease_lost: int = 0
    aborted: bool = False

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _wants_message(handler: Callable[..., Any]) -> bool:
    """A handler gets the Message too if it declares a second positional
    parameter (or *args)."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


class PersistentWorker:
    """A handler bound to a queue and a config. Still callable like the handler."""

    def __init__(
        self,
        queue: PersistentQueue,
        handler: Callable[..., Any],
        config: PersistentWorkerConfig,
    ) -> None:
        if config.name != queue.name:
            raise ValueError(
                f"config is for queue {config.name!r} but the worker's queue is {queue.name!r}"
            )
        self.handler = handler
        self.config = config
        self.worker_id = config.worker_id or default_worker_id()
        # A view of the same queue with this worker's lease and budget; it
        # shares the store and never closes it.
        self.queue = PersistentQueue(
            queue.name,
            store=queue.store,
            lease_timeout=config.lease_timeout,
            max_attempts=config.max_attempts,
            serializer=queue.serializer,
            worker_id=self.worker_id,
        )
        self.view = WorkerView(
            worker_id=self.worker_id,
            queue=queue.name,
            config=config,
            clock=queue.store.clock,
        )
        self._pass_message = _wants_message(handler)
        self._run_state = _RunState()
        self._loops = threading.local()
        self._hooks = _HooksInUse(fetch=True, call=True, finished=True)
        self.__wrapped__ = handler
        self.__doc__ = handler.__doc__
        self.__name__ = getattr(handler, "__name__", "worker")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.handler(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<PersistentWorker {self.__name__} on {self.queue.name!r} as {self.worker_id}>"

    # -- control -------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Ask the worker to stop after the current job(s).

        ``now=True`` also stops waiting for handler threads (``concurrency``
        > 1): ``run()`` returns at once and their messages are left to lease
        expiry. A handler already running in the thread that called ``run()``
        cannot be interrupted from another thread; a second SIGTERM/SIGINT
        can.
        """
        self._run_state.stop.set()
        if now:
            self._run_state.abort.set()

    @property
    def stopping(self) -> bool:
        return self._run_state.stop.is_set()

    # -- running -------------------------------------------------------------

    def run(self, max_jobs: int | None = None, until_empty: bool = False) -> WorkerSummary:
        """Work messages until stopped, ``max_jobs`` are done, or (with
        ``until_empty``) no message is ready. Returns what was done."""
        check_max_jobs(max_jobs)
        # Fresh events each run: threads left behind by an aborted earlier run
        # still hold that run's (set) events, so they can never come back to
        # life and run jobs without a heartbeat.
        pm = get_plugin_manager()
        self._hooks = _HooksInUse.of(pm, self.config)
        keeper = LeaseKeeper(self.queue, self.config.heartbeat_interval, self.worker_id)
        run = self._run_state = _RunState(pm, keeper, _JobBudget(max_jobs), until_empty)
        summary = run.summary
        observers = listening()
        if observers:
            worker_events.started(
                observers, self.queue.name, self.worker_id, self.config.concurrency
            )
        try:
            with keeper, self._signals_handled(run):
                try:
                    if self.config.concurrency == 1:
                        self._loop(run)
                    else:
                        self._run_threads(run)
                except WorkerAborted:
                    pass  # a second signal outside a handler call: stop here
                finally:
                    run.stop.set()  # whatever ends this run ends its threads too
            summary.aborted = run.abort.is_set()
        finally:
            # Also when run() ends by an exception, so the stop is never missed.
            observers = listening()
            if observers:
                worker_events.stopped(observers, self.queue.name, self.worker_id, summary)
        return summary

    def _run_threads(
        self,
        run: _RunState,
    ) -> None:
        errors: list[BaseException] = []

        def target() -> None:
            try:
                self._loop(run)
            except BaseException as exc:  # reported to run()'s caller below
                errors.append(exc)
                run.stop.set()

        threads = [
            threading.Thread(target=target, name=f"{self.worker_id}/{n}", daemon=True)
            for n in range(self.config.concurrency)
        ]
        for thread in threads:
            thread.start()
        # Join in slices so the main thread stays responsive to signals.
        while any(t.is_alive() for t in threads):
            if run.abort.is_set():
                return  # leave running jobs to lease expiry
            for thread in threads:
                thread.join(timeout=0.05)
        if errors:
            raise errors[0]

    def _loop(
        self,
        run: _RunState,
    ) -> None:
        try:
            self._work_until_done(run)
        finally:
            # This thread's event loop (async handlers) ends with its loop.
            loop = getattr(self._loops, "loop", None)
            if loop is not None and not loop.is_closed():
                loop.close()

    def _work_until_done(self, run: _RunState) -> None:
        # A job whose handler succeeded is acked together with the claim of
        # the next message (with prefetch, of the next batch): one store
        # transaction per job, or per batch. Until then it waits in this
        # thread's slot; every way out of the loop acks it first, and gives
        # back the prefetched messages it never started.
        slot = _Slot()
        try:
            self._work_loop(run, slot)
        finally:
            try:
                self._ack_pending(run, slot)
            finally:
                self._give_back_waiting(run, slot)

    def _work_loop(self, run: _RunState, slot: _Slot) -> None:
        budget = run.budget
        outage = 0  # fetches in a row that lost the store's connection
        while not run.stop.is_set():
            if not budget.take():
                return
            wait = self._fetch_wait(run)
            if wait > 0:
                budget.give_back()
                self._ack_pending(run, slot)  # not worth holding through a wait
                # Prefetched messages stay leased through the wait (the
                # heartbeat keeps them): giving them back would cost each an
                # attempt. While a gate holds the worker back, it claims one
                # message at a time, so as not to hoard more.
                slot.gated = True
                run.stop.wait(min(wait, self.config.poll_interval))
                continue
            try:
                message = self._next(run, slot)
            except stdlib_queue.Empty:
                budget.give_back()
                outage = 0
                if run.until_empty:
                    return
                continue
            except TRANSIENT_STORE_ERRORS as exc:
                budget.give_back()
                run.stop.wait(self._outage_delay(exc, outage))
                outage += 1
                continue
            outage = 0
            if run.stop.is_set():
                # Stopped while we waited: start nothing new.
                self._give_back(message)
                return
            # A job that succeeded comes back, to be acked with the next
            # claim (or on the way out); any other is recorded and counted.
            ran = self._work(run, message)
            if ran is not None:
                self._hold(run, slot, ran)

    def _fetch_wait(self, run: _RunState) -> float:
        """Seconds the fetch gates (pacing, breaker, plugins) ask to wait; 0: fetch now."""
        if not self._hooks.fetch:
            return 0.0
        gate = FetchGate(self.view, self.view.clock.now())
        delays = run.pm.hook.localqueue_fetch_delay(gate=gate)
        return max((d for d in delays if d), default=0.0)

    def _outage_delay(self, exc: BaseException, outage: int) -> float:
        """How long to wait after the ``outage``-th fetch in a row that hit a
        transient store error, said in one log line.

        A networked store's connection broke (a failover, a network blip),
        or another process held the write lock past the busy timeout: ride it
        out instead of stopping every worker at once. A claim that was applied
        but not seen leaves its leases to expire; those messages are delivered
        again. Acks that rode on the failed fetch stay with the worker and
        ride on the next one.
        """
        delay = OUTAGE_DELAYS[min(outage, len(OUTAGE_DELAYS) - 1)]
        log.warning("%s; fetching again in %gs", exc, delay)
        return delay

    def _next(self, run: _RunState, slot: _Slot) -> Message:
        """The next message: a prefetched one still leased, else a fetch."""
        waiting = self._take_waiting(run, slot)
        return waiting if waiting is not None else self._fetch(run, slot)

    def _hold(self, run: _RunState, slot: _Slot, ran: _Ran) -> None:
        """Keep a succeeded job for the ack that rides on the next claim. In
        a batch that ack may be a whole batch away: the lease is kept by the
        heartbeat until then, as the waiting messages' are."""
        if self.config.prefetch > 1:
            ran.tracked = run.keeper.track(ran.message)
        slot.done.append(ran)

    def _unhold(self, run: _RunState, slot: _Slot) -> list[_Ran]:
        """The held jobs to ack now, their messages as last extended; those
        whose lease was lost while they waited for the ack are recorded so."""
        pending, slot.done = slot.done, []
        current = []
        for ran in pending:
            if ran.tracked is not None:
                run.keeper.forget(ran.tracked)
                ran.message = ran.tracked.current
                if ran.tracked.lost:
                    self._lost_before_recorded(run, ran)
                    continue
            current.append(ran)
        return current

    def _lost_before_recorded(self, run: _RunState, ran: _Ran) -> None:
        log.warning(LOST_BEFORE_RECORDED)
        self._complete(run, ran, Outcome.LEASE_LOST)

    def _take_waiting(self, run: _RunState, slot: _Slot) -> Message | None:
        """The first prefetched message whose lease still holds (no store call)."""
        now = self.view.clock.now() if slot.waiting else 0.0
        while slot.waiting:
            tracked = slot.waiting.popleft()
            run.keeper.forget(tracked)
            message = tracked.current  # as last extended while it waited
            until = message.leased_until
            if not tracked.lost and (until is None or until > now):
                return message
            # Its lease ran out while it waited (the heartbeat could not reach
            # the store): it may be someone else's now, and was never started
            # here.
        return None

    def _fetch(self, run: _RunState, slot: _Slot, *, block: bool | None = None) -> Message:
        """The next message, leasing up to ``prefetch`` at once; the pending
        acks ride on the claim. ``block`` (default: unless ``until_empty``)
        waits up to the poll interval when nothing is claimable."""
        if block is None:
            block = not run.until_empty
        wanted = 1 if slot.gated else self.config.prefetch
        slot.gated = False
        limit = run.budget.batch(wanted, self.config.concurrency)
        pending = self._unhold(run, slot)
        if pending:
            try:
                lost, leased = self.queue.ack_many_and_get_many(
                    [ran.message for ran in pending], limit
                )
            except TRANSIENT_STORE_ERRORS:
                # Most likely nothing committed (a busy store never does): keep
                # the jobs, leased, and ack them with the next fetch. Had the
                # ack committed after all (a connection lost at the commit),
                # the retry finds the leases gone and counts them lost.
                for ran in pending:
                    self._hold(run, slot, ran)
                raise
            self._complete_acked(run, pending, lost)
            if lost:
                # A lost lease stops the claim: fetch as if nothing was pending.
                leased = self.queue.get_many(limit, block=block, timeout=self.config.poll_interval)
            elif not leased:
                # Acked, and nothing is due: the loop decides what next (stop,
                # with until_empty, or a blocking fetch), as after any fetch.
                raise stdlib_queue.Empty
        else:
            leased = self.queue.get_many(limit, block=block, timeout=self.config.poll_interval)
        first, *rest = leased
        # The rest wait their turn, leased, their leases kept by the heartbeat.
        slot.waiting.extend(run.keeper.track(message) for message in rest)
        return first

    def _complete_acked(self, run: _RunState, done: list[_Ran], lost: list[Message]) -> None:
        lost_ids = {message.id for message in lost}
        for ran in done:
            if ran.message.id in lost_ids:
                self._lost_before_recorded(run, ran)
            else:
                self._complete(run, ran, Outcome.ACKED)

    def _ack_pending(self, run: _RunState, slot: _Slot) -> None:
        pending = self._unhold(run, slot)
        if not pending:
            return
        messages = [ran.message for ran in pending]
        for delay in (*FINAL_ACK_RETRIES, None):
            try:
                lost = self.queue.ack_many(messages)
            except TRANSIENT_STORE_ERRORS as exc:
                if delay is None:
                    # The leases expire and the jobs run again (at least once).
                    log.warning("%s; the results may not be recorded", exc)
                    for ran in pending:
                        self._complete(run, ran, Outcome.LEASE_LOST)
                    return
                log.warning("%s; acking again in %gs", exc, delay)
                time.sleep(delay)
            else:
                self._complete_acked(run, pending, lost)
                return

    def _give_back_waiting(self, run: _RunState, slot: _Slot) -> None:
        """Give back the prefetched messages never started, at once, so that
        a stopping worker holds nothing another one could run now."""
        while slot.waiting:
            tracked = slot.waiting.popleft()
            run.keeper.forget(tracked)
            if not tracked.lost:
                self._give_back(tracked.current)

    def _count(self, run: _RunState, outcome: Outcome) -> None:
        with run.lock:
            summary = run.summary
            summary.processed += 1
            if outcome is Outcome.ACKED:
                summary.acked += 1
            elif outcome is Outcome.RELEASED:
                summary.released += 1
            elif outcome is Outcome.DEAD:
                summary.dead += 1
            elif outcome is Outcome.LEASE_LOST:
                summary.lease_lost += 1

    def _call(self, message: Message) -> Any:
        args = (message.value, message) if self._pass_message else (message.value,)
        result = self.handler(*args)
        if result is None or not inspect.isawaitable(result):
            return result  # None first: what most handlers return
        # async def handlers, and objects with an async __call__: one event
        # loop per handler thread, reused across jobs.
        loop = getattr(self._loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = self._loops.loop = asyncio.new_event_loop()
        task = loop.create_task(_awaited(result))
        try:
            return loop.run_until_complete(task)
        except BaseException:
            # Interrupted (a second signal, KeyboardInterrupt): cancel the
            # coroutine now, so it can never finish later inside another job.
            # A task that is done (the handler raised) is left alone: running
            # it again would raise its exception a second time, from here.
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(task)
            raise

    def _work(self, run: _RunState, message: Message) -> _Ran | None:
        """Run the handler on ``message``: the job to ack when the handler
        succeeded, else None once the outcome is recorded and counted."""
        pm, keeper = run.pm, run.keeper
        started = self.view.clock.now()
        timer = time.perf_counter()
        error: Exception | None = None
        lease = keeper.track(message)
        try:
            if self._hooks.call:
                pm.hook.localqueue_call_handler(
                    call=HandlerCall(self.view, message, lambda: self._call(message))
                )
            else:
                self._call(message)
        except WorkerAborted:
            keeper.forget(lease)
            run.stop.set()
            self._count(run, Outcome.ABANDONED)  # left to lease expiry, as asked
            return None
        except Exception as exc:
            error = exc
        except BaseException:
            # KeyboardInterrupt, SystemExit, a cancelled task: not the job's
            # failure. Give the message back untouched so nothing is lost,
            # then let the interrupt stop the worker.
            keeper.forget(lease)
            self._give_back(lease.current)
            raise
        duration = time.perf_counter() - timer
        keeper.forget(lease)
        # lease.current: the message as last extended by the heartbeat.
        ran = _Ran(lease.current, started, duration, error)
        if lease.lost:
            warn_lease_lost_while_running(message)
            outcome = Outcome.LEASE_LOST
        elif error is None:
            return ran
        else:
            # Failures are recorded at once, not with the next claim: a policy
            # that reacts to them (the circuit breaker) must see this one
            # before the next fetch.
            outcome = self._fail(pm, ran.message, error)
        self._complete(run, ran, outcome)
        return None

    def _complete(self, run: _RunState, ran: _Ran, outcome: Outcome) -> None:
        """Tell the hooks and observers how a job ended (and count it)."""
        if self._hooks.finished:
            self._notify(
                run.pm,
                JobOutcome(
                    self.view, ran.message, outcome, ran.error, ran.started, self.view.clock.now()
                ),
            )
        observers = listening()
        if observers:
            worker_events.handler_finished(
                observers, self.worker_id, ran.message, ran.duration, outcome, ran.error
            )
        self._count(run, outcome)

    def _finish(self, action: Callable[[], object], outcome: Outcome) -> Outcome:
        try:
            action()
        except LeaseExpired:
            log.warning(LOST_BEFORE_RECORDED)
            return Outcome.LEASE_LOST
        except TRANSIENT_STORE_ERRORS as exc:
            # Unknown whether it was recorded (a busy store did not record
            # it): if not, the lease expires and the message is delivered
            # again (at least once).
            log.warning("%s; the result may not be recorded", exc)
            return Outcome.LEASE_LOST
        return outcome

    def _fail(self, pm: Any, message: Message, error: BaseException) -> Outcome:
        failure = Failure(self.view, message, error)
        decision: RetryDecision | None = pm.hook.localqueue_retry_decision(failure=failure)
        if decision is None:  # the built-in policy was disabled and nothing answered
            decision = builtin_retry.localqueue_retry_decision(failure)
        if decision.action is Action.DEAD_LETTER:
            return self._finish(lambda: self.queue.dead_letter(message, error=error), Outcome.DEAD)
        state: list[object] = []

        def release() -> None:
            state.append(self.queue.release(message, delay=decision.delay, error=error))

        outcome = self._finish(release, Outcome.RELEASED)
        if outcome is Outcome.RELEASED and state and getattr(state[0], "value", "") == "dead":
            return Outcome.DEAD  # the store's budget rule turned it into a dead letter
        return outcome

    def _give_back(self, message: Message) -> None:
        # Straight to the store: no error is recorded and the attempt budget
        # is not checked, since the handler never failed.
        with contextlib.suppress(LocalQueueError):
            if self.queue.store.release(self.queue.name, message.lease, delay=0.0):
                observers = listening()
                if observers:
                    worker_events.given_back(observers, self.worker_id, message)

    def _notify(self, pm: Any, outcome: JobOutcome) -> None:
        # Call each observer on its own: pluggy stops a fan-out at the first
        # exception, and one broken observer must not silence the others
        # (the built-in circuit breaker is one of them).
        for impl in pm.hook.localqueue_job_finished.get_hookimpls():
            try:
                impl.function(outcome=outcome)
            except Exception:
                log.exception(
                    "localqueue_job_finished observer %r raised; the worker goes on",
                    impl.plugin_name,
                )

    # -- signals -------------------------------------------------------------

    def _signals_handled(self, run: _RunState) -> contextlib.AbstractContextManager[None]:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if run.signaled:
                log.warning("second stop signal: stopping now; the job is left to its lease")
                run.abort.set()
                raise WorkerAborted
            run.signaled = True
            log.warning("stopping after the current job; send the signal again to stop at once")
            run.stop.set()

        return stop_signals_handled(self.config.handle_signals, on_signal)


# Pauses before the final ack of a stopping worker is tried again after a
# transient store error (then its jobs are left to their leases).
FINAL_ACK_RETRIES = (0.2, 1.0)


def check_max_jobs(max_jobs: int | None) -> None:
    if max_jobs is not None and (
        isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 0
    ):
        raise ValueError(f"max_jobs must be an integer >= 0, got {max_jobs!r}")


def warn_lease_lost_while_running(message: Message) -> None:
    log.warning(
        "lease of message %s in %r was lost while its handler ran; not acked "
        "(another worker may run it again)",
        message.id,
        message.queue,
    )


@dataclass
class _Ran:
    """A job whose handler has returned: what its outcome hooks need."""

    message: Message
    started: float  # store clock
    duration: float  # the handler alone, not the ack or release
    error: BaseException | None
    # While it waits for its ack in a batch, its lease kept by the heartbeat.
    tracked: TrackedLease | None = None


class _Slot:
    """One handler thread's jobs waiting for their ack, and the messages it
    prefetched and has not started yet."""

    __slots__ = ("done", "gated", "waiting")

    def __init__(self) -> None:
        self.done: list[_Ran] = []
        self.waiting: deque[TrackedLease] = deque()
        self.gated = False  # a fetch gate made the worker wait since the last fetch


class _RunState:
    """One run(): its plugin manager, lease keeper, job budget and summary,
    and its stop and abort requests (each run gets its own)."""

    def __init__(
        self,
        pm: Any = None,
        keeper: LeaseKeeper | None = None,
        budget: _JobBudget | None = None,
        until_empty: bool = False,
    ) -> None:
        self.pm = pm
        self.keeper: LeaseKeeper = keeper  # type: ignore[assignment]  # set for real runs
        self.budget = budget or _JobBudget(None)
        self.until_empty = until_empty
        self.summary = WorkerSummary()
        self.lock = threading.Lock()  # guards summary across handler threads
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.signaled = False  # a stop signal arrived: the next one aborts


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


@dataclass(frozen=True)
class _HooksInUse:
    """Which per-job hooks have anything to do for this worker.

    A built-in policy whose setting is off (no min_interval, no breaker)
    would only return None; skipping the hook call then keeps a worker with
    no plugins installed close to a bare get+ack loop. Any other plugin
    implementing a hook makes the worker call it every time.
    """

    fetch: bool
    call: bool
    finished: bool

    @classmethod
    def of(cls, pm: Any, config: PersistentWorkerConfig) -> _HooksInUse:
        def others(hook: Any, idle_builtins: set[str]) -> bool:
            names = {impl.plugin_name for impl in hook.get_hookimpls()}
            return bool(names - idle_builtins)

        idle = set()
        if config.min_interval <= 0:
            idle.add("pacing")
        if config.breaker_threshold is None:
            idle.add("breaker")
        return cls(
            fetch=others(pm.hook.localqueue_fetch_delay, idle),
            call=others(pm.hook.localqueue_call_handler, {"handler"}),
            finished=others(pm.hook.localqueue_job_finished, idle),
        )


class _JobBudget:
    """Shared max_jobs countdown across handler threads."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left is None:
                return True
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def give_back(self) -> None:
        with self._lock:
            if self._left is not None:
                self._left += 1

    def batch(self, wanted: int, threads: int = 1) -> int:
        """How many messages to lease for the job just taken and those after
        it: ``wanted``, or fewer if the budget ends sooner (shared by
        ``threads``, so that together they lease no more than it leaves)."""
        with self._lock:
            if self._left is None:
                return wanted
            share = -(-(self._left + 1) // threads)  # rounded up
            return max(1, min(wanted, share))


def persistent_worker(
    queue: PersistentQueue,
    *,
    config: PersistentWorkerConfig | None = None,
    worker_id: str | None = None,
    **overrides: Any,
) -> Callable[[Callable[..., Any]], PersistentWorker]:
    """Decorate a handler (sync or ``async def``) to run as a worker of ``queue``.

    The handler receives the message's value, and the Message too if it
    declares a second positional parameter. Settings come from ``config``
    (default: ``queue.build_worker_config()``), then ``worker_id`` and any
    ``overrides`` (field names of PersistentWorkerConfig).
    """
    base = config if config is not None else queue.build_worker_config()
    if worker_id is not None:
        overrides["worker_id"] = worker_id
    final = base.with_overrides(**overrides) if overrides else base

    def decorate(handler: Callable[..., Any]) -> PersistentWorker:
        if not callable(handler):
            raise ValueError(f"persistent_worker decorates a callable, got {handler!r}")
        return PersistentWorker(queue, handler, final)

    return decorate
