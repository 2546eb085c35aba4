"""``localqueue harness run`` always ends, and leaves no process behind
(issue 14, item 1): on success, on a failed invariant, at its deadline, on
SIGINT and on SIGTERM. Each run is a real ``localqueue`` subprocess whose
environment carries a tag; every process of the run (the runner, its
producers and consumers, multiprocessing's helpers) inherits it, so after
the run ``/proc`` must hold no live process with that tag.

Also ``--restart-cmd`` (item 6) on SQLite: the command runs mid-run, its
exit status is reported, and a URL in it is printed redacted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import localqueue_harness
from localqueue_harness.runner import redact_command

from .broken_plugins import HANGING_PLUGIN, LOSING_PLUGIN, install_plugin

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the run's processes"
)

TAG = "LOCALQUEUE_HARNESS_TEST_RUN"
LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))
HARNESS_DIR = str(Path(localqueue_harness.__file__).resolve().parents[1])


def tagged_processes(tag: str) -> list[int]:
    """Live processes (zombies aside) whose environment carries ``tag``."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open(f"/proc/{name}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


class Run:
    """``localqueue harness run ARGS`` in a subprocess, its stderr read as it
    comes (each line with the time it arrived)."""

    def __init__(
        self, tmp_path: Path, args: list[str], site: Path | None = None, session: bool = False
    ) -> None:
        self.tag = uuid.uuid4().hex
        env = {**os.environ, TAG: self.tag}
        env.pop("LOCALQUEUE_STORE", None)
        path = [str(site)] if site else []
        env["PYTHONPATH"] = os.pathsep.join([*path, HARNESS_DIR, env.get("PYTHONPATH", "")])
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [LOCALQUEUE, "harness", "run", *args], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=session,
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self._out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.ended: float | None = None

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._out.append(self.proc.stdout.read())

    def wait(self, timeout: float) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the run did not exit within {timeout}s:\n{self.stderr}")
        self.ended = time.monotonic()
        for reader in self._readers:
            reader.join(10)
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def when(self, text: str) -> float:
        """When the first stderr line containing ``text`` arrived."""
        return next(at for at, line in self.lines if text in line)

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` processes besides the runner carry the tag."""
        give_up = time.monotonic() + timeout
        while len(tagged_processes(self.tag)) < count + 1:
            assert self.proc.poll() is None, self.stderr
            assert time.monotonic() < give_up, "the run's processes never started"
            time.sleep(0.1)

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        give_up = time.monotonic() + timeout
        while not any(text in line for _, line in self.lines):
            assert self.proc.poll() is None, self.stderr
            assert time.monotonic() < give_up, f"no {text!r} on stderr:\n{self.stderr}"
            time.sleep(0.1)

    def assert_nothing_left(self) -> None:
        # multiprocessing's resource tracker exits once it reads the end of
        # its pipe, just after the runner: a moment's grace.
        give_up = time.monotonic() + 10
        while (left := tagged_processes(self.tag)) and time.monotonic() < give_up:
            time.sleep(0.1)
        for pid in left:  # the test must not leak them either
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes of the run still alive: {left}"


def test_a_passing_run_exits_0_and_leaves_no_process(tmp_path: Path) -> None:
    run = Run(tmp_path, ["--store", f"sqlite://{tmp_path}/ok.sqlite3", "--mode", "throughput",
                         "--producers", "2", "--consumers", "2", "--messages", "300",
                         "--seed", "1", "--report", "ok.json"])  # fmt: skip
    assert run.wait(120) == 0, run.stdout + run.stderr
    assert "PASSED" in run.stdout
    run.assert_nothing_left()


@pytest.mark.slow
def test_a_store_that_loses_messages_fails_crash_recovery_fast_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    site = install_plugin(tmp_path, "losing_store", LOSING_PLUGIN)
    run = Run(tmp_path, ["--store", f"losing://{tmp_path}/loses.sqlite3", "--mode",
                         "crash-recovery", "--producers", "2", "--consumers", "2",
                         "--messages", "600", "--kills", "3", "--seed", "5",
                         "--report", "loses.json"], site=site)  # fmt: skip
    assert run.wait(180) == 1, run.stdout + run.stderr
    assert run.ended is not None
    report = json.loads((tmp_path / "loses.json").read_text())
    assert report["lost"] >= 50 and report["passed"] is False
    assert report["invariants"]["every confirmed put was acked (0 lost)"] is False
    assert "FAIL every confirmed put was acked (0 lost)" in run.stdout
    # The loss is detectable once every put is confirmed and the queue is
    # drained: from the start of the drain to the exit, a few seconds
    # (consumers stop after 3 s with nothing to get, then one drainer).
    assert run.ended - run.when("draining") < 30, run.stderr
    print(f"drain to exit: {run.ended - run.when('draining'):.1f}s, "
          f"whole run: {run.ended - run.started:.1f}s")  # fmt: skip
    run.assert_nothing_left()


def test_a_run_past_its_deadline_is_stopped_and_leaves_no_process(tmp_path: Path) -> None:
    # Consumers whose claims never return: without the deadline the run
    # (and its consumers) would go on for an hour.
    site = install_plugin(tmp_path, "hanging_store", HANGING_PLUGIN)
    run = Run(tmp_path, ["--store", f"hanging://{tmp_path}/hangs.sqlite3", "--mode",
                         "throughput", "--producers", "1", "--consumers", "2",
                         "--messages", "20", "--deadline", "8", "--seed", "2",
                         "--report", "hangs.json"], site=site)  # fmt: skip
    assert run.wait(120) == 1, run.stdout + run.stderr
    assert run.ended is not None
    assert run.ended - run.started < 8 + 20, run.stderr  # the deadline, then seconds
    assert "FAIL finished in time" in run.stdout
    report = json.loads((tmp_path / "hangs.json").read_text())
    assert report["invariants"]["finished in time"] is False
    assert any("deadline passed" in note for note in report["notes"])
    run.assert_nothing_left()


@pytest.mark.parametrize(
    ("signum", "code", "to_group"),
    [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    # Ctrl-C in a terminal reaches the whole foreground process group;
    # `kill PID` reaches the runner alone.
    ids=["SIGINT-to-the-group", "SIGTERM-to-the-runner"],
)
def test_a_signal_stops_the_run_and_leaves_no_process(
    tmp_path: Path, signum: signal.Signals, code: int, to_group: bool
) -> None:
    run = Run(tmp_path, ["--store", f"sqlite://{tmp_path}/long.sqlite3", "--mode",
                         "crash-recovery", "--producers", "2", "--consumers", "2",
                         "--messages", "200000", "--kills", "1000", "--seed", "3"],
              session=to_group)  # fmt: skip
    run.wait_for_workers(4)
    run.wait_for_line("kill 3/1000")  # busy: processes killed and replaced
    sent = time.monotonic()
    if to_group:
        os.killpg(run.proc.pid, signum)
    else:
        run.proc.send_signal(signum)
    assert run.wait(60) == code, run.stdout + run.stderr
    assert run.ended is not None and run.ended - sent < 15, run.stderr
    assert f"interrupted by {signum.name}" in run.stderr
    assert "every process of the run was stopped" in run.stderr
    assert "Traceback" not in run.stderr  # no child complains on its way out
    run.assert_nothing_left()


def test_the_restart_command_runs_mid_run_and_is_reported(tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    secret = "postgresql://app:s3cr3t-pw@db.example/app"
    command = f"echo {secret} > {marker}"
    run = Run(tmp_path, ["--store", f"sqlite://{tmp_path}/r.sqlite3", "--mode",
                         "crash-recovery", "--producers", "2", "--consumers", "2",
                         "--messages", "300", "--kills", "2", "--seed", "8",
                         "--restart-cmd", command, "--report", "r.json"])  # fmt: skip
    assert run.wait(120) == 0, run.stdout + run.stderr
    assert marker.read_text().strip() == secret  # it ran, through the shell
    report = json.loads((tmp_path / "r.json").read_text())
    [restart] = report["restarts"]
    assert restart["exit_status"] == 0 and restart["started_s"] > 0
    assert restart["command"] == f"echo postgresql://app:***@db.example/app > {marker}"
    assert report["invariants"]["the restart command succeeded (exit status 0)"] is True
    assert "restart: running echo postgresql://app:***@db.example/app" in run.stderr
    assert "exited with status 0" in run.stderr
    assert "restart command ran at" in run.stdout and "exit status 0" in run.stdout
    for text in (run.stdout, run.stderr, json.dumps(report)):
        assert "s3cr3t-pw" not in text
    run.assert_nothing_left()


def test_a_failing_restart_command_fails_the_run(tmp_path: Path) -> None:
    run = Run(tmp_path, ["--store", f"sqlite://{tmp_path}/f.sqlite3", "--mode", "throughput",
                         "--producers", "1", "--consumers", "1", "--messages", "100",
                         "--seed", "8", "--restart-cmd", "echo cannot restart; exit 3",
                         "--report", "f.json"])  # fmt: skip
    assert run.wait(120) == 1, run.stdout + run.stderr
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["restarts"][0]["exit_status"] == 3
    assert report["invariants"]["the restart command succeeded (exit status 0)"] is False
    assert report["lost"] == 0  # the run itself went on and lost nothing
    assert "exited with status 3" in run.stderr and "| cannot restart" in run.stderr
    run.assert_nothing_left()


def test_restart_cmd_is_refused_in_stateful_mode(tmp_path: Path) -> None:
    run = Run(tmp_path, ["--store", "memory://x", "--restart-cmd", "true"])
    assert run.wait(60) == 2
    assert "--restart-cmd needs --mode throughput or crash-recovery" in run.stderr


def test_a_command_line_is_printed_without_passwords() -> None:
    url = "postgresql://app:hunter2@db/app"
    shown = redact_command(f"PGPASSWORD=hunter2 restart-db --url {url} 'sqlite:///tmp/q.db'", url)
    assert "hunter2" not in shown
    assert "postgresql://app:***@db/app" in shown and "sqlite:///tmp/q.db" in shown


def test_a_restart_command_that_outlives_the_deadline_is_killed(tmp_path: Path) -> None:
    run = Run(tmp_path, ["--store", f"sqlite://{tmp_path}/s.sqlite3", "--mode", "throughput",
                         "--producers", "1", "--consumers", "1", "--messages", "100",
                         "--seed", "8", "--deadline", "6", "--restart-cmd", "sleep 600 & wait",
                         "--report", "s.json"])  # fmt: skip
    assert run.wait(120) == 1, run.stdout + run.stderr
    assert run.ended is not None and run.ended - run.started < 6 + 20, run.stderr
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["restarts"][0]["exit_status"] is None
    assert report["invariants"]["finished in time"] is False
    assert "killed at the deadline" in run.stderr
    run.assert_nothing_left()  # the shell and its sleep included


def test_the_command_line_default_and_longest_deadline_are_the_runner_s() -> None:
    # cli_plugin keeps its own copy: it must not import the runner at start-up.
    from localqueue_harness import cli_plugin, runner

    assert cli_plugin.DEFAULT_DEADLINE == runner.DEFAULT_DEADLINE == 600
    assert cli_plugin.MAX_DEADLINE == runner.MAX_DEADLINE == 7 * 86400
