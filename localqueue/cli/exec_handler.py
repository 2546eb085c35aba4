"""The handler behind ``localqueue queue exec``: one command run per message.

The message's value goes to the command's stdin as JSON, without a shell.
Exit 0 acks; any other exit raises CommandFailed, whose text (exit code and
the tails of stdout and stderr) becomes the message's latest error. The
command's output is streamed through as it comes (never held in memory; only
a bounded tail is kept for the error). On Linux a command that cannot be
started (gone since the worker checked it) fails like in a shell: code 127,
or 126 if not executable, with the reason on stderr.

Killing. The command runs in its own session, spared our Ctrl-C. A timeout,
or a worker told to stop at once, kills it *and everything it started*,
descendants that called ``setsid`` included: on Linux the command is a child
subreaper whose process tree is frozen and then killed, elsewhere its process
group is killed (see :mod:`localqueue.cli.process_tree` for why).

The pipes. The command's stdout and stderr are shared by whatever it started,
so their end-of-file can come long after the command is gone, or never (a
background process keeps them open). We therefore never wait on the pipes
for long once the command has ended, whichever way it ended:

- once it has exited or been killed, its pipes get ``DRAIN_GRACE`` seconds
  to reach end-of-file, so that output still on its way is not lost. After
  that, what is already in the pipes is read, and our ends are closed: a
  process the command left running that writes there later gets EPIPE (or
  dies of SIGPIPE). A command that starts something meant to outlive it
  should redirect that process's output (``daemon >log 2>&1 &``).
- after a kill, the grace is rarely used: the killed processes' ends close at
  once. It only matters for a process the kill could not reach, and bounds
  the wait for it, so a timeout returns about when it expires.
- a process left running by a command that exits on its own (with any
  code) is not killed: it may be meant to outlive the command, and once the
  command is gone nothing links it to the command any more (it was
  reparented to init).

The payload is written to stdin by the same thread that reads the outputs,
waiting on the three pipes at once, so a command that reads its input
slowly, or not at all, stalls nothing.
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from localqueue.cli import process_tree
from localqueue.message import Message

TAIL_BYTES = 2000
CHUNK = 65536
# How long the pipes may stay open once the command has ended (see above).
DRAIN_GRACE = 0.5
# How much longer we wait for our own stdout or stderr to take the output
# already read, should a slow reader hold them up.
SINK_SLACK = 5.0
# After the grace, what is already in a pipe is read, up to this much: a
# process still writing to it must not keep us reading.
LAST_READ_BYTES = 16 * CHUNK


class CommandFailed(Exception):
    """The command exited with a non-zero code (or was killed on timeout)."""


class RunningCommands:
    """The commands running right now, so a worker that stops at once can
    kill them (handler threads other than the main one cannot be interrupted)."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> int:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            kill_command(proc)
        return len(procs)


def kill_command(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command and everything it started."""
    if proc.returncode is None:  # once reaped, its pid may belong to another
        process_tree.kill_tree(proc.pid)


class _Output:
    """One of the command's output pipes: copied to one of our streams as data
    arrives, keeping a tail for the error."""

    def __init__(self, pipe: IO[bytes], sink: IO[bytes]) -> None:
        self.pipe, self.sink = pipe, sink
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self._lock = threading.Lock()  # text() may run while the copy goes on

    def read(self) -> bool:
        """Copy what is there; False at end-of-file."""
        chunk = os.read(self.pipe.fileno(), CHUNK)
        if not chunk:
            return False
        with contextlib.suppress(OSError, ValueError):
            self.sink.write(chunk)
            self.sink.flush()
        with self._lock:
            self._tail.append(chunk)
            self._tail_size += len(chunk)
            while self._tail_size - len(self._tail[0]) >= TAIL_BYTES:
                self._tail_size -= len(self._tail.popleft())
        return True

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._tail)[-TAIL_BYTES:]
        return data.decode("utf-8", errors="replace").strip()


class _CommandIO(threading.Thread):
    """Feeds the payload to the command's stdin and copies its stdout and
    stderr, until both reach end-of-file (and the payload is written) or the
    deadline that ``settle`` sets passes. This thread alone uses and closes
    the three pipes, so no descriptor is closed under a read in progress."""

    def __init__(
        self, proc: subprocess.Popen[bytes], payload: bytes, out: IO[bytes], err: IO[bytes]
    ) -> None:
        super().__init__(daemon=True)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.stdin = proc.stdin
        self.out, self.err = _Output(proc.stdout, out), _Output(proc.stderr, err)
        self._payload = memoryview(payload)
        self._deadline: float | None = None
        # settle() writes here to wake the thread from its wait on the pipes.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def settle(self, grace: float) -> None:
        """Let the pipes reach end-of-file within ``grace`` seconds, then stop
        (the command has ended); return once the thread has finished."""
        self._deadline = time.monotonic() + grace
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            os.write(self._wake_w, b"\0")
        try:
            self.join(grace + SINK_SLACK)
        finally:
            os.close(self._wake_w)  # end-of-file on the wake pipe: stop now

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            self._copy(selector)
        finally:
            selector.close()
            for pipe in (self.stdin, self.out.pipe, self.err.pipe):
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()
            os.close(self._wake_r)

    def _copy(self, selector: selectors.BaseSelector) -> None:
        selector.register(self._wake_r, selectors.EVENT_READ)
        for output in (self.out, self.err):
            selector.register(output.pipe, selectors.EVENT_READ, output)
        if self._payload:
            os.set_blocking(self.stdin.fileno(), False)
            selector.register(self.stdin, selectors.EVENT_WRITE)
        else:
            self._close_stdin(selector)
        while any(key.fd != self._wake_r for key in selector.get_map().values()):
            timeout = None
            if self._deadline is not None:
                timeout = self._deadline - time.monotonic()
                if timeout <= 0:
                    break
            for key, _ in selector.select(timeout):
                if key.fileobj is self.stdin:
                    self._feed(selector)
                elif isinstance(key.data, _Output):
                    _copy_or_close(selector, key.data)
                elif not os.read(self._wake_r, 64):
                    self._deadline = time.monotonic()
                    selector.unregister(self._wake_r)
        budget = LAST_READ_BYTES  # past the deadline: what is already there, no more
        while budget > 0:
            ready = [key.data for key, _ in selector.select(0) if isinstance(key.data, _Output)]
            if not ready:
                break
            for output in ready:
                _copy_or_close(selector, output)
                budget -= CHUNK

    def _feed(self, selector: selectors.BaseSelector) -> None:
        try:
            written = os.write(self.stdin.fileno(), self._payload[:CHUNK])
        except BlockingIOError:
            return
        except OSError:  # the command need not read its input
            self._close_stdin(selector)
            return
        self._payload = self._payload[written:]
        if not self._payload:
            self._close_stdin(selector)

    def _close_stdin(self, selector: selectors.BaseSelector) -> None:
        with contextlib.suppress(KeyError):
            selector.unregister(self.stdin)
        with contextlib.suppress(OSError):
            self.stdin.close()


def _copy_or_close(selector: selectors.BaseSelector, output: _Output) -> None:
    """Copy what ``output`` holds; at its end-of-file stop watching it."""
    with contextlib.suppress(OSError):  # a read error ends the pipe like end-of-file
        if output.read():
            return
    selector.unregister(output.pipe)


def _binary(stream: Any) -> IO[bytes]:
    return getattr(stream, "buffer", stream)  # type: ignore[no-any-return]


def make_exec_handler(
    command: Sequence[str],
    timeout: float | None,
    stdout_to_stderr: bool = False,
    running: RunningCommands | None = None,
) -> Callable[[Any, Message], None]:
    """``stdout_to_stderr``: pass the command's stdout to our stderr, keeping our
    stdout for a JSON document (``--json``)."""
    argv = list(command)
    live = running if running is not None else RunningCommands()

    def run_command(value: Any, message: Message) -> None:
        env = dict(
            os.environ,
            LOCALQUEUE_QUEUE=message.queue,
            LOCALQUEUE_MESSAGE_ID=str(message.id),
            LOCALQUEUE_ATTEMPT=str(message.attempts),
        )
        proc = subprocess.Popen(
            process_tree.launch_argv(argv, env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group, spared our Ctrl-C
        )
        live.add(proc)
        sys.stdout.flush()
        sys.stderr.flush()
        pipes = _CommandIO(
            proc,
            message.payload,
            _binary(sys.stderr if stdout_to_stderr else sys.stdout),
            _binary(sys.stderr),
        )
        pipes.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_command(proc)
            proc.wait()
        except BaseException:
            kill_command(proc)  # told to stop at once: leave nothing running
            proc.wait()
            raise
        finally:
            live.discard(proc)
            pipes.settle(DRAIN_GRACE)
        tails = f"stdout tail: {pipes.out.text()!r}; stderr tail: {pipes.err.text()!r}"
        if timed_out:
            raise CommandFailed(f"command timed out after {timeout:g}s and was killed; {tails}")
        if proc.returncode != 0:
            raise CommandFailed(f"command exited with code {proc.returncode}; {tails}")

    return run_command
