"""``localqueue harness run --mode stateful`` reports a failure a person can
act on (issue 14, item 2): the failing check in words, the shrunk steps,
the command that replays it; a store's own exception as that exception with
its traceback, never as a Hypothesis internals error; and no password in
any of it (item 7).

The broken stores are registered under test URL schemes through the plugin
manager, as an installed plugin would register them.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from localqueue.cli import build_cli
from localqueue.clock import Clock
from localqueue.plugins import get_plugin_manager
from localqueue.store import EnqueueResult, Lease, NewMessage, StoreScheme, hookimpl
from localqueue.stores.memory import MemoryStore

PASSWORD = "s3cr3t-pw"


class AcceptsStaleReceipts(MemoryStore):
    """Broken on purpose: acks whatever lease it is given."""

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        with self._data.changed:
            for lease in leases:
                row = self._data.rows.get(lease.id)
                if row is not None:
                    self._delete(row)
        return []


class FullAfterTwoPuts(MemoryStore):
    """Raises from its third enqueue into the checked queue on: the same
    steps, the same error (the counter lives in the store, which the state
    machine opens afresh for each example)."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        super().__init__(url, clock=clock)
        self.puts = 0

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        if queue == "contract":
            self.puts += 1
            if self.puts > 2:
                raise OSError(28, f"no space left for the queue at postgresql://app:{PASSWORD}@db")
        return super().enqueue(queue, messages)


class FullAfterAWhile(MemoryStore):
    """Raises once enough puts piled up over the whole run: its failure
    depends on earlier examples, which makes Hypothesis give up with
    FlakyStrategyDefinition when it tries to replay it."""

    puts = 0

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        if queue == "contract":
            FullAfterAWhile.puts += 1
            if FullAfterAWhile.puts > 3:
                raise RuntimeError("disk full")
        return super().enqueue(queue, messages)


class BrokenSchemes:
    @hookimpl
    def localqueue_store_schemes(self) -> list[StoreScheme]:
        def factory(cls: Any) -> Any:
            # Every URL of a scheme opens the same named memory store: a
            # reopen sees the same data.
            return lambda url, *, clock=None: cls(f"memory://{cls.__name__}", clock=clock)

        return [
            StoreScheme("stale", factory(AcceptsStaleReceipts)),
            StoreScheme("full", factory(FullAfterTwoPuts)),
            StoreScheme("fills", factory(FullAfterAWhile)),
        ]


@pytest.fixture(autouse=True)
def broken_schemes() -> Iterator[None]:
    FullAfterAWhile.puts = 0
    manager = get_plugin_manager()
    manager.register(BrokenSchemes(), name="test-broken-schemes")
    yield
    manager.unregister(name="test-broken-schemes")


def harness_run(tmp_path: Path, url: str, *extra: str) -> tuple[Result, dict[str, Any]]:
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        build_cli(),
        ["harness", "run", "--store", url, "--examples", "60", "--seed", "7",
         "--report", str(report), *extra],
    )  # fmt: skip
    return result, json.loads(report.read_text())


def no_password(result: Result, document: dict[str, Any]) -> None:
    for text in (result.stdout, result.stderr, json.dumps(document)):
        assert PASSWORD not in text


def test_a_contract_failure_prints_the_check_the_steps_and_the_replay(tmp_path: Path) -> None:
    url = f"stale://app:{PASSWORD}@db/queue"
    result, document = harness_run(tmp_path, url)
    assert result.exit_code == 1, result.output
    out = result.stdout
    # The check and the step in words (which check catches this store first
    # is the state machine's business: any contract check will do).
    assert re.search(r"the contract check failed: .+ in the step state\.\w+\(", out), out
    assert "Shrunk steps that reproduce it:" in out
    assert "  state = StoreStateMachine()" in out
    replay = "localqueue harness run --store 'stale://app:***@db/queue' --mode stateful"
    assert f"{replay} --examples 60 --seed 7" in out
    assert "put the real password in place of ***" in out
    assert document["steps"][0] == "state = StoreStateMachine()"
    assert document["steps"][-1] == "state.teardown()"
    assert document["failure"].startswith("the contract check failed")
    assert document["replay"] == f"{replay} --examples 60 --seed 7"
    assert document["traceback"] is None
    no_password(result, document)


def test_the_replay_command_reproduces_the_same_steps(tmp_path: Path) -> None:
    first, document = harness_run(tmp_path, "stale://queue")
    assert first.exit_code == 1
    argv = shlex.split(document["replay"])[1:]  # without "localqueue"
    again = CliRunner().invoke(build_cli(), [*argv, "--report", str(tmp_path / "again.json")])
    assert again.exit_code == 1
    replayed = json.loads((tmp_path / "again.json").read_text())["steps"]

    def rules(steps: list[str]) -> list[str]:
        # Drawn leases name message ids and receipts, which differ from run
        # to run of the same steps.
        return [step for step in steps if step.startswith("state")]

    assert rules(replayed) == rules(document["steps"])
    assert len(replayed) == len(document["steps"])


def test_a_store_exception_is_reported_with_its_traceback(tmp_path: Path) -> None:
    result, document = harness_run(tmp_path, f"full://app:{PASSWORD}@db/queue")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "the store raised OSError: [Errno 28] no space left for the queue" in out
    assert "The store's exception:" in out and "Traceback (most recent call last):" in out
    assert "in enqueue" in out  # the store's own frame
    assert "hypothesis" not in document["traceback"].lower()
    assert document["steps"][-2].startswith("state.put(")  # the third put, then teardown
    assert "Flaky" not in out
    assert document["invariants"] == {
        "the store raised no error (OSError: [Errno 28] no space left for the queue at "
        "postgresql://app:***@db)": False
    }
    no_password(result, document)


def test_a_store_failing_on_earlier_examples_data_is_no_hypothesis_internals_error(
    tmp_path: Path,
) -> None:
    result, document = harness_run(tmp_path, "fills://queue")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "the store raised RuntimeError: disk full" in out
    assert "Traceback (most recent call last):" in out and "RuntimeError: disk full" in out
    assert "FAIL the store raised no error (RuntimeError: disk full)" in out
    # What Hypothesis said is explained, not shown as the failure.
    assert "Inconsistent data generation" not in out
    assert any("could not replay the failure the same way" in note for note in document["notes"])
    assert "--seed 7" in document["replay"]


def test_a_passing_stateful_run_prints_no_failure_sections(tmp_path: Path) -> None:
    result, document = harness_run(tmp_path, "memory://fine", "--examples", "10")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and "Replay" not in result.stdout
    assert document["steps"] == [] and document["failure"] is None


def test_the_steps_leave_out_hypothesis_s_reproduce_blob() -> None:
    """Where a CI variable is set Hypothesis adds a "You can reproduce this
    test case ... @reproduce_failure" note after the steps; the report's
    replay command is the way to reproduce, so the note is not a step."""
    from localqueue_harness.stateful_run import _steps

    error = AssertionError("diverged")
    error.__notes__ = [  # type: ignore[attr-defined]  # what add_note() (3.11+) builds
        "Falsifying example:\nstate = StoreStateMachine()\nstate.put(n=1)",
        "state.teardown()",
        "You can reproduce this test case by temporarily adding "
        "@reproduce_failure('6.170.27', b'AXic') as a decorator on your test function",
    ]
    assert _steps(error) == ["state = StoreStateMachine()", "state.put(n=1)", "state.teardown()"]


class DropsEverySeventhClaim(MemoryStore):
    """Broken on purpose: deletes every 7th message it hands out, counted
    over the whole run (so that a failure depends on earlier examples, and
    Hypothesis may give up replaying it)."""

    claimed = 0

    def claim(self, queue: str, **options: Any) -> Any:
        result = super().claim(queue, **options)
        for record in result.leased:
            DropsEverySeventhClaim.claimed += 1
            if DropsEverySeventhClaim.claimed % 7 == 0:
                with self._data.changed:
                    row = self._data.rows.get(record.id)
                    if row is not None:
                        self._delete(row)
        return result


def test_every_assert_of_the_state_machine_says_which_clause_broke() -> None:
    """Outside pytest no assertion is rewritten: an assert without a message
    would be reported as "(an assertion without a message)"."""
    import ast

    from localqueue_harness import state_machine

    source = Path(state_machine.__file__).read_text()
    bare = [
        f"line {node.lineno}: {ast.get_source_segment(source, node)}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assert) and node.msg is None
    ]
    assert bare == [], "asserts without a message in state_machine.py:\n" + "\n".join(bare)


def test_a_failed_dead_letter_in_the_first_puts_is_reported_in_words() -> None:
    """The case a review found: the store dropped the message the first
    puts' claim had just leased, and the dead-letter that follows failed a
    bare assert."""
    from localqueue_harness.state_machine import machine_for

    machine = machine_for(lambda clock: DropsEverySeventhClaim("memory://drops-first", clock=clock))
    state = machine()
    try:
        # The claim in first_puts hands out the 7th message of the run.
        DropsEverySeventhClaim.claimed = 6
        with pytest.raises(AssertionError) as failure:
            state.first_puts([(0.0, 0, None), (0.0, 0, None)], one_dead=True)
    finally:
        state.teardown()
    # The first line is what the report shows (under pytest, rewritten
    # assertions add the values below it).
    first = str(failure.value).splitlines()[0]
    assert first == "dead_letter must act on the lease a claim just handed out"


def test_a_heading_hypothesis_printed_is_no_step() -> None:
    """Where Hypothesis gives up replaying a failure (FlakyStrategyDefinition)
    it attaches no steps as notes but prints them under a heading: the
    heading is not reported as a step."""
    from localqueue_harness.runner import Report
    from localqueue_harness.stateful_run import _describe

    report = Report("memory://x", "stateful", 2, 0, 0, 0)
    printed = ["Steps leading up to this error:\n  state = StoreStateMachine()\n  state.teardown()"]
    _describe(report, AssertionError("claim must lease at most limit messages"), printed, "x://")
    assert report.steps == ["state = StoreStateMachine()", "state.teardown()"]
    assert report.failure is not None
    assert report.failure.startswith(
        "the contract check failed: claim must lease at most limit messages"
    )


def test_a_store_dropping_every_seventh_claim_gets_a_worded_check(tmp_path: Path) -> None:
    DropsEverySeventhClaim.claimed = 0
    manager = get_plugin_manager()

    class DropsScheme:
        @hookimpl
        def localqueue_store_schemes(self) -> list[StoreScheme]:
            def opener(url: str, *, clock: Clock | None = None) -> MemoryStore:
                return DropsEverySeventhClaim("memory://drops", clock=clock)

            return [StoreScheme("drops", opener)]

    manager.register(DropsScheme(), name="test-drops-scheme")
    try:
        # Seed 2 made Hypothesis give up replaying, with a bare assert of
        # first_puts as the failure; which check fails first is the state
        # machine's business, and every one must be in words.
        result, document = harness_run(tmp_path, "drops://queue", "--seed", "2")
    finally:
        manager.unregister(name="test-drops-scheme")
    assert result.exit_code == 1, result.output
    # Bare, an assert reads "(an assertion without a message)" on the command
    # line, and "assert ..." here, where pytest rewrites the harness's asserts.
    assert "(an assertion without a message)" not in result.stdout
    assert re.match(r"the contract check failed: (?!assert )\w+ ", document["failure"]), document
    assert not any(step.endswith(":") for step in document["steps"]), document["steps"]
    assert "Steps leading up" not in result.stdout
