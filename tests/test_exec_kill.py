"""``queue exec`` kills everything the command started, and never waits on
pipes that something the command left behind holds open.

The command in these tests starts a grandchild that leaves the command's
session (``setsid``), ignores SIGTERM, keeps the command's stdout and stderr
and sleeps: killing the process group misses it, and waiting for end-of-file
on the pipes would wait for as long as it lives.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from localqueue import PersistentQueue
from localqueue.cli import build_cli, process_tree
from localqueue.cli.exec_handler import CommandFailed, RunningCommands, make_exec_handler
from localqueue.message import Message
from localqueue.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to check and clean up"
)

# argv: pidfile, "daemon" or "setsid". As a daemon it forks once more and
# the first process exits at once, so the one left is an orphan from the start.
GRANDCHILD = """
import os, signal, sys, time
pidfile, style = sys.argv[1], sys.argv[2]
os.setsid()
if style == "daemon" and os.fork():
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("grandchild up", flush=True)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pidfile + ".tmp", pidfile)
time.sleep(60)
"""

# argv: pidfile, style, then ("exit" or "sleep"), the grandchild's code.
COMMAND = """
import os, subprocess, sys, time
pidfile, style, then, grandchild = sys.argv[1:5]
subprocess.Popen([sys.executable, "-c", grandchild, pidfile, style])  # our stdout, stderr
while not os.path.exists(pidfile):
    time.sleep(0.01)
print("command ready", flush=True)
if then == "sleep":
    time.sleep(60)
"""

# The old handler took 11 s here (it waited 5 s for each pipe); the new one
# takes the timeout plus a few hundredths (a second at most).
PROMPT = 3.0


def command(pidfile: Path, then: str, style: str = "setsid") -> list[str]:
    return [sys.executable, "-c", COMMAND, str(pidfile), style, then, GRANDCHILD]


def message(tmp_path: Path, value: object = "x") -> Message:
    q = PersistentQueue("jobs", store=SQLiteStore(tmp_path / "q.sqlite3"))
    q.put(value)
    return q.get(timeout=5)


def dead(pid: int) -> bool:
    """Gone, or a zombie (dead, waiting to be reaped)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (ProcessLookupError, FileNotFoundError):
        return True
    return stat[stat.rindex(b")") + 2 :].startswith(b"Z")


def dies_soon(pid: int, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while not dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pid(pidfile: Path, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    while not pidfile.exists():
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.02)
    return int(pidfile.read_text())


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    """Where the grandchild writes its pid; whatever a test leaves alive is killed."""
    path = tmp_path / "grandchild.pid"
    yield path
    if path.exists():
        pid = int(path.read_text())
        try:  # only if that pid is still our grandchild, not a reused one
            ours = str(path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            ours = False
        if ours:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("style", ["setsid", "daemon"])
def test_a_timeout_kills_what_left_the_process_group_and_returns_promptly(
    tmp_path: Path, pidfile: Path, style: str
) -> None:
    handler = make_exec_handler(command(pidfile, "sleep", style), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(CommandFailed) as failed:
        handler("x", message(tmp_path))
    elapsed = time.monotonic() - started
    assert elapsed < PROMPT, elapsed
    text = str(failed.value)
    assert text.startswith("command timed out after 1s and was killed; stdout tail: ")
    assert "command ready" in text and "grandchild up" in text  # read up to the kill
    assert dies_soon(read_pid(pidfile))


def test_stopping_at_once_kills_what_left_the_process_group(tmp_path: Path, pidfile: Path) -> None:
    running = RunningCommands()
    handler = make_exec_handler(command(pidfile, "sleep"), timeout=None, running=running)
    msg = message(tmp_path)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            handler("x", msg)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    pid = read_pid(pidfile)
    time.sleep(0.2)  # let the command print its line too
    started = time.monotonic()
    assert running.kill_all() == 1
    worker.join(PROMPT + 10)
    elapsed = time.monotonic() - started
    assert not worker.is_alive() and elapsed < PROMPT, elapsed
    [error] = errors
    assert isinstance(error, CommandFailed) and "exited with code -9" in str(error)
    assert dies_soon(pid)


def test_a_successful_command_does_not_wait_for_what_it_left_running(
    tmp_path: Path, pidfile: Path
) -> None:
    handler = make_exec_handler(command(pidfile, "exit"), timeout=None)
    started = time.monotonic()
    handler("x", message(tmp_path))  # exit 0: acked
    elapsed = time.monotonic() - started
    assert elapsed < PROMPT, elapsed
    assert not dead(read_pid(pidfile))  # left running, by design; the fixture kills it


def test_a_timeout_returns_promptly_even_when_the_kill_misses_something(
    tmp_path: Path, pidfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As where there is no subreaper: only the process group is killed, the
    # setsid'd grandchild survives with the pipes and must not hold us up.
    monkeypatch.setattr(process_tree, "TREE_KILL", False)
    handler = make_exec_handler(command(pidfile, "sleep"), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out after 1s"):
        handler("x", message(tmp_path))
    elapsed = time.monotonic() - started
    assert elapsed < PROMPT, elapsed
    assert not dead(read_pid(pidfile))


def test_exec_timeout_through_the_cli(
    tmp_path: Path, pidfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("LOCALQUEUE_STORE", str(db))
    q = PersistentQueue("jobs", store=SQLiteStore(db))
    q.put("x")
    args = ["queue", "exec", "jobs", "--until-empty", "--max-tries", "1", "--timeout", "1"]
    started = time.monotonic()
    result = CliRunner().invoke(build_cli(), [*args, "--json", "--", *command(pidfile, "sleep")])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["dead"] == 1
    assert elapsed < PROMPT + 1, elapsed  # the worker's own start and stop besides
    [letter] = q.dead_letters()
    assert letter.last_error is not None and "timed out" in letter.last_error.message
    assert dies_soon(read_pid(pidfile))


@pytest.mark.parametrize("lc_ctype", [None, "C"])
def test_the_command_gets_its_input_environment_and_signals_as_given(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    lc_ctype: str | None,
) -> None:
    # A C locale is what makes Python's start-up set LC_CTYPE: the command
    # must not inherit that from the launcher, nor its ignored SIGPIPE.
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("LANG", "C")
    if lc_ctype is None:
        monkeypatch.delenv("LC_CTYPE", raising=False)
    else:
        monkeypatch.setenv("LC_CTYPE", lc_ctype)
    script = (
        'cat; echo; echo "lc=${LC_CTYPE-unset} q=$LOCALQUEUE_QUEUE a=$LOCALQUEUE_ATTEMPT"; '
        "grep SigIgn /proc/self/status"
    )
    msg = message(tmp_path, {"n": 1})
    make_exec_handler(["sh", "-c", script], timeout=5.0)({"n": 1}, msg)
    lines = capfd.readouterr().out.splitlines()
    assert lines[0] == msg.payload.decode()  # the value, as JSON
    assert lines[1] == f"lc={lc_ctype or 'unset'} q=jobs a=1"
    ignored = int(lines[2].split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
