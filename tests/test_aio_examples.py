"""The async examples run as a user runs them: the FastAPI-shaped app of
docs/async.md (in plain asyncio, no web framework needed) and, sized down,
the async benchmark (its numbers belong to docs/async.md, not to a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_async_app_example_enqueues_and_works_every_request(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "async_app.py"), f"sqlite://{tmp_path}/app.db"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "20 requests answered" in out.stdout
    assert "worker stopped: 20 acked, 0 released" in out.stdout
    assert "20 welcome emails sent" in out.stdout


def test_the_async_benchmark_runs_and_reports_its_ratios() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "async_benchmark.py"), "--messages", "50",
         "--repeats", "1", "--json"],
        capture_output=True, text=True, timeout=120, cwd=EXAMPLES,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads(out.stdout)
    assert results["messages"] == 50
    assert results["async_put_vs_sync"] > 0 and results["async_get_ack_vs_sync"] > 0
    # 100 waiting gets: the store threads and one waiter, not a thread each.
    assert results["threads_with_100_waiting"] - results["threads_before_waiting"] <= 5
