"""Leaving no process behind: the runner's children, their children, and
the restart command.

A run starts producer and consumer processes (multiprocessing, spawn) and
may run a restart command. Whatever way the run ends -- success, a failed
invariant, its deadline, Ctrl-C or SIGTERM -- every one of them must be gone
when the runner returns, or ``localqueue harness run`` would print its
verdict and then wait on them at exit (multiprocessing joins its children at
exit), or leave them working on the store.

Three layers:

1. **The runner kills what it started.** ``reap`` SIGKILLs each process it
   is given together with everything below it
   (:func:`localqueue.processes.kill_process_tree`: the tree frozen, then
   killed children first) and joins it with a time limit. Elsewhere than
   Linux, only the process itself is killed.
2. **A child dies with the runner.** ``child_setup`` runs first in every
   producer and consumer: on Linux it asks the kernel to SIGKILL the child
   when the runner dies (``PR_SET_PDEATHSIG``), so that even a runner killed
   with SIGKILL leaves nothing behind; and it ignores SIGINT, so that a
   Ctrl-C in a terminal (sent to the whole foreground process group) leaves
   the clean-up to the runner instead of printing a traceback per child.
3. **A signal becomes an exception.** ``signals_raise`` turns SIGTERM (and
   SIGINT) into :class:`Interrupted` in the runner, so that its ``finally``
   clean-up runs; Python's default SIGTERM would end the process at once.

The restart command runs in a session of its own; ``kill_group`` kills that
session's process group. Daemons the command starts on purpose (a database
server that ``pg_ctl`` starts calls ``setsid``) are not part of the run and
are left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from multiprocessing.process import BaseProcess

from localqueue.processes import kill_process_tree

LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGINT or SIGTERM).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception``
    on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130, 143)."""
        return 128 + self.signum


@contextlib.contextmanager
def signals_raise(signums: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the given signals raise :class:`Interrupted` in the
    main thread. Elsewhere than the main thread (where Python delivers no
    signal handler) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def signals_blocked(signums: Iterable[int] = (signal.SIGINT,)) -> Iterator[None]:
    """Hold the given signals back within the block; one that arrived is
    delivered when the block ends.

    Around starting a child (SIGINT): the child inherits the blocked signal
    through fork and exec, so a Ctrl-C that reaches the whole process group
    while it is still starting up (before ``child_setup``) does not end it
    with a traceback. Around the clean-up (SIGINT and SIGTERM): a second
    Ctrl-C does not cut it short.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(signums))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def child_setup(parent: int) -> None:
    """First thing in every process the runner starts (see layer 2 above)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if LINUX:
        with contextlib.suppress(Exception):  # no ctypes or no libc: layer 1 still holds
            import ctypes

            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        # The runner died before the request above was made: nobody would
        # ever kill this process.
        os._exit(1)


def reap(processes: Iterable[BaseProcess], timeout: float = 5.0) -> list[int]:
    """SIGKILL every process still alive, with its descendants, and join
    them all (each within ``timeout`` s); the pids that were still alive."""
    killed = []
    procs = list(processes)
    for proc in procs:
        if proc.pid is not None and proc.is_alive():
            killed.append(proc.pid)
            kill_process_tree(proc.pid)
    for proc in procs:
        if proc.pid is not None:
            proc.join(timeout)
    return killed


def kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid`` (a command started in a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
