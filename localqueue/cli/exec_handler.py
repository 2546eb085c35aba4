"""The handler behind ``localqueue queue exec``: one command run per message.

The message's value goes to the command's stdin as JSON, without a shell.
Exit 0 acks; any other exit raises CommandFailed, whose text (exit code and
the tails of stdout and stderr) becomes the message's latest error. The
command runs in its own process group, so a timeout (or a worker told to stop
at once) kills it and everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import click

from localqueue.message import Message

TAIL_CHARS = 2000


class CommandFailed(Exception):
    """The command exited with a non-zero code (or was killed on timeout)."""


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text[-TAIL_CHARS:].strip()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def make_exec_handler(
    command: Sequence[str], timeout: float | None, stdout_to_stderr: bool = False
) -> Callable[[Any, Message], None]:
    """``stdout_to_stderr``: echo the command's stdout on our stderr, keeping our
    stdout for a JSON document (``--json``)."""
    argv = list(command)

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
        try:
            out, err = proc.communicate(message.payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            raise CommandFailed(
                f"command timed out after {timeout:g}s and was killed; "
                f"stdout tail: {_tail(out)!r}; stderr tail: {_tail(err)!r}"
            ) from None
        except BaseException:
            _kill_group(proc)  # told to stop at once: leave nothing running
            proc.wait()
            raise
        if out:
            click.echo(out.decode("utf-8", errors="replace"), nl=False, err=stdout_to_stderr)
        if err:
            click.echo(err.decode("utf-8", errors="replace"), nl=False, err=True)
        if proc.returncode != 0:
            raise CommandFailed(
                f"command exited with code {proc.returncode}; "
                f"stdout tail: {_tail(out)!r}; stderr tail: {_tail(err)!r}"
            )

    return run_command
