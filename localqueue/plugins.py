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
        if pm.has_plugin(ep.name):
            raise PluginError(
                f"installed plugin {ep.name!r} ({ep.value}) has the same name as "
                f"{'a built-in plugin' if ep.name in _builtin_names else 'another plugin'}; "
                f"uninstall one, or set {DISABLE_ENV}={ep.name} to skip both"
            )
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                f"fix or uninstall it, or set {DISABLE_ENV}={ep.name} to skip it"
            ) from exc
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) does not match localqueue's hooks: {exc}; "
                f"fix or uninstall it, or set {DISABLE_ENV}={ep.name} to skip it"
            ) from exc
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _distributions[ep.name] = f"{dist.metadata['Name']} {dist.version}"
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, built on first call (thread-safe)."""
    global _manager
    if _manager is None:
        with _lock:
            if _manager is None:
                _builtin_names.clear()
                _distributions.clear()
                _memo.clear()
                _manager = _build()
    return _manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins so the next use re-reads entry points and env."""
    global _manager
    with _lock:
        _manager = None
        _memo.clear()
    _changed()


def memoized(key: str, compute: Callable[[pluggy.PluginManager], T]) -> T:
    """Compute something from the loaded plugins once per plugin manager."""
    pm = get_plugin_manager()
    with _lock:
        if key not in _memo:
            _memo[key] = compute(pm)
        return cast(T, _memo[key])


def list_plugins() -> list[dict[str, Any]]:
    """Loaded plugins as JSON-ready dicts: name, builtin, distribution, hooks."""
    pm = get_plugin_manager()
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
