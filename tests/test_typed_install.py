"""The installed packages are typed for their users (issue 15, item 14).

A project that depends on localqueue runs mypy (or pyright, or an IDE) on its
own code; that only works if the checker can find localqueue's sources and
its ``py.typed`` marker. setuptools' default editable install hides both
behind an import hook that no static checker runs, so scripts/install.sh
makes strict editable installs. This test checks from the outside, as such
a project would: a file in a directory of its own, checked with mypy
against this interpreter's site-packages.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

# Each distribution's top-level package and one public name to use.
PACKAGES = {
    "localqueue": "PersistentQueue",
    "localqueue_harness": "StoreContract",
    "localqueue_postgres": "PostgresStore",
    "localqueue_prometheus": "StoreCollector",
    "localqueue_jsonstore": "JsonFileStore",
    # Their packages export lazily (a module __getattr__, typed Any), so the
    # probe names the defining modules.
    "localqueue_redis.store": "RedisStore",
    "localqueue_web.app": "build_app",
}


def installed() -> list[str]:
    return [name for name in PACKAGES if importlib.util.find_spec(name) is not None]


def test_mypy_sees_every_installed_package_as_typed(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy comes with the dev extra (scripts/install.sh)")
    packages = installed()
    assert "localqueue" in packages
    lines = []
    for index, package in enumerate(packages):
        name = PACKAGES[package]
        lines.append(f"from {package} import {name} as name_{index}")
        # A deliberate error: mypy reports it only if it read the real type.
        lines.append(f"wrong_{index}: int = name_{index}")
    probe = tmp_path / "probe.py"
    probe.write_text("\n".join(lines) + "\n")
    (tmp_path / "none.ini").write_text("[mypy]\n")  # not the repository's settings
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--python-executable",
            sys.executable,
            "--config-file",
            str(tmp_path / "none.ini"),
            str(probe),
        ],
        cwd=tmp_path,  # outside the repository: only site-packages can help
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "import-not-found" not in output, output
    assert "import-untyped" not in output, output
    for index in range(len(packages)):
        assert f"probe.py:{2 * index + 2}: error: Incompatible types in assignment" in output, (
            packages[index],
            output,
        )
