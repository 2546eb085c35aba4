"""The plugin host: one pluggy PluginManager, built lazily, shared per process.

Loading happens on first use, never at import time, and only once.
Built-in plugins register exactly like third-party ones (through the hooks
in :mod:`localqueue.hookspecs`); third-party plugins come from the
``localqueue`` entry-point group.

Environment:

* ``LOCALQUEUE_DISABLE_PLUGINS=a,b`` blocks the named plugins (built-in or
  installed), e.g. to get past a plugin that fails to import.
* ``LOCALQUEUE_PLUGINS=a,b`` loads only these installed plugins (an
  allowlist); built-ins load unless disabled. An empty value loads none.

An installed plugin that cannot be loaded (its import fails, its hooks do
not match, or its name is taken) is recorded and left out while the others
load; ``get_plugin_manager()`` then raises ``PluginError`` naming it, every
time, until it is fixed or disabled. ``get_plugin_manager(allow_failures=True)``
is the opt-in for tools that must work anyway (``localqueue --help``,
``--version`` and ``plugins``): it returns the manager without the broken
plugins, and ``plugin_failures()`` says what failed.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar, cast

import pluggy

from localqueue import hookspecs
from localqueue.errors import PluginError

__all__ = [
    "ALLOWLIST_ENV",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "get_plugin_manager",
    "list_plugins",
    "plugin_failures",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "localqueue"
DISABLE_ENV = "LOCALQUEUE_DISABLE_PLUGINS"
ALLOWLIST_ENV = "LOCALQUEUE_PLUGINS"

# name -> module path; registered as plugins under these names.
BUILTIN_PLUGINS: dict[str, str] = {
    "sqlite": "localqueue.stores.sqlite",
    "memory": "localqueue.stores.memory",
    "retry": "localqueue.policies.retry",
    "pacing": "localqueue.policies.pacing",
    "breaker": "localqueue.policies.breaker",
    "handler": "localqueue.policies.handler",
    "event_log": "localqueue.observability.event_log",
}

T = TypeVar("T")

_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_builtin_names: set[str] = set()
_distributions: dict[str, str] = {}  # plugin name -> "dist version"
_memo: dict[str, Any] = {}  # results derived from the loaded plugins
_failures: list[dict[str, Any]] = []  # installed plugins that could not be loaded
_failure_causes: list[BaseException | None] = []  # the exception behind each failure
_change_listeners: list[Callable[[], None]] = []


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever a plugin is registered or unregistered, or
    the manager is reset, so caches derived from the plugins (such as the
    event observers) are recomputed."""
    _change_listeners.append(callback)


def _changed() -> None:
    for callback in _change_listeners:
        callback()


class _PluginManager(pluggy.PluginManager):
    """A PluginManager that says when its plugins change (blocking one
    unregisters it, so that is covered too)."""

    def register(self, plugin: object, name: str | None = None) -> str | None:
        try:
            return super().register(plugin, name)
        finally:
            _changed()

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        try:
            return super().unregister(plugin, name)
        finally:
            _changed()


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _fail(
    name: str, distribution: str | None, message: str, cause: BaseException | None = None
) -> None:
    """Record an installed plugin that could not be loaded (it is left out)."""
    _failures.append({"name": name, "distribution": distribution, "error": message})
    _failure_causes.append(cause)


def record_failure(name: str, message: str, cause: BaseException | None = None) -> None:
    """Record a loaded plugin that failed later, in one of its hooks (say, the
    one that adds CLI commands): from now on it counts as broken, exactly like
    a plugin that failed to import (it is unregistered, ``get_plugin_manager()``
    raises, help warns, ``localqueue plugins`` lists it once). Recording the
    same failure twice keeps one entry."""
    pm = get_plugin_manager(allow_failures=True)
    with _lock:
        if any(f["name"] == name and f["error"] == message for f in _failures):
            return
        _fail(name, _distributions.get(name), message, cause)
        # Left out, as a plugin that failed to import is: its other hooks
        # do not run, and `localqueue plugins` lists it once, as failed.
        if pm.has_plugin(name):
            pm.unregister(name=name)


def _build() -> pluggy.PluginManager:
    pm = _PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = _names_from_env(DISABLE_ENV) or set()
    allowed = _names_from_env(ALLOWLIST_ENV)
    for name in sorted(blocked):
        pm.set_blocked(name)
    for name, module_path in BUILTIN_PLUGINS.items():
        if name in blocked:
            continue
        pm.register(importlib.import_module(module_path), name=name)
        _builtin_names.add(name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked:
            continue
        if allowed is not None and ep.name not in allowed:
            continue
        dist = getattr(ep, "dist", None)
        distribution = f"{dist.metadata['Name']} {dist.version}" if dist is not None else None
        if pm.has_plugin(ep.name):
            _fail(
                ep.name,
                distribution,
                f"installed plugin {ep.name!r} ({ep.value}) has the same name as "
                f"{'a built-in plugin' if ep.name in _builtin_names else 'another plugin'}; "
                f"uninstall one, or set {DISABLE_ENV}={ep.name} to skip both",
            )
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            _fail(
                ep.name,
                distribution,
                f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                f"fix or uninstall it, or set {DISABLE_ENV}={ep.name} to skip it",
                exc,
            )
            continue
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:
            if pm.has_plugin(ep.name):  # pluggy may have registered it part-way
                pm.unregister(name=ep.name)
            _fail(
                ep.name,
                distribution,
                f"plugin {ep.name!r} ({ep.value}) does not match localqueue's hooks: {exc}; "
                f"fix or uninstall it, or set {DISABLE_ENV}={ep.name} to skip it",
                exc,
            )
            continue
        if distribution is not None:
            _distributions[ep.name] = distribution
    return pm


def get_plugin_manager(*, allow_failures: bool = False) -> pluggy.PluginManager:
    """The process's plugin manager, built on first call (thread-safe).

    Raises ``PluginError`` naming the first installed plugin that could not
    be loaded (on every call, not only the first), so that nothing runs
    without a store or policy plugin the user installed. With
    ``allow_failures=True`` it returns the manager without the broken
    plugins instead; ``plugin_failures()`` lists them.
    """
    global _manager
    if _manager is None:
        with _lock:
            if _manager is None:
                _builtin_names.clear()
                _distributions.clear()
                _failures.clear()
                _failure_causes.clear()
                _memo.clear()
                _manager = _build()
    if _failures and not allow_failures:
        raise PluginError(_failures[0]["error"]) from _failure_causes[0]
    return _manager


def plugin_failures() -> list[dict[str, Any]]:
    """Installed plugins that could not be loaded, as JSON-ready dicts
    (``name``, ``distribution``, ``error``), in entry-point order. Builds
    the manager if needed; never raises for a broken plugin."""
    get_plugin_manager(allow_failures=True)
    with _lock:
        return [dict(failure) for failure in _failures]


def reset_plugin_manager() -> None:
    """Forget loaded plugins so the next use re-reads entry points and env."""
    global _manager
    with _lock:
        _manager = None
        _memo.clear()
    _changed()


def memoized(
    key: str, compute: Callable[[pluggy.PluginManager], T], *, allow_failures: bool = False
) -> T:
    """Compute something from the loaded plugins once per plugin manager."""
    pm = get_plugin_manager(allow_failures=allow_failures)
    with _lock:
        if key not in _memo:
            _memo[key] = compute(pm)
        return cast(T, _memo[key])


def list_plugins(*, allow_failures: bool = False) -> list[dict[str, Any]]:
    """Loaded plugins as JSON-ready dicts: name, builtin, distribution, hooks.

    Raises ``PluginError`` if an installed plugin could not be loaded, unless
    ``allow_failures`` (then the broken ones are left out; see
    ``plugin_failures()``)."""
    pm = get_plugin_manager(allow_failures=allow_failures)
    result = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:  # blocked
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        result.append(
            {
                "name": name,
                "builtin": name in _builtin_names,
                "distribution": _distributions.get(str(name)),
                "hooks": hooks,
            }
        )
    return result
