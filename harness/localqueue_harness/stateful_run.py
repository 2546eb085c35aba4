"""``localqueue harness run --mode stateful``: the state machine on a store
URL, with a failure a person can act on.

A failure is reported as

* the failing check in words (the contract assertion's message and where it
  is), or, when the store itself raised, that exception with its traceback
  (the frames of Hypothesis's own machinery left out);
* the shrunk sequence of steps that reproduces it (Hypothesis attaches them
  to the exception as notes; anything it prints through its reporter is
  kept too);
* the command that replays the run (``--seed``), with the store URL
  redacted: the person replaying puts the real password back in.

A store whose behaviour depends on more than the steps (it raises once
data from earlier examples piled up, say) makes Hypothesis give up with an
error of its own (``FlakyStrategyDefinition``, ``FlakyFailure``): the run
reports the store's exception underneath instead, and says why there are
no shrunk steps.
"""

from __future__ import annotations

import re
import shlex
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from localqueue.store import open_store, redact_url
from localqueue_harness.runner import Report, redact_command

if TYPE_CHECKING:
    from localqueue.clock import ManualClock
    from localqueue.store import Store

STEP_COUNT = 40


def replay_command(url: str, examples: int, seed: int) -> str:
    """The command that runs the same examples again; the URL redacted."""
    return shlex.join(
        ["localqueue", "harness", "run", "--store", redact_url(url), "--mode", "stateful",
         "--examples", str(examples), "--seed", str(seed)]
    )  # fmt: skip


def run_stateful(
    url: str,
    examples: int,
    seed: int,
    *,
    opener: Callable[[ManualClock | None], Store] | None = None,
) -> Report:
    """Run ``examples`` state-machine examples on ``url`` with Hypothesis's
    seed set to ``seed`` (``opener`` replaces ``open_store(url, clock=...)``,
    for tests)."""
    import hypothesis.core as hypothesis_core
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.reporting import with_reporter
    from hypothesis.stateful import run_state_machine_as_test

    from localqueue_harness.contract import clock_refusal
    from localqueue_harness.state_machine import machine_for

    def default_opener(clock: ManualClock | None) -> Store:
        return open_store(url, clock=clock)

    report = Report(url, "stateful", seed, 0, 0, 0)
    store_opener = opener or default_opener
    # A store that keeps its own time runs the machine without moving time.
    own_clock = clock_refusal(store_opener) is not None
    printed: list[str] = []
    # The same switch as pytest's --hypothesis-seed: one seed, one sequence of examples.
    previous = hypothesis_core.global_force_seed
    hypothesis_core.global_force_seed = seed  # type: ignore[assignment]
    try:
        with with_reporter(lambda value: printed.append(str(value))):
            run_state_machine_as_test(
                machine_for(store_opener, own_clock=own_clock),
                settings=settings(
                    max_examples=examples,
                    stateful_step_count=STEP_COUNT,
                    deadline=None,
                    derandomize=False,
                    database=None,
                    report_multiple_bugs=False,
                    # The replay command we print is the way to reproduce;
                    # Hypothesis's own blob (on by default where CI is set)
                    # would only add a decorator hint for a test we own.
                    print_blob=False,
                    # Shrinking gives the steps; the explain phase (which
                    # marks values as "any other generated value") would take
                    # three times as long again.
                    phases=[phase for phase in Phase if phase is not Phase.explain],
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
        report.invariants = {"the store agrees with the contract model": True}
    except Exception as exc:  # an assertion, a store error, or Hypothesis giving up
        _describe(report, exc, printed, url)
        report.replay = replay_command(url, examples, seed)
        if redact_url(url) != url:
            report.notes.append(
                "the replay command shows the store URL redacted: put the real password "
                "in place of *** (or give the URL through LOCALQUEUE_STORE)"
            )
    finally:
        hypothesis_core.global_force_seed = previous
    return report


def _describe(report: Report, exc: BaseException, printed: list[str], url: str) -> None:
    from hypothesis.errors import HypothesisException

    def clean(text: str) -> str:
        return redact_command(text, url)

    cause, hypothesis_error = _underlying(exc)
    # The notes first; failing them, what Hypothesis printed (where it gave
    # up replaying, it prints the steps under a heading instead).
    steps = _steps(cause) or _steps(exc) or _step_lines(printed)
    report.steps = [clean(line) for line in steps]
    step = next((line.strip() for line in reversed(steps) if _is_rule(line)), None)
    where = f" in the step {step}" if step else ""
    if isinstance(cause, AssertionError):
        check = (str(cause).splitlines() or ["(an assertion without a message)"])[0]
        origin = traceback.extract_tb(cause.__traceback__)[-1:]
        # The function too: when Hypothesis could not replay the failure,
        # the steps may not show the rule it failed in.
        place = f" (in {origin[0].name}, {origin[0].filename}:{origin[0].lineno})" if origin else ""
        report.failure = clean(f"the contract check failed: {check}{where}{place}")
        name = f"the store agrees with the contract model ({clean(check)})"
    elif isinstance(cause, HypothesisException) or cause is None:
        # Hypothesis failed with nothing underneath: say what it said.
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        report.failure = clean(f"Hypothesis stopped the run: {type(exc).__name__}: {first}")
        name = f"the store agrees with the contract model ({clean(first)})"
    else:
        first = (str(cause).splitlines() or [""])[0]
        report.failure = clean(f"the store raised {type(cause).__name__}: {first}{where}")
        report.traceback = clean(_traceback(cause))
        name = f"the store raised no error ({type(cause).__name__}: {clean(first)})"
    if hypothesis_error is not None and cause is not exc:
        report.notes.append(
            f"Hypothesis could not replay the failure the same way ({type(exc).__name__}): "
            "the store's behaviour depends on more than the steps (data left by earlier "
            "examples, time, another process); the steps shown may not reproduce it alone"
        )
    report.invariants = {name: False}


def _underlying(exc: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """The exception behind ``exc`` that is not Hypothesis's own, and the
    Hypothesis error that wrapped it (if any)."""
    from hypothesis.errors import HypothesisException

    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    wrapper: BaseException | None = None
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        group = getattr(current, "exceptions", None)  # an exception group (3.11+)
        if isinstance(group, tuple):
            wrapper = wrapper or current
            todo.extend(e for e in group if isinstance(e, BaseException))
        elif isinstance(current, HypothesisException):
            wrapper = wrapper or current
        else:
            return current, wrapper
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None, wrapper


# Lines of Hypothesis's output that introduce steps and are none: a
# capitalised phrase ending in a colon, or one of the headings that go on
# after it on the same line.
_HEADING = re.compile(r"[A-Z][\w ,'-]*:")
_HEADINGS = ("Failing test case", "Falsifying example", "Steps ")


def _steps(exc: BaseException | None) -> list[str]:
    """The steps Hypothesis attached to ``exc`` as notes, one step a line."""
    return _step_lines(getattr(exc, "__notes__", None) or [])


def _step_lines(chunks: list[str]) -> list[str]:
    """The steps in ``chunks`` of Hypothesis's output (notes, or what it
    printed), one step a line: a step printed over several lines is joined,
    its "# or any other generated value" comments dropped, and headings
    ("Falsifying example:", "Steps leading up to this error:") are no steps."""
    steps: list[str] = []
    for note in chunks:
        if note.startswith(("Explanation:", "You can reproduce this test case")):
            break
        for line in str(note).splitlines():
            text = re.sub(r"\s*# or any other generated value", "", line).strip()
            if not text or _HEADING.fullmatch(text) or text.startswith(_HEADINGS):
                continue
            if steps and not text.startswith(("state", "Draw ")):
                steps[-1] = (steps[-1] + text if steps[-1].endswith(("(", "[")) else
                             f"{steps[-1]} {text}")  # fmt: skip
            else:
                steps.append(text)
    return [re.sub(r"([(\[]) | ([)\]])", r"\1\2", step) for step in steps]


def _is_rule(line: str) -> bool:
    line = line.strip()
    return line.startswith("state.") and not line.startswith("state.teardown")


def _traceback(exc: BaseException) -> str:
    """``exc`` with its traceback, Hypothesis's frames left out."""
    tb = traceback.TracebackException.from_exception(exc, capture_locals=False)
    tb.stack = traceback.StackSummary.from_list(
        [
            frame
            for frame in tb.stack
            if "/hypothesis/" not in frame.filename and frame.filename != __file__
        ]
    )
    if getattr(tb, "__notes__", None):  # 3.11+
        tb.__dict__["__notes__"] = None  # the steps are shown on their own
    return "".join(tb.format(chain=False)).rstrip()
