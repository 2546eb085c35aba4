"""examples/worker_benchmark.py --profile: one no-op worker under cProfile,
printing where a job's time goes (the numbers docs/benchmarks.md quotes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "worker_benchmark.py"


def test_the_profile_shows_where_a_workers_time_goes() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--profile", "--messages", "200"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LOCALQUEUE_PLUGINS": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first.startswith("200 jobs in ") and "under the profiler" in first
    profile = "\n".join(rest)
    assert "tottime" in profile and "'execute' of 'sqlite3.Connection'" in profile
