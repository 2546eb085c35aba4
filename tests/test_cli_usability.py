"""Issue 15, item 14: what a newcomer meets in the first hour.

Out-of-range option values are usage errors (exit 2, one line naming the
option); every command's help shows an example; Tab completes queue names
from the store in force without ever creating one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from localqueue import PersistentQueue
from localqueue.cli import build_cli
from localqueue.cli.completion import complete_queue_names


def store_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def store_with_queues(tmp_path: Path) -> str:
    url = store_url(tmp_path / "queues.db")
    for name in ("emails", "events", "thumbnails"):
        with PersistentQueue(name, store=url) as q:
            q.put({"n": 1})
    return url


def run(args: list[str]) -> click.testing.Result:
    return CliRunner().invoke(build_cli(), args, prog_name="localqueue")


def every_command(
    group: click.Group, path: tuple[str, ...] = (), *, groups: bool = False
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # lazy subcommands included
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            if groups:
                yield (*path, name), command
            yield from every_command(command, (*path, name), groups=groups)
        else:
            yield (*path, name), command


# --- out-of-range values: exit 2, one line naming the option ---------------


@pytest.mark.parametrize(
    "args",
    [
        ["queue", "exec", "q", "--lease-timeout", "0.0001", "--max-jobs", "0", "--", "true"],
        ["queue", "process", "q", "mod:fn", "--lease-timeout", "10ms"],
        ["queue", "exec", "q", "--timeout", "0", "--", "true"],
        ["queue", "exec", "q", "--max-tries", "0", "--", "true"],
        ["queue", "exec", "q", "--concurrency", "0", "--", "true"],
        ["queue", "exec", "q", "--concurrency", "100000", "--", "true"],
        ["queue", "stats", "q", "--watch", "--interval", "0"],
        ["queue", "process", "q", "mod:fn", "--release-delay", "11y"],
        ["queue", "process", "q", "mod:fn", "--backoff", "-1"],
    ],
)
def test_out_of_range_values_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    result = run(["--store", store_url(db), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "--help" in lines[0]
    assert not db.exists()  # refused before anything was opened


def test_lease_timeout_at_the_minimum_is_accepted(tmp_path: Path) -> None:
    result = run(
        ["--store", store_url(tmp_path / "q.db"), "queue", "exec", "q",
         "--lease-timeout", "0.03", "--max-jobs", "0", "--", "true"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output


# --- shell completion -------------------------------------------------------


def complete(words: list[str], env: dict[str, str] | None = None) -> list[str]:
    """What bash completion offers for the last word, through click's protocol."""
    full_env = dict(
        os.environ,
        COMP_WORDS=" ".join(["localqueue", *words]),
        COMP_CWORD=str(len(words)),
        _LOCALQUEUE_COMPLETE="bash_complete",
        **(env or {}),
    )
    done = subprocess.run(
        [sys.executable, "-m", "localqueue"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing may land in the user's shell
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line]


def test_tab_completes_queue_names_from_the_store_in_force(store_with_queues: str) -> None:
    env = {"LOCALQUEUE_STORE": store_with_queues}
    assert complete(["queue", "stats", "e"], env) == ["emails", "events"]
    assert complete(["queue", "dead", ""], env) == ["emails", "events", "thumbnails"]
    # --store on the line wins over the environment.
    assert complete(["--store", store_with_queues, "queue", "stats", "t"]) == ["thumbnails"]


def test_completion_never_creates_a_store_nor_prints_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    assert complete(["--store", store_url(missing), "queue", "stats", ""]) == []
    assert complete(["--store", "nosuchscheme://x", "queue", "stats", ""]) == []
    assert not missing.exists()


def test_every_queue_argument_completes_queue_names(store_with_queues: str) -> None:
    cli = build_cli()
    checked = []
    for path, command in every_command(cli):
        for param in command.params:
            if isinstance(param, click.Argument) and param.name == "queue":
                root = click.Context(cli)
                root.params["store_url"] = store_with_queues
                ctx = click.Context(command, parent=root, info_name=path[-1])
                offered = [item.value for item in param.shell_complete(ctx, "em")]
                assert offered == ["emails"], path
                checked.append(path)
    assert ("queue", "add") in checked and ("queue", "stats") in checked
    assert len(checked) >= 10


def test_completion_function_tolerates_an_unreadable_store(tmp_path: Path) -> None:
    not_a_db = tmp_path / "junk.db"
    not_a_db.write_bytes(b"this is not sqlite" * 100)
    root = click.Context(build_cli())
    root.params["store_url"] = store_url(not_a_db)
    ctx = click.Context(click.Command("stats"), parent=root)
    assert complete_queue_names(ctx, click.Argument(["queue"]), "") == []
    assert not_a_db.read_bytes() == b"this is not sqlite" * 100


# --- every command's help shows an example ------------------------------------


def test_every_command_help_shows_an_example_of_itself() -> None:
    cli = build_cli()
    commands = list(every_command(cli, groups=True))  # groups too: `queue --help`
    assert len(commands) >= 24 and ("queue",) in [path for path, _ in commands]
    for path, _ in [((), cli), *commands]:
        result = run([*path, "--help"])
        assert result.exit_code == 0, path
        tail = result.output.split("Example:\n", 1)
        assert len(tail) == 2, f"localqueue {' '.join(path)} --help has no example"
        first = tail[1].splitlines()[0].strip()
        assert first.startswith("$ localqueue "), (path, first)
        assert f" {' '.join(path)}" in first, (path, first)


def test_upper_bounds_are_enforced_but_not_shown_in_help(tmp_path: Path) -> None:
    result = run(["queue", "inspect", "--help"])
    assert "9223372036854775807" not in result.output
    url = store_url(tmp_path / "q.db")
    with PersistentQueue("q", store=url) as q:
        q.put(1)
    for args in (
        ["queue", "inspect", "q", str(2**63)],
        ["queue", "dead", "q", "--limit", str(2**63)],
        ["queue", "add", "q", "--value", "1", "--priority", str(2**31)],
        ["queue", "requeue-dead", "q", str(2**70)],
    ):
        result = run(["--store", url, *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("Error: Invalid value"), (args, result.stderr)
        # The message names the limit the value broke, not only the one help shows.
        assert "at most" in result.stderr or "range" in result.stderr, result.stderr
        assert "x>=" not in result.stderr, result.stderr
    assert run(["--store", url, "queue", "add", "q", "--value", "1", "--priority",
                str(2**31 - 1)]).exit_code == 0  # fmt: skip


def test_store_copy_completes_queues_of_the_source(store_with_queues: str, tmp_path: Path) -> None:
    other = store_url(tmp_path / "other.db")
    offered = complete(
        ["--store", other, "store", "copy", store_with_queues, other, "--queue", "th"]
    )
    assert offered == ["thumbnails"]


def test_completion_gives_up_on_a_store_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A PostgreSQL server that accepts the connection and never answers,
    # say: Tab must not freeze the user's shell.
    from localqueue.cli import completion

    def hangs(url: str | None) -> list[str]:
        time.sleep(60)
        return ["late"]

    monkeypatch.setattr(completion, "_read_queue_names", hangs)
    started = time.monotonic()
    assert completion.queue_names_in_store("sqlite:///whatever.db") == []
    assert time.monotonic() - started < completion.COMPLETION_TIMEOUT + 1.0
