"""async_worker: persistent_worker for asyncio, in the caller's event loop.

The same settings (QueueSpec / PersistentWorkerConfig), the same policy
hooks (fetch delay, handler call, retry decision, job finished), the same
heartbeats and the same one-transaction ack-and-claim as the threaded
worker: the policy decisions and store writes are the threaded worker's
own code (a :class:`~localqueue.worker.PersistentWorker` inside), run off
the loop. What differs is only how handlers run:

* ``concurrency=N`` runs N tasks in the loop, each fetching and handling
  one message at a time;
* an ``async def`` handler runs as part of its task; a plain function runs
  in a thread (``asyncio.to_thread``), so it cannot block the loop;
* waiting for work holds no thread (see :mod:`localqueue.aio.waker`).

Stopping: ``stop()`` lets running jobs finish and starts no new one;
``stop(now=True)``, cancelling the task that awaits ``run()``, or a second
SIGTERM/SIGINT cancels the running handlers: an ``async def`` handler's
message is given back at once, a thread's is left to its lease (a thread
cannot be interrupted). Signals are handled only where nobody else does
(an ASGI server such as uvicorn installs its own; stop the worker from the
app's lifespan there).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import queue as stdlib_queue
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from localqueue.aio.calls import finished, to_the_end
from localqueue.aio.queue import AsyncPersistentQueue
from localqueue.message import Message
from localqueue.observability import worker_events
from localqueue.observability.observers import listening
from localqueue.plugins import get_plugin_manager
from localqueue.spec import PersistentWorkerConfig
from localqueue.worker.heartbeat import LeaseKeeper, TrackedLease
from localqueue.worker.hook_types import HandlerCall, Outcome
from localqueue.worker.runner import (
    TRANSIENT_STORE_ERRORS,
    PersistentWorker,
    WorkerSummary,
    _HooksInUse,
    _JobBudget,
    _Ran,
    _RunState,
    _Slot,
    check_max_jobs,
    warn_lease_lost_while_running,
)
from localqueue.worker.signals import stop_signals_handled

log = logging.getLogger("localqueue.worker")


def _is_async(handler: Callable[..., Any]) -> bool:
    # unwrap: a functools.wraps decorator around an async def is async too.
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(inspect.unwrap(handler)):
        return True
    # An object with an async __call__ method.
    return not inspect.isroutine(handler) and inspect.iscoroutinefunction(type(handler).__call__)


class AsyncWorker:
    """A handler bound to an async queue and a config; ``await run()`` works it."""

    def __init__(
        self,
        queue: AsyncPersistentQueue,
        handler: Callable[..., Any],
        config: PersistentWorkerConfig,
    ) -> None:
        #: The threaded worker whose policies, hooks and store writes this one uses.
        self.core = PersistentWorker(queue.sync, handler, config)
        self.queue = queue.view(self.core.queue)
        self.handler = handler
        self.config = config
        self.worker_id = self.core.worker_id
        self._async_handler = _is_async(handler)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._state_lock = threading.Lock()
        self._running = False
        self._early_stop: bool | None = None  # stop(now=?) asked before run() began
        self.__wrapped__ = handler
        self.__doc__ = handler.__doc__
        self.__name__ = getattr(handler, "__name__", "worker")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.handler(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<AsyncWorker {self.__name__} on {self.queue.name!r} as {self.worker_id}>"

    # -- control -------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop after the running jobs (``now=True``: cancel them). Safe from
        any thread and from a signal handler.

        A stop that comes before ``run()`` has begun (the task that runs it
        was created but has not started yet) makes that run return at once.
        """
        with self._state_lock:
            if not self._running:
                self._early_stop = now or bool(self._early_stop)
        self.core.stop(now=now)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._stop_in_loop, now)

    def _stop_in_loop(self, now: bool) -> None:
        if self._stopped is not None:
            self._stopped.set()
        if now:
            for task in self._tasks:
                task.cancel()

    @property
    def stopping(self) -> bool:
        return self.core.stopping

    # -- running -------------------------------------------------------------

    async def run(self, max_jobs: int | None = None, until_empty: bool = False) -> WorkerSummary:
        """Work messages until stopped, ``max_jobs`` are done, or (with
        ``until_empty``) no message is ready. Returns what was done."""
        check_max_jobs(max_jobs)
        core = self.core
        pm = get_plugin_manager()
        core._hooks = _HooksInUse.of(pm, self.config)
        keeper = LeaseKeeper(core.queue, self.config.heartbeat_interval, self.worker_id)
        run = core._run_state = _RunState(pm, keeper, _JobBudget(max_jobs), until_empty)
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        with self._state_lock:
            self._running = True
            early, self._early_stop = self._early_stop, None
        if early is not None:
            run.stop.set()
            self._stopped.set()
            if early:
                run.abort.set()
        observers = listening()
        if observers:
            worker_events.started(
                observers, self.queue.name, self.worker_id, self.config.concurrency
            )
        try:
            await asyncio.to_thread(keeper.__enter__)  # records a heartbeat: store I/O
            try:
                with self._signals_handled(run):
                    await self._run_tasks(run)
            finally:
                run.stop.set()
                leaving = asyncio.to_thread(keeper.__exit__, None, None, None)
                await to_the_end(asyncio.ensure_future(leaving))
            run.summary.aborted = run.abort.is_set()
        finally:
            with self._state_lock:
                self._running = False
            observers = listening()
            if observers:
                worker_events.stopped(observers, self.queue.name, self.worker_id, run.summary)
        return run.summary

    async def _run_tasks(self, run: _RunState) -> None:
        tasks = self._tasks = [
            asyncio.create_task(self._task(run), name=f"{self.worker_id}/{n}")
            for n in range(self.config.concurrency)
        ]
        try:
            # asyncio.wait, not gather: cancelling run() must not cancel the
            # tasks before run.abort says that the cancellation is the
            # worker's (a handler may raise CancelledError of its own).
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # run() itself was cancelled: cancel its tasks and let them give
            # their messages back before the cancellation goes on.
            run.stop.set()
            run.abort.set()
            for task in tasks:
                task.cancel()
            await to_the_end(asyncio.ensure_future(asyncio.wait(tasks)))
            raise
        finally:
            self._tasks = []
        for task in tasks:
            if task.cancelled():
                continue  # stop(now=True): expected
            error = task.exception()
            if error is not None:
                raise error

    async def _task(self, run: _RunState) -> None:
        slot = _Slot()
        try:
            await self._work_loop(run, slot)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # One task's error stops the worker, as a handler thread's does:
            # the other tasks finish their jobs and run() raises it.
            run.stop.set()
            if self._stopped is not None:
                self._stopped.set()
            raise
        finally:
            core = self.core
            try:
                if slot.done:
                    await finished(self._in_thread(lambda: core._ack_pending(run, slot)), "ack")
            finally:
                # Even when cancelled during the ack: the messages never
                # started go back now, not when their leases run out.
                if slot.waiting:
                    give_back = functools.partial(core._give_back_waiting, run, slot)
                    await to_the_end(self._in_thread(give_back))

    def _in_thread(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        return self.queue._call(call)

    async def _work_loop(self, run: _RunState, slot: _Slot) -> None:
        core = self.core
        budget = run.budget
        outage = 0
        while not run.stop.is_set():
            if not budget.take():
                return
            wait = core._fetch_wait(run)
            if wait > 0:
                budget.give_back()
                await finished(self._in_thread(lambda: core._ack_pending(run, slot)), "ack")
                slot.gated = True  # as the threaded worker: hold, and claim one at a time
                await self._sleep(min(wait, self.config.poll_interval))
                continue
            try:
                message = await self._fetch(run, slot)
            except stdlib_queue.Empty:
                budget.give_back()
                outage = 0
                if run.until_empty:
                    return
                continue
            except TRANSIENT_STORE_ERRORS as exc:
                budget.give_back()
                await self._sleep(core._outage_delay(exc, outage))
                outage += 1
                continue
            outage = 0
            if run.stop.is_set():
                give_back = functools.partial(core._give_back, message)
                await finished(self._in_thread(give_back), "release")
                return
            ran = await self._work(run, message)
            if ran is not None:
                core._hold(run, slot, ran)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or less if the worker is asked to stop."""
        assert self._stopped is not None
        stopping = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({stopping}, timeout=seconds)
        finally:
            stopping.cancel()

    async def _fetch(self, run: _RunState, slot: _Slot) -> Message:
        """The next message: first at once (a pending ack rides on the
        claim), then by waiting without a thread, until the poll interval
        ends or the worker is asked to stop."""
        core = self.core
        waiting = core._take_waiting(run, slot)
        if waiting is not None:
            return waiting  # prefetched, still leased
        found = await self.queue._claim(lambda: [core._fetch(run, slot, block=False)])
        if found:
            return found[0]
        if run.until_empty or run.stop.is_set():
            raise stdlib_queue.Empty
        assert self._stopped is not None
        getting = asyncio.ensure_future(self.queue.get(timeout=self.config.poll_interval))
        stopping = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # This task is being cancelled. A get that is still claiming
            # releases what it leased before it ends; one that already
            # returned a message must give it back here.
            stopping.cancel()
            getting.cancel()
            await to_the_end(asyncio.ensure_future(asyncio.wait({getting})))
            if not getting.cancelled() and getting.exception() is None:
                got = functools.partial(self.core._give_back, getting.result())
                await to_the_end(self._in_thread(got))
            raise
        stopping.cancel()
        if not getting.done():
            getting.cancel()
            # A get cancelled mid-claim releases what it leased before it ends.
            await to_the_end(asyncio.ensure_future(asyncio.wait({getting})))
        if getting.cancelled():
            raise stdlib_queue.Empty
        return getting.result()

    def _invoke(self, message: Message) -> Any:
        """Start the handler: a coroutine, or a thread's future for a plain function."""
        args = (message.value, message) if self.core._pass_message else (message.value,)
        if self._async_handler:
            return self.handler(*args)
        return asyncio.ensure_future(asyncio.to_thread(functools.partial(self.handler, *args)))

    async def _work(self, run: _RunState, message: Message) -> _Ran | None:
        """Run the handler on ``message``: the job to ack when it succeeded,
        else None once the outcome is recorded and counted."""
        core = self.core
        pm, keeper = run.pm, run.keeper
        started = core.view.clock.now()
        timer = time.perf_counter()
        error: BaseException | None = None
        lease = keeper.track(message)
        try:
            if core._hooks.call:
                # In an async worker call() returns an awaitable: a wrapper
                # sees it start, and the worker awaits what the hook returns.
                result = pm.hook.localqueue_call_handler(
                    call=HandlerCall(core.view, message, lambda: self._invoke(message))
                )
            else:
                result = self._invoke(message)
            # A plain function may still return an awaitable (a coroutine,
            # from a wrapper _is_async could not see through): await it, as
            # the threaded worker does, rather than ack work never done.
            while inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError as exc:
            if not run.abort.is_set():
                # Nobody is stopping the worker: the handler raised
                # CancelledError itself (an inner task it awaited was
                # cancelled). That is the job failing, not the worker.
                error = exc
            else:
                keeper.forget(lease)
                await self._abandon(run, lease)
                raise
        except Exception as exc:
            error = exc
        duration = time.perf_counter() - timer
        keeper.forget(lease)
        ran = _Ran(lease.current, started, duration, error)
        if lease.lost:
            warn_lease_lost_while_running(message)
            outcome = Outcome.LEASE_LOST
        elif error is None:
            return ran  # acked with the next claim, or on the way out
        else:
            failed = ran.message
            outcome = await finished(
                self._in_thread(lambda: core._fail(pm, failed, error)), "release"
            )
        # Recorded before the next fetch, so a policy that counts failures
        # (the circuit breaker) sees this one first.
        await finished(self._in_thread(lambda: core._complete(run, ran, outcome)), "outcome")
        return None

    async def _abandon(self, run: _RunState, lease: TrackedLease) -> None:
        """The worker is stopping now: give a cancelled handler's message back."""
        if self._async_handler:
            # The handler stopped: give the message back untouched.
            give_back = functools.partial(self.core._give_back, lease.current)
            await to_the_end(self._in_thread(give_back))
        else:
            # A thread cannot be stopped: leave its message to its lease.
            self.core._count(run, Outcome.ABANDONED)

    # -- signals -------------------------------------------------------------

    def _signals_handled(self, run: _RunState) -> contextlib.AbstractContextManager[None]:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if run.signaled:
                log.warning("second stop signal: stopping now; running handlers are cancelled")
                self.stop(now=True)
                return
            run.signaled = True
            log.warning("stopping after the running jobs; send the signal again to stop at once")
            self.stop()

        # Only where nobody else listens (an ASGI server's own handlers
        # stay), or where asyncio.run() listens only to cancel its main task
        # on Ctrl-C: there the first Ctrl-C stops gracefully instead.
        return stop_signals_handled(self.config.handle_signals, on_signal, _unclaimed)


def _unclaimed(handler: object) -> bool:
    """A signal handler the worker may replace while it runs (and restore)."""
    if handler in (signal.SIG_DFL, signal.default_int_handler):
        return True
    runner = getattr(asyncio, "Runner", None)  # Python 3.11+
    method = getattr(handler, "func", handler)  # Runner installs a partial of its method
    return runner is not None and isinstance(getattr(method, "__self__", None), runner)


def async_worker(
    queue: AsyncPersistentQueue,
    *,
    config: PersistentWorkerConfig | None = None,
    worker_id: str | None = None,
    **overrides: Any,
) -> Callable[[Callable[..., Any]], AsyncWorker]:
    """Decorate a handler (``async def`` or plain) to run as an async worker
    of ``queue``; settings as :func:`~localqueue.persistent_worker`."""
    base = config if config is not None else queue.build_worker_config()
    if worker_id is not None:
        overrides["worker_id"] = worker_id
    final = base.with_overrides(**overrides) if overrides else base

    def decorate(handler: Callable[..., Any]) -> AsyncWorker:
        if not callable(handler):
            raise ValueError(f"async_worker decorates a callable, got {handler!r}")
        return AsyncWorker(queue, handler, final)

    return decorate
