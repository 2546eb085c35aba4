"""An installed plugin that fails to import (issue 15, item 11).

`--help`, `--version` and `plugins` keep working and name it; every command
that does real work, and every Python caller of the plugin host, still fails
loudly on it. The plugin is a real distribution (a `.dist-info` with an
entry point in the `localqueue` group) put on `sys.path` in a temp dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from localqueue import PluginError, open_store
from localqueue import plugins as host
from localqueue.cli.app import build_cli
from localqueue.hookspecs import hookimpl
from localqueue.stores.memory import MemoryStore

SKIP_HINT = "LOCALQUEUE_DISABLE_PLUGINS=bad"


def write_broken_distribution(root: Path) -> Path:
    """A fake installed distribution whose `localqueue` entry point `bad`
    raises ImportError when loaded."""
    root.mkdir()
    (root / "lq_bad_plugin.py").write_text("raise ImportError(\"no module named 'missingdep'\")\n")
    info = root / "lq_bad_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lq-bad-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[localqueue]\nbad = lq_bad_plugin\n")
    return root


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = write_broken_distribution(tmp_path / "site")
    monkeypatch.delenv(host.DISABLE_ENV, raising=False)
    monkeypatch.delenv(host.ALLOWLIST_ENV, raising=False)
    monkeypatch.syspath_prepend(str(root))
    host.reset_plugin_manager()
    yield root
    monkeypatch.undo()  # take it off sys.path before forgetting it
    host.reset_plugin_manager()


def run_cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(root), *sys.path])
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "localqueue", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def assert_warned_once(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if "'bad'" in line]
    assert len(lines) == 1, stderr
    assert "failed to load" in lines[0] and "ImportError" in lines[0]
    assert SKIP_HINT in lines[0]


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["queue", "--help"]])
def test_help_works_and_warns_once(broken: Path, args: list[str]) -> None:
    out = run_cli(broken, *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert_warned_once(out.stderr)


def test_version_loads_no_plugin(broken: Path) -> None:
    out = run_cli(broken, "--version")
    assert out.returncode == 0 and out.stdout.startswith("localqueue, version ")
    assert out.stderr == ""


def test_completion_prints_nothing_but_completions(broken: Path) -> None:
    out = run_cli(
        broken, _LOCALQUEUE_COMPLETE="bash_complete", COMP_WORDS="localqueue qu", COMP_CWORD="1"
    )
    assert out.returncode == 0
    assert out.stdout.splitlines() == ["plain,queue"]
    assert out.stderr == ""  # a shell shows stderr on every Tab


def test_plugins_lists_the_broken_plugin_with_its_error(broken: Path) -> None:
    out = run_cli(broken, "plugins")
    assert out.returncode == 1, out.stderr
    bad = [line for line in out.stdout.splitlines() if line.startswith("bad ")]
    assert len(bad) == 1 and "lq-bad-plugin 0.1" in bad[0] and "FAILED" in bad[0]
    assert "ImportError: no module named 'missingdep'" in out.stdout
    assert SKIP_HINT in out.stdout
    assert "sqlite" in out.stdout  # the other plugins are still listed


def test_plugins_json_has_an_error_key(broken: Path) -> None:
    out = run_cli(broken, "plugins", "--json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    by_name = {p["name"]: p for p in doc["plugins"]}
    assert "ImportError" in by_name["bad"]["error"] and SKIP_HINT in by_name["bad"]["error"]
    assert by_name["bad"]["distribution"] == "lq-bad-plugin 0.1"
    assert by_name["bad"]["hooks"] == [] and by_name["bad"]["builtin"] is False
    assert by_name["sqlite"]["error"] is None
    assert "sqlite" in doc["store_schemes"]


@pytest.mark.parametrize(
    "args",
    [["queue", "stats", "q"], ["queue", "work", "q", "--", "true"], ["store", "info"]],
)
def test_real_work_still_fails_in_one_line(broken: Path, tmp_path: Path, args: list[str]) -> None:
    out = run_cli(broken, "--store", f"sqlite:///{tmp_path / 'q.db'}", *args)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.startswith("Error: plugin 'bad' (lq_bad_plugin) failed to load: ")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "q.db").exists()


def test_disabling_the_plugin_clears_everything(broken: Path) -> None:
    out = run_cli(broken, "plugins", "--json", LOCALQUEUE_DISABLE_PLUGINS="bad")
    assert out.returncode == 0, out.stderr
    assert "bad" not in {p["name"] for p in json.loads(out.stdout)["plugins"]}
    help_out = run_cli(broken, "--help", LOCALQUEUE_DISABLE_PLUGINS="bad")
    assert help_out.returncode == 0 and help_out.stderr == ""


def test_python_callers_still_get_plugin_error_every_time(broken: Path) -> None:
    for _ in range(2):  # built once, refused on every use
        with pytest.raises(PluginError, match=r"'bad'.*failed to load.*ImportError") as info:
            host.get_plugin_manager()
        assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(PluginError):
        open_store("memory://")
    with pytest.raises(PluginError):
        host.list_plugins()


def test_opt_in_returns_the_manager_and_the_failures(broken: Path) -> None:
    pm = host.get_plugin_manager(allow_failures=True)
    assert pm is host.get_plugin_manager(allow_failures=True)  # built once
    assert not pm.has_plugin("bad") and pm.has_plugin("sqlite")
    [failure] = host.plugin_failures()
    assert failure["name"] == "bad" and failure["distribution"] == "lq-bad-plugin 0.1"
    assert SKIP_HINT in failure["error"]
    assert "sqlite" in {p["name"] for p in host.list_plugins(allow_failures=True)}


def test_no_failures_without_a_broken_plugin() -> None:
    host.reset_plugin_manager()
    assert host.plugin_failures() == []
    assert isinstance(open_store("memory://"), MemoryStore)


# -- a plugin that loads but whose command hook fails ---------------------------------
#
# The usual layout of a command plugin: a light entry point whose hook
# imports the command module only when the CLI is built. When that import
# (or anything else in the hook) fails, the plugin is as broken as one
# that failed to import, and is treated the same way.

HOOK_FAILS = """
from localqueue.hookspecs import hookimpl


@hookimpl
def localqueue_cli_commands(cli):
    from missingdep.cli import group  # noqa: F401 - the dependency is not installed
"""


@pytest.fixture
def hook_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "lq_hook_plugin.py").write_text(HOOK_FAILS)
    info = root / "lq_hook_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lq-hook-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[localqueue]\nbadcli = lq_hook_plugin\n")
    monkeypatch.delenv(host.DISABLE_ENV, raising=False)
    monkeypatch.delenv(host.ALLOWLIST_ENV, raising=False)
    monkeypatch.syspath_prepend(str(root))
    host.reset_plugin_manager()
    yield root
    monkeypatch.undo()
    host.reset_plugin_manager()


def test_a_failing_command_hook_leaves_help_working_with_one_warning(hook_fails: Path) -> None:
    for args in (["--help"], ["queue", "--help"], ["--store", "memory://", "--version"]):
        out = run_cli(hook_fails, *args)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
        lines = [line for line in out.stderr.splitlines() if "'badcli'" in line]
        if args[-1] == "--version":
            assert out.stdout.startswith("localqueue, version ")
            continue
        assert len(lines) == 1, out.stderr
        assert "failed to add its commands: ModuleNotFoundError" in lines[0]
        assert "LOCALQUEUE_DISABLE_PLUGINS=badcli" in lines[0]


def test_a_failing_command_hook_is_listed_and_refuses_real_work(
    hook_fails: Path, tmp_path: Path
) -> None:
    listed = run_cli(hook_fails, "plugins", "--json")
    assert listed.returncode == 1, listed.stderr
    by_name = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert "failed to add its commands" in by_name["badcli"]["error"]
    out = run_cli(hook_fails, "--store", f"sqlite:///{tmp_path / 'q.db'}", "queue", "stats", "q")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("Error: plugin 'badcli' failed to add its commands: ")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "q.db").exists()
    skipped = run_cli(hook_fails, "--help", LOCALQUEUE_DISABLE_PLUGINS="badcli")
    assert skipped.returncode == 0 and skipped.stderr == ""


# -- the command hooks keep pluggy's order and wrappers ------------------------------------


class _GroupMaker:
    @hookimpl
    def localqueue_cli_commands(self, cli: click.Group) -> None:
        @cli.group("extras")
        def extras() -> None:
            """Commands one plugin makes room for."""


class _GroupFiller:
    """Relies on pluggy's documented trylast: the group exists by then."""

    @hookimpl(trylast=True)
    def localqueue_cli_commands(self, cli: click.Group) -> None:
        group = cli.commands["extras"]
        assert isinstance(group, click.Group)
        group.add_command(click.Command("more", callback=lambda: None))


class _Wrapper:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(wrapper=True)
    def localqueue_cli_commands(self, cli: click.Group) -> Iterator[None]:
        result = yield
        self.calls += 1
        return result


class _Raising:
    @hookimpl
    def localqueue_cli_commands(self, cli: click.Group) -> None:
        raise RuntimeError("its command module is broken")


@pytest.fixture
def fresh_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(host.DISABLE_ENV, raising=False)
    monkeypatch.setenv(host.ALLOWLIST_ENV, "")
    host.reset_plugin_manager()
    yield
    host.reset_plugin_manager()


@pytest.mark.usefixtures("fresh_manager")
@pytest.mark.parametrize("with_a_broken_one", [False, True])
def test_command_hooks_run_in_pluggys_order_with_wrappers(with_a_broken_one: bool) -> None:
    """trylast, tryfirst and wrappers behave as pluggy documents them, also
    when another plugin's hook raises (then it alone is left out)."""
    pm = host.get_plugin_manager()
    wrapper = _Wrapper()
    pm.register(_GroupFiller(), name="filler")  # registered first, yet called last
    pm.register(_GroupMaker(), name="maker")
    pm.register(wrapper, name="wrapper")
    if with_a_broken_one:
        pm.register(_Raising(), name="raising")
    cli = build_cli(allow_plugin_failures=True)
    extras = cli.commands["extras"]
    assert isinstance(extras, click.Group) and sorted(extras.commands) == ["more"]
    failures = [f["name"] for f in host.plugin_failures()]
    if with_a_broken_one:
        assert failures == ["raising"]
        assert not pm.has_plugin("raising")  # left out: listed once, as failed
        with pytest.raises(PluginError, match="'raising' failed to add its commands"):
            build_cli()
    else:
        assert failures == [] and wrapper.calls == 1
