"""The shell sessions in docs/cli.md and docs/operations.md are run, and
their output is compared with what the docs show.

What counts as an example: every fenced code block of those files with at
least one line that starts with ``$ ``. Such a line is a command; the lines
after it, up to the next ``$ `` line or the end of the block, are the output
the docs claim. Blocks without a ``$ `` line (syntax summaries, unit files,
scripts, workers that run until stopped, cron lines) are not run, but every
``localqueue`` command line in them that is not a syntax summary is parsed
as the CLI would parse it, so that a renamed option or a refused value
fails here.

How a block runs: in a fresh temporary directory (the current directory)
with a fresh store, ``LOCALQUEUE_STORE`` set to ``queue.sqlite3`` in that
directory (a block may ``export`` its own), ``XDG_DATA_HOME`` inside it,
``LOCALQUEUE_PLUGINS`` empty so only the built-in plugins load (the output
does not depend on what else is installed; a block that needs a plugin
exports ``LOCALQUEUE_PLUGINS`` in its set-up), no other ``LOCALQUEUE_*``
variable from the outer environment, this interpreter's ``bin`` directory
first on ``PATH``, and ``PYTHONUNBUFFERED=1`` so stdout and stderr
interleave as they would on a terminal. All commands of a block run in one
``bash`` process, one after the other (so ``export``, pipes and redirections
work as in a shell); stdout and stderr are captured together, and a unique
separator printed after each command splits the output per command.

Only the built-in plugins are loaded because the core's tests must pass
with only the core installed (``nox -s tests-core``); for the same reason a
block must not need a plugin distribution.

Markers, as an HTML comment just before the fenced block (only blank lines
may come between; the comment does not show on the rendered page):

- ``<!-- docs-test setup: CMD; CMD -->``, or the same with one command per
  line over several lines: a bash script run first, in the same shell, with
  ``set -e`` (every command must succeed), whose output is not compared. It
  prepares what the block needs: messages, dead letters, an old file.
- ``<!-- docs-test file: NAME -->`` before a block that shows a file (the
  ``send-email`` script, ``handlers.py``): its text is written to NAME in
  every block's directory (executable if it starts with ``#!``), so the
  examples use the file the docs show, not a copy of it.
- ``<!-- docs-test skip: REASON -->``: the block is not run (it needs a
  PostgreSQL server, a terminal, Ctrl-C, ...). REASON is required, and the
  number of skipped blocks may not grow past ``MAX_SKIPPED``, so a new
  example is run unless someone decides otherwise.

Comparison: line by line, trailing whitespace and trailing blank lines
ignored, except for two wildcards in the documented output, for values that
change from run to run (times, ages, process ids in worker ids, versions):

- ``...`` inside a line matches any text within that line;
- a line that is only ``...`` (indentation aside) matches zero or more
  whole lines: the docs' way to elide long output.

Exit codes: every command must exit 0, unless its line ends with a shell
comment that says otherwise, ``# exits N`` (the reader sees it too, and
bash ignores it): then it must exit N. In a pipeline, the last command's
code counts, as in bash.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from localqueue.cli.app import build_cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("cli.md", "operations.md")
MAX_SKIPPED = 3
BLOCK_TIMEOUT = 60

FENCE = re.compile(r"^(`{3,}|~{3,})")
MARKER = re.compile(r"<!--\s*docs-test\s+(setup|skip|file)\s*:(.*?)-->", re.DOTALL)
EXIT_NOTE = re.compile(r"#\s*exits\s+(\d+)\s*$")


@dataclass
class Command:
    """One ``$ `` line and the output the docs show for it."""

    line: int
    text: str
    expected: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """What the command must exit with: 0, or N from a ``# exits N`` note."""
        note = EXIT_NOTE.search(self.text)
        return int(note.group(1)) if note else 0


@dataclass
class Block:
    """A fenced block with at least one command, and its marker, if any."""

    doc: str
    line: int
    commands: list[Command]
    setup: str = ""
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _marker_before(lines: list[str], fence_index: int) -> tuple[str, str] | None:
    """The docs-test comment that ends just before the fence (blank lines
    allowed in between), as (kind, text)."""
    end = fence_index - 1
    while end >= 0 and not lines[end].strip():
        end -= 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return None
    start = end
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    if start < 0:
        return None
    match = MARKER.search("\n".join(lines[start : end + 1]))
    if match is None:
        return None
    return match.group(1), match.group(2).strip()


def parse_blocks(doc: str, files: dict[str, str]) -> list[Block]:
    """Every fenced block of docs/DOC that holds a ``$ `` line; the blocks
    marked ``docs-test file: NAME`` go into FILES instead."""
    lines = (ROOT / "docs" / doc).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening.group(1)
        start = index
        index += 1
        body: list[tuple[int, str]] = []
        while index < len(lines) and not lines[index].startswith(fence):
            body.append((index + 1, lines[index]))
            index += 1
        index += 1
        marker = _marker_before(lines, start)
        if marker is not None and marker[0] == "file":
            files[marker[1]] = "".join(f"{text}\n" for _, text in body)
            continue
        commands: list[Command] = []
        for number, text in body:
            if text.startswith("$ "):
                commands.append(Command(number, text[2:]))
            elif commands:
                commands[-1].expected.append(text)
        if not commands:
            continue
        block = Block(doc, start + 1, commands)
        if marker is not None:
            kind, text = marker
            if kind == "setup":
                block.setup = text
            else:
                block.skip = text
        blocks.append(block)
    return blocks


FILES: dict[str, str] = {}
BLOCKS = [block for doc in DOCS for block in parse_blocks(doc, FILES)]


def _environment(directory: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCALQUEUE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        LOCALQUEUE_STORE=str(directory / "queue.sqlite3"),
        LOCALQUEUE_PLUGINS="",
        XDG_DATA_HOME=str(directory / "xdg-data"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_block(block: Block, directory: Path) -> list[tuple[list[str], int]]:
    """Runs the block's set-up and commands in one bash process; returns
    each command's output lines and exit code."""
    for name, text in FILES.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        if text.startswith("#!"):
            path.chmod(0o755)
    separator = f"--- docs-test {uuid.uuid4().hex} ---"
    script = ["exec 2>&1", "set -e", block.setup, "set +e", f"printf '\\n%s:\\n' '{separator}'"]
    for command in block.commands:
        # "$?" is expanded before printf runs: the command's own exit code.
        script += [command.text, f"printf '\\n%s%d\\n' '{separator}' \"$?\""]
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=directory,
        env=_environment(directory),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    output = result.stdout.decode("utf-8", "replace")
    setup_output, found, rest = output.partition(f"\n{separator}:\n")
    assert found, f"the set-up failed (exit code {result.returncode}):\n{setup_output}"
    pieces = re.split(rf"\n{re.escape(separator)}(\d+)\n", rest)
    outputs, codes = pieces[0::2], [int(code) for code in pieces[1::2]]
    assert len(codes) == len(block.commands), (
        f"the block did not run to its end (exit code {result.returncode}):\n{output}"
    )
    return [(_lines(chunk), code) for chunk, code in zip(outputs, codes, strict=False)]


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")), re.DOTALL)


def matches(expected: list[str], actual: list[str]) -> bool:
    """True if ACTUAL fits EXPECTED with its wildcards: ``...`` within a
    line matches any text of that line, a line of only ``...`` any number
    of whole lines."""
    expected = _lines("\n".join(expected))
    memo: dict[tuple[int, int], bool] = {}

    def fits(e: int, a: int) -> bool:
        if (e, a) not in memo:
            if e == len(expected):
                result = a == len(actual)
            elif expected[e].strip() == "...":
                result = any(fits(e + 1, rest) for rest in range(a, len(actual) + 1))
            else:
                result = (
                    a < len(actual)
                    and _line_pattern(expected[e]).fullmatch(actual[a]) is not None
                    and fits(e + 1, a + 1)
                )
            memo[e, a] = result
        return memo[e, a]

    return fits(0, 0)


def test_wildcards() -> None:
    assert matches(["a", "b"], ["a", "b"])
    assert matches(["a  "], ["a"])
    assert not matches(["a"], ["a", "b"])
    assert matches(["took ...s, pid ..."], ["took 0.3s, pid 42"])
    assert not matches(["took ...s"], ["took 0.3m"])
    assert matches(["a", "...", "z"], ["a", "z"])
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert not matches(["a", "...", "z"], ["a", "b"])
    assert matches(["  ...", "end"], ["x", "end"])


def test_every_marker_belongs_to_a_block() -> None:
    """A docs-test comment that is not just before a fenced block does
    nothing; that is a mistake, not a way to switch an example off."""
    attached = len(FILES) + sum(1 for block in BLOCKS if block.setup or block.skip is not None)
    written = sum(
        len(MARKER.findall((ROOT / "docs" / doc).read_text(encoding="utf-8"))) for doc in DOCS
    )
    assert attached == written


def test_the_docs_have_examples_and_few_skips() -> None:
    skipped = [block for block in BLOCKS if block.skip is not None]
    assert len(BLOCKS) - len(skipped) >= 25, [block.id for block in BLOCKS]
    assert all(block.skip for block in skipped), "every docs-test skip needs a reason"
    assert len(skipped) <= MAX_SKIPPED, (
        f"{len(skipped)} doc examples are skipped, at most {MAX_SKIPPED} may be: "
        "make new examples run (a docs-test setup comment can prepare them)\n"
        + "\n".join(f"{block.id}: {block.skip}" for block in skipped)
    )


def shown_commands(doc: str) -> list[tuple[int, str]]:
    """``localqueue`` command lines in blocks that are not run (recipes that
    would run until stopped, cron lines): (line number, text). Syntax
    summaries (with ``[...]`` or placeholders in capitals) are left out."""
    found = []
    lines = (ROOT / "docs" / doc).read_text(encoding="utf-8").splitlines()
    run = {command.line for block in BLOCKS if block.doc == doc for command in block.commands}
    inside = False
    for number, text in enumerate(lines, start=1):
        if FENCE.match(text):
            inside = not inside
            continue
        if not inside or number in run:
            continue
        at = text.find("localqueue ")
        if at < 0 or text.startswith("$ ") or re.search(r"\[-|\[[A-Z]|\b[A-Z]{3,}\b|\.\.\.", text):
            continue
        if text[:at].endswith("$("):  # a command substitution: up to its ")"
            found.append((number, text[at:].split(")")[0]))
        elif at == 0 or text[:at].endswith(("| ", "; ")):
            found.append((number, text[at:]))
    return found


SHOWN = [(doc, number, text) for doc in DOCS for number, text in shown_commands(doc)]


def parse_command_line(text: str) -> tuple[click.Command, dict[str, object]]:
    """Parse ``localqueue ...`` as the CLI would, without running it."""
    args = shlex.split(text)[1:]
    for stop in ("|", "||", "&&", ">", ">>"):
        if stop in args:
            args = args[: args.index(stop)]
    cli = build_cli()
    ctx = cli.make_context("localqueue", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    if "--" in args:  # what follows is the job's command line, exactly
        assert ctx.params.get("command") == tuple(args[args.index("--") + 1 :]), (
            f"an option before '--' was taken for the command: {ctx.params.get('command')}"
        )
    return command, ctx.params


def test_every_command_the_docs_only_show_still_parses() -> None:
    """Recipes that cannot run here (a worker that runs until stopped, a
    cron line) are parsed as the CLI would parse them, so a renamed option
    or a value the CLI no longer takes fails here instead of in a crontab."""
    assert len(SHOWN) >= 8, SHOWN
    problems = []
    for doc, number, text in SHOWN:
        try:
            parse_command_line(text)
        except click.exceptions.Exit as exc:  # --version, --help: answered while parsing
            if exc.exit_code != 0:
                problems.append(f"docs/{doc}:{number}: {text}\n  exits {exc.exit_code}")
        except (click.UsageError, AssertionError) as exc:
            problems.append(f"docs/{doc}:{number}: {text}\n  {exc}")
    assert not problems, "\n".join(problems)


def test_the_parse_check_can_fail() -> None:
    for text in (
        "localqueue queue exec emails --max-trie 6 -- ./send-email",
        "localqueue queue exec emails --backoff-max 5x -- ./send-email",
        "localqueue queue stats emails --wach",
    ):
        with pytest.raises((click.UsageError, AssertionError)):
            parse_command_line(text)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_example(block: Block, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    outputs = run_block(block, tmp_path)
    failures = []
    for command, (actual, code) in zip(block.commands, outputs, strict=True):
        if code != command.exit_code:
            failures.append(
                f"docs/{block.doc}:{command.line}: $ {command.text}\n"
                f"exited {code}, expected {command.exit_code} (a command that is meant "
                f"to fail ends with '# exits {code}')\n" + "\n".join(actual)
            )
        elif command.expected and all(line.strip() == "..." for line in command.expected):
            # "..." alone would match anything, an error included: show a line.
            failures.append(
                f"docs/{block.doc}:{command.line}: $ {command.text}\n"
                "shows only '...': show at least one line of the real output"
            )
        elif not matches(command.expected, actual):
            diff = "\n".join(
                difflib.unified_diff(
                    command.expected, actual, "docs", "actual", lineterm="", n=len(actual)
                )
            )
            failures.append(f"docs/{block.doc}:{command.line}: $ {command.text}\n{diff}")
    assert not failures, "\n\n".join(failures)
