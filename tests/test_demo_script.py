"""scripts/demo.sh, the first command a newcomer runs (issue 15, item 14):
it runs the demo, and its last lines say how to put ``localqueue`` on PATH.

The script is run from a copy of the repository's layout whose install step
is a no-op and whose ``.venv/bin/python`` is this interpreter, so the test
neither reinstalls the environment it runs in nor needs the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_here(root: Path) -> None:
    """``root/.venv/bin/python``: this interpreter, environment and all (a
    symlink would lose the virtualenv, which is found next to the link)."""
    python = root / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)


def test_demo_ends_by_saying_how_to_put_localqueue_on_path(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    (tmp_path / "scripts" / "install.sh").write_text("#!/usr/bin/env bash\n")
    (tmp_path / "examples").mkdir()
    shutil.copy(REPO / "examples" / "demo.py", tmp_path / "examples" / "demo.py")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    python_here(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "demo.sh")],
        capture_output=True,
        text=True,
        env=dict(env, LOCALQUEUE_PLUGINS=""),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo finished\n" in done.stdout
    tail = done.stdout.rstrip().splitlines()[-3:]
    venv_bin = f"{tmp_path}/.venv/bin"
    assert (
        tail[0] == f"The localqueue command is installed in {venv_bin}. To use it from this shell:"
    )
    assert tail[1].split() == [
        "source",
        f"{venv_bin}/activate",  # absolute: right from wherever demo.sh was started
        "#",
        "or:",
        "export",
        f'PATH="{venv_bin}:$PATH"',
    ]
    assert tail[2].strip() == "localqueue --help"


def test_demo_passes_on_the_demos_exit_status(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    (tmp_path / "scripts" / "install.sh").write_text("#!/usr/bin/env bash\n")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "demo.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    python_here(tmp_path)
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "demo.sh")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 3
    assert "localqueue --help" in done.stdout  # the hint is shown either way
