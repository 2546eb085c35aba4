"""The command line: every command through CliRunner, bad input, and an
end-to-end run of the installed executable against a real SQLite file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from localqueue import ManualClock, PersistentQueue, PluginError, hookimpl
from localqueue import plugins as host
from localqueue.cli import build_cli, queue_recover
from localqueue.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("LOCALQUEUE_STORE", str(path))
    return path


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(build_cli(), list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def doc(*args: str, input: str | None = None) -> Any:
    """Run with --json (before any `--`, after which all is the command's) and parse."""
    cut = args.index("--") if "--" in args else len(args)
    return json.loads(ok(*args[:cut], "--json", *args[cut:], input=input).stdout)


def queue(db: Path, name: str = "jobs") -> PersistentQueue:
    return PersistentQueue(name, store=SQLiteStore(db))


def one_line_error(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


# -- add -------------------------------------------------------------------------------------


def test_add_from_value_stdin_and_raw(db: Path) -> None:
    first = doc("queue", "add", "jobs", "--value", '{"n": 1}', "--priority", "5")
    assert set(first) == {"queue", "id", "state"} and first["state"] == "ready"
    ok("queue", "add", "jobs", input='{"n": 2}\n')
    ok("queue", "add", "jobs", "--raw", "--value", "plain text")
    later = doc("queue", "add", "jobs", "--value", "3", "--delay", "5m")
    assert later["state"] == "delayed"
    again = doc("queue", "add", "jobs", "--value", "4", "--dedupe-key", "k")
    assert doc("queue", "add", "jobs", "--value", "5", "--dedupe-key", "k")["id"] == again["id"]
    values = [m.value for m in queue(db).messages()]
    assert values == [{"n": 1}, {"n": 2}, "plain text", 3, 4]


def test_add_rejects_invalid_json(db: Path) -> None:
    line = one_line_error(run("queue", "add", "jobs", "--value", "{nope"))
    assert "not valid JSON" in line and "--raw" in line
    assert one_line_error(run("queue", "add", "jobs", input=""), code=2)
    assert not (db.exists() and queue(db).stats().total)


def test_ndjson_adds_in_batches_and_a_bad_line_adds_nothing_of_its_batch(db: Path) -> None:
    good = "".join(json.dumps({"i": i}) + "\n" for i in range(3))
    assert doc("queue", "add", "jobs", "--ndjson", input=good)["added"] == 3
    lines = [json.dumps({"i": i}) for i in range(520)]
    lines[509] = "{broken"
    line = one_line_error(run("queue", "add", "jobs", "--ndjson", input="\n".join(lines)))
    assert "line 510" in line and "nothing from lines 501-510" in line
    assert queue(db).stats().total == 3 + 500  # the first full batch only
    raw = doc("queue", "add", "raw", "--ndjson", "--raw", input="a b\nc\n")
    assert [m.value for m in queue(db, "raw").messages()] == ["a b", "c"] and raw["added"] == 2


# -- exec and process ------------------------------------------------------------------------


def test_exec_runs_the_command_per_message(db: Path, tmp_path: Path) -> None:
    q = queue(db)
    q.put_many([{"n": 1}, {"n": 2}])
    seen = tmp_path / "seen.txt"
    script = (
        f'printf "%s %s %s " "$LOCALQUEUE_QUEUE" "$LOCALQUEUE_MESSAGE_ID" "$LOCALQUEUE_ATTEMPT"'
        f" >> {seen}; cat >> {seen}; echo >> {seen}"
    )
    summary = doc("queue", "exec", "jobs", "--until-empty", "--", "sh", "-c", script)
    assert summary["acked"] == 2 and summary["processed"] == 2
    assert seen.read_text().splitlines() == ['jobs 1 1 {"n":1}', 'jobs 2 1 {"n":2}']
    assert q.stats().total == 0


def test_exec_failures_follow_the_retry_policy_and_keep_the_output(db: Path) -> None:
    q = queue(db)
    q.put("x")
    script = "echo out-line; echo err-line >&2; exit 3"
    summary = doc(
        "queue", "exec", "jobs", "--until-empty", "--max-tries", "2", "--", "sh", "-c", script
    )
    assert (summary["released"], summary["dead"]) == (1, 1)
    [dead] = q.dead_letters()
    assert dead.attempts == 2 and dead.last_error is not None
    assert dead.last_error.type == "CommandFailed"
    assert "code 3" in dead.last_error.message
    assert "out-line" in dead.last_error.message and "err-line" in dead.last_error.message


def test_exec_timeout_kills_the_process_group(db: Path, tmp_path: Path) -> None:
    q = queue(db)
    q.put("x")
    marker = tmp_path / "child-survived"
    script = f"(sleep 1.5; touch {marker}) & sleep 30"
    started = time.monotonic()
    summary = doc(
        "queue", "exec", "jobs", "--until-empty", "--max-tries", "1", "--timeout", "0.3",
        "--", "sh", "-c", script,
    )  # fmt: skip
    assert time.monotonic() - started < 10 and summary["dead"] == 1
    [dead] = q.dead_letters()
    assert dead.last_error is not None and "timed out" in dead.last_error.message
    time.sleep(1.7)
    assert not marker.exists()  # the whole group died, the background child too


def test_exec_without_a_command_is_a_usage_error(db: Path) -> None:
    assert "missing command" in one_line_error(run("queue", "exec", "jobs"), code=2)
    line = one_line_error(run("queue", "exec", "jobs", "--", "no-such-cmd-xyz"), code=2)
    assert "command not found" in line


def test_exec_worker_flags_reach_the_worker(db: Path) -> None:
    q = queue(db)
    q.put("x")
    summary = doc(
        "queue", "exec", "jobs", "--until-empty", "--max-tries", "3", "--release-delay", "1h",
        "--worker-id", "cron-1", "--lease-timeout", "60", "--concurrency", "2",
        "--no-dead-letter-on-failure", "--min-interval", "0", "--", "false",
    )  # fmt: skip
    assert summary["worker_id"] == "cron-1" and summary["released"] == 1
    [msg] = q.messages()
    assert msg.state.value == "delayed" and msg.available_at - time.time() > 3000
    line = one_line_error(
        run("queue", "exec", "jobs", "--breaker-threshold", "2", "--", "true"), code=2
    )
    assert "--breaker-cooldown" in line


def test_process_runs_a_python_function(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "myhandlers.py").write_text(
        "DONE = []\n"
        "def handle(value, message):\n"
        "    if value == 'bad':\n"
        "        raise ValueError('bad value')\n"
        "    DONE.append((value, message.attempts))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    q = queue(db)
    q.put_many(["a", "bad"])
    summary = doc(
        "queue", "process", "jobs", "myhandlers:handle", "--until-empty", "--max-tries", "1"
    )
    assert (summary["acked"], summary["dead"]) == (1, 1)
    assert "cannot import" in one_line_error(run("queue", "process", "jobs", "nope_mod:f"))
    assert "has no function" in one_line_error(run("queue", "process", "jobs", "myhandlers:x"))
    assert one_line_error(run("queue", "process", "jobs", "no-colon"), code=2)


# -- watching ---------------------------------------------------------------------------------


def test_stats_and_list(db: Path) -> None:
    q = queue(db)
    q.put_many([1, 2, 3])
    q.put(4, delay=60)
    q.get(block=False, leased_by="w1")
    stats = doc("queue", "stats", "jobs")
    assert {k: stats[k] for k in ("ready", "delayed", "inflight", "dead")} == {
        "ready": 2, "delayed": 1, "inflight": 1, "dead": 0
    }  # fmt: skip
    assert stats["inflight_by_worker"] == {"w1": 1}
    assert set(stats) >= {"queue", "oldest_ready_age", "total", "workers"}
    table = ok("queue", "stats", "jobs").stdout
    assert "ready" in table and "w1" in table
    listing = doc("queue", "list")
    assert [s["queue"] for s in listing["queues"]] == ["jobs"]
    typo = run("queue", "stats", "jbos")
    assert typo.exit_code == 0 and "holds no messages" in typo.stderr and "jobs" in typo.stderr


def test_stats_watch_streams_json_lines(db: Path) -> None:
    queue(db).put(1)
    exe = shutil.which("localqueue") or str(Path(sys.executable).parent / "localqueue")
    proc = subprocess.Popen(
        [exe, "queue", "stats", "jobs", "--watch", "--interval", "0.1", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert all(line["ready"] == 1 and "time" in line for line in lines)


def test_health_thresholds_and_stale_workers(db: Path) -> None:
    q = queue(db)
    q.put_many([1, 2])
    q.dead_letter(q.get(block=False), error=ValueError("boom"))
    old = SQLiteStore(db, clock=ManualClock(time.time() - 3600))
    old.record_heartbeat("jobs", "ghost")
    healthy = doc("queue", "health", "jobs", "--max-dead", "1")
    assert healthy["healthy"] is True and healthy["stale_workers"] == ["ghost"]
    assert healthy["dead_by_error_type"] == {"ValueError": 1}
    result = run("queue", "health", "jobs", "--max-dead", "0", "--max-stale-workers", "0")
    assert result.exit_code == 1 and "UNHEALTHY" in result.stdout
    fresh = run("queue", "health", "jobs", "--stale-after", "2h", "--max-stale-workers", "0")
    assert fresh.exit_code == 0
    aged = run("queue", "health", "jobs", "--max-ready-age", "0", "--json")
    assert (
        aged.exit_code == 1 and json.loads(aged.stdout)["checks"][0]["name"] == "oldest_ready_age"
    )


# -- recovery ---------------------------------------------------------------------------------


def dead_letters(db: Path) -> PersistentQueue:
    q = queue(db)
    q.put_many(["a", "b", "c"])
    for msg, error in zip(
        q.get_many(3, block=False),
        [ValueError("bad a"), TimeoutError("slow b"), ValueError("bad c")],
        strict=True,
    ):
        q.dead_letter(msg, error=error)
    return q


def test_dead_lists_filters_and_summarises(db: Path) -> None:
    dead_letters(db)
    listing = doc("queue", "dead", "jobs")
    assert [m["value"] for m in listing["messages"]] == ["a", "b", "c"]
    assert listing["messages"][0]["last_error"]["type"] == "ValueError"
    assert doc("queue", "dead", "jobs", "--summary") == {
        "queue": "jobs", "dead": 3, "by_error_type": {"ValueError": 2, "TimeoutError": 1}
    }  # fmt: skip
    slow = doc("queue", "dead", "jobs", "--error-contains", "SLOW")
    assert [m["value"] for m in slow["messages"]] == ["b"]
    assert len(doc("queue", "dead", "jobs", "--limit", "1")["messages"]) == 1
    assert len(doc("queue", "dead", "jobs", "--failed-within", "1h", "--min-attempts", "1")[
        "messages"]) == 3  # fmt: skip
    assert "bad a" in ok("queue", "dead", "jobs").stdout


def test_requeue_dead_variants(db: Path) -> None:
    q = dead_letters(db)
    preview = doc("queue", "requeue-dead", "jobs", "--all", "--dry-run")
    assert preview["dry_run"] is True and len(preview["ids"]) == 3 and q.stats().dead == 3
    moved = doc("queue", "requeue-dead", "jobs", "--error-contains", "slow")
    assert len(moved["ids"]) == 1 and q.stats().dead == 2
    first = q.dead_letters()[0].id
    assert doc("queue", "requeue-dead", "jobs", str(first), "--delay", "10")["ids"] == [first]
    assert q.stats().delayed == 1
    missing = run("queue", "requeue-dead", "jobs", "9999")
    assert missing.exit_code == 1 and "not dead letters" in missing.stderr
    assert one_line_error(run("queue", "requeue-dead", "jobs"), code=2)
    assert doc("queue", "requeue-dead", "jobs", "--all")["ids"]
    assert q.stats().dead == 0


def test_inspect_one_and_many(db: Path) -> None:
    q = queue(db)
    ids = [m.id for m in q.put_many([{"a": 1}, {"b": 2}])]
    record = doc("queue", "inspect", "jobs", str(ids[0]))
    assert record["value"] == {"a": 1} and record["state"] == "ready"
    assert "receipt" not in record
    assert [m["id"] for m in doc("queue", "inspect", "jobs")["messages"]] == ids
    assert doc("queue", "inspect", "jobs", "--state", "dead")["messages"] == []
    assert [
        m["id"] for m in doc("queue", "inspect", "jobs", "--after", str(ids[0]))["messages"]
    ] == [ids[1]]
    assert "no message 999" in one_line_error(run("queue", "inspect", "jobs", "999"))
    assert "holds no messages" in one_line_error(run("queue", "inspect", "nosuch", "1"))
    assert one_line_error(run("queue", "inspect", "jobs", "--state", "bogus"), code=2)


def test_purge_previews_and_asks(db: Path) -> None:
    q = dead_letters(db)
    q.put("live")
    assert doc("queue", "purge", "jobs", "--state", "dead", "--dry-run")["count"] == 3
    assert q.stats().dead == 3
    refused = run("queue", "purge", "jobs", "--state", "dead")  # stdin is not a terminal
    assert refused.exit_code == 2 and "--yes" in refused.stderr and q.stats().dead == 3
    assert doc("queue", "purge", "jobs", "--state", "dead", "--older-than", "1h", "--yes")[
        "count"] == 0  # fmt: skip
    assert doc("queue", "purge", "jobs", "--state", "dead", "--yes")["count"] == 3
    assert q.stats().total == 1


def test_plugins_command(db: Path) -> None:
    listing = doc("plugins")
    names = {p["name"] for p in listing["plugins"]}
    assert {"sqlite", "memory", "retry", "breaker", "pacing", "handler"} <= names
    assert set(listing["store_schemes"]) >= {"sqlite", "memory"}
    assert "store scheme" in ok("plugins").stdout


# -- errors and globals ------------------------------------------------------------------------


def test_bad_store_and_unreadable_file_are_one_line_errors(db: Path, tmp_path: Path) -> None:
    line = one_line_error(run("--store", "sqlit:///x.db", "queue", "list"))
    assert "did you mean 'sqlite'" in line
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    line = one_line_error(run("--store", str(garbage), "queue", "stats", "jobs"))
    assert "not a SQLite database" in line
    assert garbage.read_bytes() == b"not a database at all" * 100
    debug = run("--debug", "--store", "sqlit:///x.db", "queue", "list")
    assert debug.exit_code == 1 and debug.exception is not None


def test_version_and_python_dash_m(db: Path) -> None:
    assert "localqueue, version" in ok("--version").stdout
    out = subprocess.run(
        [sys.executable, "-m", "localqueue", "queue", "add", "jobs", "--value", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().isdigit()


def test_plugins_add_commands_through_the_hook(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    plugin = ModuleType("hello_plugin")

    @hookimpl
    def localqueue_cli_commands(cli: click.Group) -> None:
        @cli.command("hello")
        def hello() -> None:
            """Say hello."""
            click.echo("hello from a plugin")

    plugin.localqueue_cli_commands = localqueue_cli_commands  # type: ignore[attr-defined]

    class EntryPoint:
        name, value, group, dist = "hello", "hello_plugin", "localqueue", None

        def load(self) -> ModuleType:
            return plugin

    monkeypatch.setattr(
        metadata, "entry_points", lambda group: [EntryPoint()] if group == "localqueue" else []
    )
    host.reset_plugin_manager()
    assert ok("hello").stdout.strip() == "hello from a plugin"


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):  # lazy subcommands included
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            found += walk(sub, (*path, name))
    return found


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []
    for path, command in walk(build_cli()):
        name = " ".join(("localqueue", *path))
        if f"`{name}" not in reference:
            missing.append(name)
        for param in command.params:
            for flag in [*param.opts, *param.secondary_opts]:
                if flag.startswith("-") and flag not in reference:
                    missing.append(f"{name} {flag}")
    assert not missing, f"not in docs/cli.md: {missing}"


# -- end to end with the installed executable ---------------------------------------------------


def test_end_to_end_with_the_installed_executable(tmp_path: Path) -> None:
    exe = shutil.which("localqueue") or str(Path(sys.executable).parent / "localqueue")
    env = {**os.environ, "LOCALQUEUE_STORE": f"sqlite://{tmp_path}/e2e.sqlite3"}
    flag = tmp_path / "fixed"

    def lq(*args: str, input: str | None = None, code: int = 0) -> str:
        out = subprocess.run(
            [exe, *args], capture_output=True, text=True, env=env, input=input, timeout=60
        )
        assert out.returncode == code, (args, out.stdout, out.stderr)
        return out.stdout

    lq("queue", "add", "emails", "--value", '{"to": "a@example.com"}')
    handler = f"test -e {flag}"  # fails until the "bug" is fixed
    lq("queue", "exec", "emails", "--until-empty", "--max-tries", "2", "--", "sh", "-c", handler)
    dead = json.loads(lq("queue", "dead", "emails", "--json"))["messages"]
    assert len(dead) == 1 and dead[0]["attempts"] == 2
    lq("queue", "health", "emails", "--max-dead", "0", code=1)
    lq("queue", "requeue-dead", "emails", "--all")
    flag.touch()
    lq("queue", "exec", "emails", "--until-empty", "--", "sh", "-c", handler)
    stats = json.loads(lq("queue", "stats", "emails", "--json"))
    assert (stats["ready"], stats["inflight"], stats["dead"], stats["total"]) == (0, 0, 0, 0)


def test_input_edge_cases(db: Path) -> None:
    ok("queue", "add", "jobs", "--raw", input="hello\n")
    doc("queue", "add", "jobs", "--ndjson", input='{"a": 1}\r\n\r\n{"a": 2}')  # CRLF, no final \n
    assert [m.value for m in queue(db).messages()] == ["hello", {"a": 1}, {"a": 2}]
    line = one_line_error(run("queue", "add", "jobs", "--ndjson", input='1\n{"n":2\n'))
    assert "line 2 is not valid JSON" in line and "column" in line


def test_exec_refuses_a_missing_script_path(db: Path, tmp_path: Path) -> None:
    queue(db).put("x")
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    for path in (str(tmp_path / "missing.sh"), str(script)):
        line = one_line_error(run("queue", "exec", "jobs", "--", path), code=2)
        assert "not executable" in line
    assert queue(db).stats().ready == 1  # nothing was tried, nothing dead-lettered
    assert "--backoff" in one_line_error(
        run("queue", "exec", "jobs", "--backoff-max", "10", "--", "true"), code=2
    )


def test_process_json_keeps_stdout_for_the_document(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "chatty.py").write_text("def handle(value):\n    print('working on', value)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    queue(db).put(1)
    summary = doc("queue", "process", "jobs", "chatty:handle", "--until-empty")
    assert summary["acked"] == 1


def test_a_plugin_cannot_replace_a_builtin_command(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = ModuleType("squatter")

    @hookimpl
    def localqueue_cli_commands(cli: click.Group) -> None:
        cli.add_command(click.Command("queue", callback=lambda: None))

    plugin.localqueue_cli_commands = localqueue_cli_commands  # type: ignore[attr-defined]
    host.reset_plugin_manager()
    host.get_plugin_manager().register(plugin, name="squatter")
    with pytest.raises(PluginError, match="already exists"):
        build_cli()


def test_values_that_cannot_be_stored_are_caught_per_line(db: Path) -> None:
    lines = [json.dumps({"i": i}) for i in range(600)]
    lines[549] = '{"x": NaN}'
    line = one_line_error(run("queue", "add", "jobs", "--ndjson", input="\n".join(lines)))
    assert "line 550" in line and "NaN" in line
    assert "500 message(s) from lines before 501 were added" in line
    assert queue(db).stats().total == 500
    assert "Infinity" in one_line_error(run("queue", "add", "jobs", "--value", "-Infinity"))


def test_durations_are_bounded(db: Path) -> None:
    assert "10 years" in one_line_error(
        run("queue", "stats", "jobs", "--watch", "--interval", "99999999999d"), code=2
    )
    assert "--timeout" in one_line_error(
        run("queue", "exec", "jobs", "--timeout", "0", "--", "true"), code=2
    )


def test_exec_streams_output_and_keeps_only_a_tail(db: Path) -> None:
    q = queue(db)
    q.put("x")
    script = "yes a | head -c 3000000; echo; echo the-end; exit 1"
    result = run(
        "queue", "exec", "jobs", "--until-empty", "--max-tries", "1", "--", "sh", "-c", script
    )
    assert result.exit_code == 0
    assert len(result.stdout) > 3_000_000  # passed through
    [dead] = q.dead_letters()
    assert dead.last_error is not None and "the-end" in dead.last_error.message
    assert len(dead.last_error.message) < 5000  # only a tail is kept


def test_process_reports_a_module_that_fails_to_import(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "brokenmod.py").write_text("1 / 0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    line = one_line_error(run("queue", "process", "jobs", "brokenmod:f"))
    assert "ZeroDivisionError" in line


def test_interactive_purge_deletes_only_what_was_confirmed(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = queue(db)
    q.put_many([1, 2, 3])
    monkeypatch.setattr(queue_recover, "stdin_is_terminal", lambda: True)

    def confirm_while_more_arrive(text: str, abort: bool = False) -> bool:
        assert "3 message(s)" in text
        q.put_many([4, 5])  # added while the operator reads the prompt
        return True

    monkeypatch.setattr(click, "confirm", confirm_while_more_arrive)
    result = CliRunner().invoke(build_cli(), ["queue", "purge", "jobs"])
    assert result.exit_code == 0 and "deleted 3" in result.stdout
    assert [m.value for m in q.messages()] == [4, 5]
