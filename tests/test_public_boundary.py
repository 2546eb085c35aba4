"""The plugin boundary, enforced: code under plugins/, harness/ and the example
store reaches only what a third party could, the public modules and the
names they export (docs/architecture.md lists them).

An in-repository plugin gets no shortcut: if it needs a helper, the helper
becomes public in the kit (``localqueue.store``) for everyone. This test is
the lint rule the test command runs; it reads source files and imports none
of them, so it runs with only the core installed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The public modules of the core. Each is documented in docs/architecture.md
# (a test below keeps the two lists equal) and says what it exports in
# ``__all__``; everything else under localqueue/ is internal and may change
# without notice.
PUBLIC_MODULES = frozenset(
    {
        "localqueue",
        "localqueue.aio",
        "localqueue.cli",
        "localqueue.clock",
        "localqueue.errors",
        "localqueue.hookspecs",
        "localqueue.message",
        "localqueue.observability.event_log",
        "localqueue.observability.events",
        "localqueue.observability.observers",
        "localqueue.plugins",
        "localqueue.processes",
        "localqueue.queue",
        "localqueue.serializers",
        "localqueue.spec",
        "localqueue.store",
        "localqueue.stores.memory",
        "localqueue.stores.sqlite",
        "localqueue.worker",
    }
)

# Earlier paths kept as aliases of their new homes (docs/architecture.md):
# public too, so old code and logger names keep working.
ALIASES = frozenset(
    {
        "localqueue.event_log",
        "localqueue.events",
        "localqueue.jobs",
        "localqueue.observers",
        "localqueue.worker_config",
    }
)
ALLOWED = PUBLIC_MODULES | ALIASES

# Where third-party-like code lives in this repository.
BOUNDED_DIRS = ("plugins", "harness", "examples/store_plugin")

# A dotted name that may point into the core, in a string (monkeypatch
# targets, importlib.import_module, mock.patch): "localqueue.x.y".
DOTTED = re.compile(r"^localqueue(?:\.[A-Za-z_]\w*)+$")


def boundary_violations(source: str, filename: str = "<source>") -> list[str]:
    """Every reach past the public boundary in ``source``.

    Catches ``import localqueue.x`` and ``from localqueue.x import y`` for a
    non-public ``x``; a name that is private (``_y``), an internal submodule,
    or missing from the public module's ``__all__``; and strings that name a
    non-public module or something inside one
    (``importlib.import_module("localqueue.x")``,
    ``monkeypatch.setattr("localqueue.x.y", ...)``). At any depth: inside
    functions and ``TYPE_CHECKING`` blocks too, since a type annotation that
    names an internal class breaks just the same.
    """
    problems: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            problems.extend(
                f"{where}: import {alias.name}"
                for alias in node.names
                if _is_core(alias.name) and alias.name not in ALLOWED
            )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _is_core(node.module):
                problems.extend(
                    f"{where}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if not _may_import(node.module, alias.name)
                )
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and DOTTED.match(node.value)
            and not _names_public(node.value)
        ):
            problems.append(f"{where}: {node.value!r} names an internal module")
    return problems


def _is_core(module: str) -> bool:
    return module == "localqueue" or module.startswith("localqueue.")


def _may_import(module: str, name: str) -> bool:
    if f"{module}.{name}" in ALLOWED:
        return True  # a public submodule: from localqueue.observability import events
    if module not in ALLOWED or name.startswith("_") or name == "*":
        return False
    if _module_file(f"{module}.{name}") is not None:
        return False  # an internal submodule of a public package
    exported = _exported_names(module)
    return exported is None or name in exported


def _names_public(dotted: str) -> bool:
    """Whether a dotted string names a public module or a name in one. A
    string that names no module below the package itself (a logger name
    such as "localqueue.prometheus") is no import and passes."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        module = ".".join(parts[:end])
        if _module_file(module) is not None:
            if module not in ALLOWED:
                return False
            rest = parts[end:]
            return not rest or _may_import(module, rest[0])
    return True


def _module_file(dotted: str) -> Path | None:
    """The source file of a core module or package, or None if there is none."""
    relative = Path(*dotted.split("."))
    for candidate in (ROOT / relative / "__init__.py", (ROOT / relative).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _exported_names(module: str) -> set[str] | None:
    """A module's ``__all__``, read from its source without importing it."""
    path = _module_file(module)
    assert path is not None, module
    for node in ast.parse(path.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, (ast.List, ast.Tuple))
        ):
            return {ast.literal_eval(element) for element in node.value.elts}
    return None


def bounded_files() -> list[Path]:
    files: list[Path] = []
    for folder in BOUNDED_DIRS:
        files.extend(sorted((ROOT / folder).rglob("*.py")))
    return [f for f in files if ".venv" not in f.parts and "build" not in f.parts]


def test_plugins_and_the_harness_import_only_public_names() -> None:
    files = bounded_files()
    assert len(files) > 20, "the bounded directories hold the plugins and the harness"
    problems = [
        problem
        for path in files
        for problem in boundary_violations(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert problems == [], "reaches past the public boundary:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        "from localqueue.stores.sqlite.store import CLAIM_SQL",
        "from localqueue.store.helpers import matches",
        "import localqueue.cli.app",
        "from localqueue.cli.app import CliState",
        "from localqueue import policies",
        "from localqueue.observability import queue_events",
        "from localqueue.store import _private",
        "from localqueue.observability.observers import listening",
        "if TYPE_CHECKING:\n    from localqueue.store.protocol import Store",
        "def f() -> None:\n    from localqueue.stores.sqlite import schema",
        "from localqueue.queue import listening",
        "from localqueue.store import Path",
        "from localqueue.store import *",
        "importlib.import_module('localqueue.cli.app')",
        "monkeypatch.setattr('localqueue.stores.sqlite.store.MAX_POLL_INTERVAL', 0)",
        "mock.patch('localqueue.queue.listening')",
    ],
)
def test_the_rule_catches_an_internal_import(line: str) -> None:
    """Proof that the rule can fail: each of these is a violation."""
    assert boundary_violations(line) != []


@pytest.mark.parametrize(
    "line",
    [
        "from localqueue import PersistentQueue, Store",
        "from localqueue.store import ClaimResult, StoreScheme, hookimpl, matches",
        "from localqueue.cli import CliState, existing_store",
        "from localqueue.observability.events import Event",
        "from localqueue.observability import events",
        "from localqueue.stores.sqlite import SQLiteStore",
        "from localqueue.jobs import Failure",
        "import localqueue",
        "from localqueue_postgres.store import PostgresStore",
        "logging.getLogger('localqueue.prometheus')",
        "logging.getLogger('localqueue.observers')",
        "monkeypatch.setattr('localqueue.queue.PersistentQueue.put', put)",
    ],
)
def test_the_rule_allows_public_imports(line: str) -> None:
    assert boundary_violations(line) == []


def test_every_public_module_says_what_it_exports() -> None:
    """The rule checks imported names against ``__all__``: a public module
    without one would let any of its internals through."""
    assert [m for m in sorted(ALLOWED) if _exported_names(m) is None] == []


def test_the_architecture_page_lists_the_public_modules() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("## Public modules", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(localqueue[\w.]*)` \|", section, re.MULTILINE))
    assert listed == PUBLIC_MODULES
