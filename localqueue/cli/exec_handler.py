"""The handler behind ``localqueue queue exec``: one command run per message.

The message's value goes to the command's stdin as JSON, without a shell.
Exit 0 acks; any other exit raises CommandFailed, whose text (exit code and
the tails of stdout and stderr) becomes the message's latest error. The
command's output is streamed through as it comes (never held in memory; only
a bounded tail is kept for the error). The command runs in its own process
group, so a timeout, or a worker told to stop at once, kills it and
everything it started.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

from localqueue.message import Message

TAIL_BYTES = 2000
CHUNK = 65536


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
            kill_group(proc)
        return len(procs)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class _Pump(threading.Thread):
    """Copies one pipe to one of our streams as data arrives, keeping a tail."""

    def __init__(self, source: IO[bytes], sink: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.source, self.sink = source, sink
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(self.source.fileno(), CHUNK):
                with contextlib.suppress(OSError, ValueError):
                    self.sink.write(chunk)
                    self.sink.flush()
                self.tail.append(chunk)
                self.tail_size += len(chunk)
                while self.tail_size - len(self.tail[0]) >= TAIL_BYTES:
                    self.tail_size -= len(self.tail.popleft())

    def text(self) -> str:
        data = b"".join(self.tail)[-TAIL_BYTES:]
        return data.decode("utf-8", errors="replace").strip()


def _feed(proc: subprocess.Popen[bytes], payload: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(OSError):  # the command need not read its input
        proc.stdin.write(payload)
    with contextlib.suppress(OSError):
        proc.stdin.close()


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
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group, spared our Ctrl-C
        )
        live.add(proc)
        assert proc.stdout is not None and proc.stderr is not None
        sys.stdout.flush()
        sys.stderr.flush()
        out = _Pump(proc.stdout, _binary(sys.stderr if stdout_to_stderr else sys.stdout))
        err = _Pump(proc.stderr, _binary(sys.stderr))
        feeder = threading.Thread(target=_feed, args=(proc, message.payload), daemon=True)
        for thread in (out, err, feeder):
            thread.start()
        try:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                proc.wait()
                out.join(5)
                err.join(5)
                raise CommandFailed(
                    f"command timed out after {timeout:g}s and was killed; "
                    f"stdout tail: {out.text()!r}; stderr tail: {err.text()!r}"
                ) from None
            except BaseException:
                kill_group(proc)  # told to stop at once: leave nothing running
                proc.wait()
                raise
        finally:
            live.discard(proc)
        out.join(5)
        err.join(5)
        if proc.returncode != 0:
            raise CommandFailed(
                f"command exited with code {proc.returncode}; "
                f"stdout tail: {out.text()!r}; stderr tail: {err.text()!r}"
            )

    return run_command
