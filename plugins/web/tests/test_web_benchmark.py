"""examples/web_benchmark.py keeps working: a tiny run, its record, and bad
arguments refused in one line (its timings are not looked at here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[3] / "examples" / "web_benchmark.py"


def test_a_tiny_run_renders_every_queue_and_saves_its_record(tmp_path: Path) -> None:
    saved = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--queues", "3", "--per-queue", "20", "--repeats", "1",
         "--save", str(saved)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "LOCALQUEUE_PLUGINS": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "overview page (GET /)" in done.stdout
    [run] = json.loads(saved.read_text())
    assert run["results"]["messages"] == 60 and run["results"]["verdict"] in ("PASS", "MISS")


@pytest.mark.parametrize(
    "arguments", [["--queues", "0"], ["--per-queue", "x"], ["--repeats", "-1"]]
)
def test_bad_arguments_are_refused_in_one_line(arguments: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "expected a whole number >= 1" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_a_store_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", "nosuch://x"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LOCALQUEUE_PLUGINS": ""},
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot open nosuch://x" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
