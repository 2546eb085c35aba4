"""The plugin host and choosing a store by URL."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from localqueue import (
    PersistentQueue,
    PluginError,
    StoreScheme,
    UnknownStoreError,
    default_store_url,
    hookimpl,
    hookspecs,
    open_store,
    resolve_store_url,
)
from localqueue import plugins as host
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


class FakeEntryPoint:
    """Stands in for an installed distribution's entry point."""

    def __init__(self, name: str, target: Any, loads: list[str] | None = None) -> None:
        self.name = name
        self.value = f"fake_{name}:plugin"
        self.group = host.ENTRY_POINT_GROUP
        self.dist = SimpleNamespace(metadata={"Name": f"localqueue-{name}"}, version="1.2.3")
        self._target = target
        self._loads = loads

    def load(self) -> Any:
        if self._loads is not None:
            self._loads.append(self.name)
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


def install_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: FakeEntryPoint) -> None:
    def entry_points(group: str) -> list[FakeEntryPoint]:
        return list(eps) if group == host.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    host.reset_plugin_manager()


def store_plugin(scheme: str) -> ModuleType:
    module = ModuleType(f"fake_{scheme}")

    @hookimpl
    def localqueue_store_schemes() -> list[StoreScheme]:
        return [StoreScheme(scheme, lambda url, *, clock=None: MemoryStore(url, clock=clock))]

    module.localqueue_store_schemes = localqueue_store_schemes  # type: ignore[attr-defined]
    return module


def test_importing_localqueue_loads_no_plugins_and_no_store() -> None:
    code = textwrap.dedent(
        """
        import sys, localqueue, localqueue.plugins as p
        assert p._manager is None, "plugin manager built at import"
        assert "localqueue.stores.sqlite" not in sys.modules, "sqlite store imported"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_builtins_register_through_the_store_hook() -> None:
    listed = {p["name"]: p for p in host.list_plugins()}
    assert listed["sqlite"]["builtin"] and listed["memory"]["builtin"]
    assert listed["sqlite"]["hooks"] == ["localqueue_store_schemes"]
    pm = host.get_plugin_manager()
    names = {impl.plugin_name for impl in pm.hook.localqueue_store_schemes.get_hookimpls()}
    assert {"sqlite", "memory"} <= names


def test_plugin_manager_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    install_entry_points(monkeypatch, FakeEntryPoint("extra", store_plugin("extra"), loads))
    first = host.get_plugin_manager()
    assert host.get_plugin_manager() is first
    open_store("extra://a")
    open_store("extra://b")
    assert loads == ["extra"]


def test_entry_point_store_plugin_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(monkeypatch, FakeEntryPoint("extra", store_plugin("extra")))
    store = open_store("extra://thing")
    assert isinstance(store, MemoryStore)
    listed = {p["name"]: p for p in host.list_plugins()}
    assert listed["extra"]["distribution"] == "localqueue-extra 1.2.3"
    assert listed["extra"]["builtin"] is False


def test_duplicate_scheme_names_both_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(monkeypatch, FakeEntryPoint("impostor", store_plugin("sqlite")))
    with pytest.raises(PluginError) as info:
        open_store("sqlite:///tmp/x.db")
    message = str(info.value)
    assert "'sqlite'" in message and "'impostor'" in message
    assert "LOCALQUEUE_DISABLE_PLUGINS=" in message


def test_disable_env_blocks_a_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_entry_points(monkeypatch, FakeEntryPoint("impostor", store_plugin("sqlite")))
    monkeypatch.setenv("LOCALQUEUE_DISABLE_PLUGINS", "impostor, nothing-else")
    host.reset_plugin_manager()
    store = open_store(f"sqlite://{tmp_path}/q.db")
    assert isinstance(store, SQLiteStore)  # the built-in, not the impostor
    store.close()
    assert "impostor" not in {p["name"] for p in host.list_plugins()}


def test_disable_env_can_block_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALQUEUE_DISABLE_PLUGINS", "memory")
    host.reset_plugin_manager()
    with pytest.raises(UnknownStoreError, match="'memory'"):
        open_store("memory://")


def test_allowlist_loads_only_named_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    install_entry_points(
        monkeypatch,
        FakeEntryPoint("wanted", store_plugin("wanted"), loads),
        FakeEntryPoint("unwanted", store_plugin("unwanted"), loads),
    )
    monkeypatch.setenv("LOCALQUEUE_PLUGINS", "wanted")
    host.reset_plugin_manager()
    open_store("wanted://")
    with pytest.raises(UnknownStoreError):
        open_store("unwanted://")
    assert loads == ["wanted"]


def test_broken_plugin_error_says_how_to_skip_it(monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(monkeypatch, FakeEntryPoint("broken", ImportError("no module named x")))
    with pytest.raises(PluginError) as info:
        open_store("memory://")
    assert "'broken'" in str(info.value)
    assert "LOCALQUEUE_DISABLE_PLUGINS=broken" in str(info.value)
    monkeypatch.setenv("LOCALQUEUE_DISABLE_PLUGINS", "broken")
    host.reset_plugin_manager()
    assert isinstance(open_store("memory://"), MemoryStore)


def test_unknown_scheme_names_known_schemes_and_suggests() -> None:
    with pytest.raises(UnknownStoreError) as info:
        open_store("sqlit:///tmp/q.db")
    message = str(info.value)
    assert "'sqlit'" in message and "did you mean 'sqlite'" in message
    assert "memory (memory)" in message and "sqlite (sqlite)" in message


def test_url_without_slashes_is_rejected_not_taken_as_path() -> None:
    with pytest.raises(UnknownStoreError, match="scheme://"):
        open_store("postgres:localhost")


def test_default_url_is_under_xdg_data_home(tmp_path: Path) -> None:
    # conftest points XDG_DATA_HOME at tmp_path / "xdg-data"
    expected = tmp_path / "xdg-data" / "localqueue" / "queue.sqlite3"
    assert default_store_url() == f"sqlite://{expected}"
    store = open_store()
    assert isinstance(store, SQLiteStore) and store.path == expected
    store.close()
    assert expected.exists()


def test_default_url_without_xdg_uses_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_store_url() == "sqlite:///home/someone/.local/share/localqueue/queue.sqlite3"


def test_env_var_then_explicit_argument_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALQUEUE_STORE", "memory://from-env")
    assert resolve_store_url() == "memory://from-env"
    assert resolve_store_url("memory://explicit") == "memory://explicit"
    with PersistentQueue("q") as q:
        assert q.store.url == "memory://from-env"
    monkeypatch.setenv("LOCALQUEUE_STORE", str(tmp_path / "bare.db"))
    assert resolve_store_url() == f"sqlite://{tmp_path / 'bare.db'}"


def test_every_hook_is_documented_and_tested() -> None:
    specs = [
        name
        for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("localqueue_")
    ]
    assert specs, "no hook specs found"
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    this_file = Path(__file__).resolve()
    test_sources = (
        "\n".join(
            p.read_text(encoding="utf-8")
            for p in (ROOT / "tests").glob("test_*.py")
            if p.resolve() != this_file
        )
        + Path(__file__).read_text(encoding="utf-8").split("def test_every_hook")[0]
    )
    for name in specs:
        assert f"### `{name}`" in docs, f"{name} has no section in docs/plugins.md"
        # Exercised: a test implements the hook (def name) or calls it (.name().
        assert re.search(rf"(def |\.){name}\(", test_sources), f"{name} is not exercised by a test"
        spec = getattr(hookspecs, name)
        assert spec.__doc__ and len(spec.__doc__.split()) > 10, f"{name} lacks a docstring"


def test_entry_points_api_is_the_one_we_call() -> None:
    # Guard against the stdlib API changing under us (selection by group).
    assert list(metadata.entry_points(group="localqueue-no-such-group")) == []


def test_installed_plugin_named_like_a_builtin_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_entry_points(monkeypatch, FakeEntryPoint("sqlite", store_plugin("other")))
    with pytest.raises(PluginError, match="same name as a built-in plugin"):
        open_store("memory://")


def test_hook_that_raises_is_reported_with_the_plugin_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = ModuleType("fake_raiser")

    @hookimpl
    def localqueue_store_schemes() -> list[StoreScheme]:
        raise RuntimeError("config missing")

    module.localqueue_store_schemes = localqueue_store_schemes  # type: ignore[attr-defined]
    install_entry_points(monkeypatch, FakeEntryPoint("raiser", module))
    with pytest.raises(PluginError, match="'raiser' failed in localqueue_store_schemes"):
        open_store("memory://")


def test_hook_returning_junk_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    module = ModuleType("fake_junk")

    @hookimpl
    def localqueue_store_schemes() -> list[str]:
        return ["junk://"]

    module.localqueue_store_schemes = localqueue_store_schemes  # type: ignore[attr-defined]
    install_entry_points(monkeypatch, FakeEntryPoint("junk", module))
    with pytest.raises(PluginError, match="expected StoreScheme"):
        open_store("memory://")


def test_hookimpl_with_wrong_signature_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    module = ModuleType("fake_wrong")

    @hookimpl
    def localqueue_store_schemes(unexpected: int) -> list[StoreScheme]:
        return []

    module.localqueue_store_schemes = localqueue_store_schemes  # type: ignore[attr-defined]
    install_entry_points(monkeypatch, FakeEntryPoint("wrong", module))
    with pytest.raises(PluginError, match="does not match localqueue's hooks"):
        open_store("memory://")
