"""The plugin boundary, enforced: code under plugins/, harness/ and the example
store imports only what a third party could, the public modules and their
public names (docs/architecture.md lists them).

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
# (a test below keeps the two lists equal); everything else under localqueue/
# is internal and may change without notice.
PUBLIC_MODULES = frozenset(
    {
        "localqueue",
        "localqueue.cli",
        "localqueue.clock",
        "localqueue.errors",
        "localqueue.hookspecs",
        "localqueue.message",
        "localqueue.observability.events",
        "localqueue.plugins",
        "localqueue.queue",
        "localqueue.serializers",
        "localqueue.spec",
        "localqueue.store",
        "localqueue.stores.memory",
        "localqueue.stores.sqlite",
        "localqueue.worker",
    }
)

# Where third-party-like code lives in this repository.
BOUNDED_DIRS = ("plugins", "harness", "examples/store_plugin")


def boundary_violations(source: str, filename: str = "<source>") -> list[str]:
    """Every import in ``source`` that reaches past the public boundary.

    Catches ``import localqueue.x``, ``from localqueue.x import y`` and
    ``from localqueue import _y`` for any non-public ``x`` or private ``_y``,
    at any depth (inside functions and ``TYPE_CHECKING`` blocks too: a type
    annotation that names an internal class breaks just the same).
    """
    problems: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_core(alias.name) and alias.name not in PUBLIC_MODULES:
                    problems.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not _is_core(node.module):
                continue
            if node.module not in PUBLIC_MODULES:
                problems.append(f"{filename}:{node.lineno}: from {node.module} import ...")
                continue
            for alias in node.names:
                private = alias.name.startswith("_")
                submodule = f"{node.module}.{alias.name}"
                if private or (_looks_like_module(submodule) and submodule not in PUBLIC_MODULES):
                    problems.append(
                        f"{filename}:{node.lineno}: from {node.module} import {alias.name}"
                    )
    return problems


def _is_core(module: str) -> bool:
    return module == "localqueue" or module.startswith("localqueue.")


def _looks_like_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of the core (so that
    ``from localqueue import queue_events``-style imports of internal
    modules are caught, while ``from localqueue import Store`` is not)."""
    relative = Path(*dotted.split("."))
    return (ROOT / relative).is_dir() or (ROOT / relative).with_suffix(".py").is_file()


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
    assert problems == [], "imports past the public boundary:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        "from localqueue.stores.sqlite.store import CLAIM_SQL",
        "from localqueue.store.helpers import matches",
        "import localqueue.cli.app",
        "from localqueue.cli.app import CliState",
        "from localqueue import policies",
        "from localqueue.observability import observers",
        "from localqueue.store import _private",
        "from localqueue.observability.observers import listening",
        "if TYPE_CHECKING:\n    from localqueue.store.protocol import Store",
        "def f() -> None:\n    from localqueue.stores.sqlite import schema",
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
        "from localqueue.stores.sqlite import SQLiteStore",
        "import localqueue",
        "from localqueue_postgres.store import PostgresStore",
    ],
)
def test_the_rule_allows_public_imports(line: str) -> None:
    assert boundary_violations(line) == []


def test_the_architecture_page_lists_the_public_modules() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("## Public modules", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(localqueue[\w.]*)` \|", section, re.MULTILINE))
    assert listed == PUBLIC_MODULES
