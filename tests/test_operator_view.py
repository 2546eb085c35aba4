"""What an operator sees: whether an add was a dedupe hit, the circuit
breaker opening and closing, the stderr and exit codes of failed commands
among the dead letters, and handler tracebacks without localqueue's frames."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from localqueue import ManualClock, Message, PersistentQueue, hookimpl
from localqueue import plugins as host
from localqueue.cli import build_cli
from localqueue.message import error_info
from localqueue.observability import events
from localqueue.observability.events import EVENT_TYPES, Event
from localqueue.policies import breaker
from localqueue.spec import PersistentWorkerConfig
from localqueue.store import ErrorInfo
from localqueue.stores.sqlite import SQLiteStore
from localqueue.worker import persistent_worker
from localqueue.worker.hook_types import JobOutcome, Outcome, WorkerView

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "localqueue"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ops.sqlite3"
    monkeypatch.setenv("LOCALQUEUE_STORE", str(path))
    return path


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(build_cli(), list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def doc(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def queue(db: Path, name: str = "jobs") -> PersistentQueue:
    return PersistentQueue(name, store=SQLiteStore(db))


# -- a. add says whether the message was new ------------------------------------------


def test_put_many_results_tells_new_messages_from_dedupe_hits() -> None:
    q = PersistentQueue("q", store="memory://")
    first = q.put_many_results(["a", "b"], dedupe_keys=["k1", None])
    assert [added for _, added in first] == [True, True]
    again = q.put_many_results(["a2", "c", "d"], dedupe_keys=["k1", "k2", "k2"])
    assert [added for _, added in again] == [False, True, False]
    assert again[0][0].id == first[0][0].id and again[0][0].value == "a"
    assert again[2][0].id == again[1][0].id
    assert all(m.receipt is None for m, _ in again)
    plain = q.put_many_results([1, 2])
    assert [added for _, added in plain] == [True, True]
    assert [m.value for m, _ in plain] == [1, 2]
    assert q.stats().total == 5


def test_add_says_whether_it_added_or_found_the_dedupe_key(db: Path) -> None:
    first = doc("queue", "add", "jobs", "--value", '{"n": 1}', "--dedupe-key", "order-7")
    assert first["created"] is True and first["deduplicated"] is False
    assert first["dedupe_key"] == "order-7"
    again = doc("queue", "add", "jobs", "--value", '{"n": 2}', "--dedupe-key", "order-7")
    assert again["id"] == first["id"]
    assert again["created"] is False and again["deduplicated"] is True
    plain = doc("queue", "add", "jobs", "--value", "3")
    assert set(plain) == {"queue", "id", "state"}  # without a key every add creates one
    # Text: the id stays alone on stdout (scripts capture it); the note goes to stderr.
    text = ok("queue", "add", "jobs", "--value", "4", "--dedupe-key", "order-7")
    assert text.stdout.strip() == str(first["id"])
    assert f"already queued as #{first['id']} (dedupe key order-7)" in text.stderr
    fresh = ok("queue", "add", "jobs", "--value", "5", "--dedupe-key", "order-8")
    assert fresh.stderr == "" and int(fresh.stdout) > first["id"]
    assert queue(db).stats().total == 3


# -- b. the breaker's openings and closings ---------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def localqueue_event(self, event: Event) -> None:
        self.events.append(event)

    def breaker_events(self) -> list[Event]:
        return [e for e in self.events if e.kind.startswith("breaker_")]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.setenv("LOCALQUEUE_PLUGINS", "")  # installed observers stay out of the count
    host.reset_plugin_manager()
    rec = Recorder()
    host.get_plugin_manager().register(rec, name="recorder")
    yield rec
    host.get_plugin_manager().unregister(name="recorder")


def finished(worker: WorkerView, kind: Outcome, at: float, message: Message) -> JobOutcome:
    return JobOutcome(worker, message, kind, None, at, at)


def test_breaker_opening_and_closing_are_events_and_log_lines(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    config = PersistentWorkerConfig("q", breaker_threshold=2, breaker_cooldown=30)
    worker = WorkerView("w1", "q", config, clock)
    message = PersistentQueue("q", store="memory://").put("x")
    caplog.set_level(logging.INFO, logger="localqueue.worker")

    def job(kind: Outcome) -> None:
        breaker.localqueue_job_finished(finished(worker, kind, clock.now(), message))

    job(Outcome.RELEASED)
    assert recorder.breaker_events() == []  # one failure: still closed
    job(Outcome.DEAD)
    [opened] = recorder.breaker_events()
    assert isinstance(opened, events.BreakerOpened)
    assert (opened.queue, opened.worker_id, opened.message_id) == ("q", "w1", message.id)
    assert opened.failures == 2 and opened.cooldown == 30
    assert opened.open_until == pytest.approx(clock.now() + 30)
    assert opened.as_dict()["event"] == "breaker_opened"
    clock.advance(30)
    job(Outcome.RELEASED)  # the half-open trial failed: open again
    assert [e.kind for e in recorder.breaker_events()] == ["breaker_opened", "breaker_opened"]
    assert recorder.breaker_events()[-1].failures == 3  # type: ignore[attr-defined]
    clock.advance(30)
    job(Outcome.ACKED)
    closed = recorder.breaker_events()[-1]
    assert isinstance(closed, events.BreakerClosed) and closed.message_id == message.id
    job(Outcome.ACKED)  # already closed: nothing more
    assert len(recorder.breaker_events()) == 3
    lines = [r for r in caplog.records if r.name == "localqueue.worker"]
    assert [("opened" in r.getMessage(), "closed" in r.getMessage()) for r in lines] == [
        (True, False),
        (True, False),
        (False, True),
    ]
    assert "2 consecutive failures" in lines[0].getMessage()
    assert "'q'" in lines[0].getMessage() and "w1" in lines[0].getMessage()


def test_a_real_worker_sends_breaker_opened(recorder: Recorder, tmp_path: Path) -> None:
    q = PersistentQueue("jobs", store=f"sqlite://{tmp_path}/q.db")
    q.put_many([1, 2, 3])

    @persistent_worker(q, breaker_threshold=2, breaker_cooldown=0.05, handle_signals=False)
    def handle(value: int) -> None:
        if value < 3:
            raise RuntimeError("down")

    handle.run(max_jobs=3)
    assert [e.kind for e in recorder.breaker_events()] == ["breaker_opened", "breaker_closed"]
    q.close()


def test_the_breaker_events_are_documented() -> None:
    observability = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    workers = (ROOT / "docs" / "workers.md").read_text(encoding="utf-8")
    for kind in (events.BreakerOpened, events.BreakerClosed):
        assert kind in EVENT_TYPES
        assert f"| `{kind.kind}` | `{kind.__name__}` |" in observability
        assert f"`{kind.kind}`" in workers


# -- c. failed commands among the dead letters ------------------------------------------


def command_failed(code: int, stderr: str, stdout: str = "") -> ErrorInfo:
    """The error text exec_handler records for a command that exited non-zero."""
    return ErrorInfo(
        "CommandFailed",
        f"command exited with code {code}; stdout tail: {stdout!r}; stderr tail: {stderr!r}",
    )


def command_dead_letters(db: Path) -> PersistentQueue:
    q = queue(db)
    q.put_many(["a", "b", "c", "d", "e"])
    errors: list[ErrorInfo | BaseException] = [
        command_failed(3, "warming up\nmailbox a@example.com does not exist\n"),
        command_failed(3, "mailbox b@example.com does not exist\n", stdout="o'k"),
        command_failed(1, "x" * 300 + "\nTraceback...\nKeyError: 'to'\n"),
        ErrorInfo(
            "CommandFailed",
            "command timed out after 5s and was killed; stdout tail: ''; stderr tail: 'slow'",
        ),
        ValueError("not a command"),
    ]
    for message, error in zip(q.get_many(5, block=False), errors, strict=True):
        q.dead_letter(message, error=error)
    return q


def test_dead_shows_the_stderr_tail_of_failed_commands(db: Path) -> None:
    command_dead_letters(db)
    lines = ok("queue", "dead", "jobs").stdout.splitlines()
    assert "stderr tail" in lines[0]
    assert "mailbox a@example.com does not exist" in lines[1]
    assert "warming up" not in lines[1]  # the end of stderr: its last line
    assert "CommandFailed: exit code 3" in lines[1]
    assert "mailbox b@example.com does not exist" in lines[2]
    assert "KeyError: 'to'" in lines[3]
    assert "CommandFailed: timed out after 5s" in lines[4] and "slow" in lines[4]
    assert "ValueError: not a command" in lines[5]
    listing = doc("queue", "dead", "jobs")["messages"]
    assert listing[0]["command"] == {
        "exit_code": 3,
        "timed_out": False,
        "stdout_tail": "",
        "stderr_tail": "warming up\nmailbox a@example.com does not exist\n",
    }
    assert listing[1]["command"]["stdout_tail"] == "o'k"
    assert listing[3]["command"]["timed_out"] is True
    assert listing[3]["command"]["exit_code"] is None
    assert listing[4]["command"] is None


def test_tables_show_control_characters_as_escapes(db: Path) -> None:
    # A failed command's stderr (or any error message) may hold terminal
    # escape sequences: clearing the screen, setting the window title.
    q = queue(db)
    q.put_many(["a", "b"])
    first, second = q.get_many(2, block=False)
    q.dead_letter(first, error=command_failed(4, "ok\x1b[2J\x1b]0;pwned\x07FAKE\n"))
    q.dead_letter(second, error=ValueError("bad \x1b[31mred\x9b"))
    out = ok("queue", "dead", "jobs").stdout
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "\\x1b[2J\\x1b]0;pwned\\x07FAKE" in out
    assert "bad \\x1b[31mred\\x9b" in out


def test_dead_summary_groups_by_exit_code(db: Path) -> None:
    command_dead_letters(db)
    assert doc("queue", "dead", "jobs", "--summary", "--by", "exit-code") == {
        "queue": "jobs",
        "dead": 5,
        "by_exit_code": {"3": 2, "1": 1, "timeout": 1, "none": 1},
    }
    assert doc("queue", "dead", "jobs", "--summary") == {
        "queue": "jobs",
        "dead": 5,
        "by_error_type": {"CommandFailed": 4, "ValueError": 1},
    }
    table = ok("queue", "dead", "jobs", "--summary", "--by", "exit-code").stdout
    assert table.splitlines()[0].split() == ["exit", "code", "count"]
    assert re.search(r"^3\s+2$", table, re.MULTILINE)
    refused = run("queue", "dead", "jobs", "--by", "exit-code")
    assert refused.exit_code == 2 and "--summary" in refused.stderr


def test_dead_reads_what_queue_exec_records(db: Path) -> None:
    q = queue(db)
    q.put("x")
    script = "echo out-line; echo first >&2; echo 'no route to host' >&2; exit 7"
    ok("queue", "exec", "jobs", "--until-empty", "--max-tries", "1", "--", "sh", "-c", script)
    [row] = ok("queue", "dead", "jobs").stdout.splitlines()[1:]
    assert "exit code 7" in row and "no route to host" in row
    assert doc("queue", "dead", "jobs", "--summary", "--by", "exit-code")["by_exit_code"] == {
        "7": 1
    }


# -- d. tracebacks without localqueue's frames ------------------------------------------


def frames(traceback: str) -> list[str]:
    return re.findall(r'^\s*File "([^"]+)"', traceback, re.MULTILINE)


def is_ours(path: str) -> bool:
    return Path(path).resolve().is_relative_to(PACKAGE)


def parse_order(value: Any) -> None:
    raise KeyError(f"no 'to' in {value!r}")


def test_the_recorded_traceback_leaves_out_localqueue_frames(db: Path) -> None:
    q = queue(db)
    q.put({"n": 1})

    @persistent_worker(q, max_retries=0, handle_signals=False)
    def handle(value: Any) -> None:
        parse_order(value)

    handle.run(until_empty=True)
    [dead] = q.dead_letters()
    assert dead.last_error is not None and dead.last_error.traceback is not None
    text = dead.last_error.traceback
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.rstrip().endswith("KeyError: \"no 'to' in {'n': 1}\"")
    assert frames(text) and not any(is_ours(f) for f in frames(text))
    assert [Path(f).name for f in frames(text)] == ["test_operator_view.py"] * 2
    shown = ok("queue", "inspect", "jobs", str(dead.id)).stdout
    assert "in parse_order" in shown and "runner.py" not in shown


def test_chained_errors_lose_the_plumbing_too(db: Path) -> None:
    q = queue(db)
    q.put(1)

    @persistent_worker(q, max_retries=0, handle_signals=False)
    def handle(value: int) -> None:
        try:
            parse_order(value)
        except KeyError as exc:
            raise RuntimeError("could not parse") from exc

    handle.run(until_empty=True)
    [dead] = q.dead_letters()
    assert dead.last_error is not None and dead.last_error.traceback is not None
    text = dead.last_error.traceback
    assert text.count("Traceback (most recent call last):") == 2
    assert "The above exception was the direct cause" in text
    assert text.rstrip().endswith("RuntimeError: could not parse")
    assert frames(text) and not any(is_ours(f) for f in frames(text))
    assert "in handle" in text and "in parse_order" in text


def test_the_event_loop_that_ran_an_async_handler_is_left_out() -> None:
    # A stand-in for the worker: code whose file is inside the localqueue
    # package, running the handler's coroutine on an event loop.
    worker_code = (
        "def drive(coroutine):\n"
        "    loop = asyncio.new_event_loop()\n"
        "    try:\n"
        "        return loop.run_until_complete(coroutine)\n"
        "    finally:\n"
        "        loop.close()\n"
    )
    namespace: dict[str, Any] = {"asyncio": asyncio}
    exec(compile(worker_code, str(PACKAGE / "worker" / "runner.py"), "exec"), namespace)

    async def handle(value: int) -> None:
        await asyncio.sleep(0)
        parse_order(value)

    with pytest.raises(KeyError) as raised:
        namespace["drive"](handle(1))
    original = raised.value.__traceback__
    assert original is not None
    # From the worker's frame on, as the worker would catch it.
    info = error_info(raised.value.with_traceback(original.tb_next), 1.0)
    assert info is not None and info.traceback is not None
    assert [Path(f).name for f in frames(info.traceback)] == ["test_operator_view.py"] * 2
    assert "in handle" in info.traceback and "asyncio" not in info.traceback


def test_a_real_worker_records_where_an_async_handler_raised() -> None:
    # The worker used to run a failed handler's task a second time, raising
    # its exception again from inside the worker: the stored traceback then
    # ended in asyncio, and the handler's own frames were gone.
    q = PersistentQueue("async-tb", store="memory://async-traceback")
    q.put(1)

    async def handle(value: int) -> None:
        await asyncio.sleep(0)
        parse_order(value)

    persistent_worker(q, max_retries=0, handle_signals=False)(handle).run(max_jobs=1)
    error = q.dead_letters()[0].last_error
    assert error is not None and error.traceback is not None
    assert [Path(f).name for f in frames(error.traceback)] == ["test_operator_view.py"] * 2
    assert "in handle" in error.traceback and "parse_order" in error.traceback


def test_a_traceback_of_only_localqueue_frames_is_kept() -> None:
    try:
        PersistentQueue("q", store="memory://", lease_timeout=-1)
    except ValueError as exc:
        caught = exc
    original = caught.__traceback__
    assert original is not None
    info = error_info(caught.with_traceback(original.tb_next), 1.0)  # without this test's frame
    assert info is not None and info.traceback is not None
    assert frames(info.traceback) and all(is_ours(f) for f in frames(info.traceback))
    # A user's frame around them: localqueue's frames it called into are kept
    # (they say where the call failed); only those around the user's code go.
    info = error_info(caught.with_traceback(original), 1.0)
    assert info is not None and info.traceback is not None
    assert Path(frames(info.traceback)[0]).name == "test_operator_view.py"
    assert any(is_ours(f) for f in frames(info.traceback))
