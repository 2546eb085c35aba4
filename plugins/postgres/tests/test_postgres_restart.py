"""``harness run --restart-cmd`` on PostgreSQL (issue 14, item 6): the
server restarts mid-run, producers and consumers ride out the outage, and
no confirmed message is lost.

The shared test server (``LOCALQUEUE_TEST_POSTGRES_URL``) is never
restarted - other tests use it at the same time. This test starts a server
of its own with ``scripts/postgres-server.sh`` (a few seconds) and restarts
that one; it runs only where the PostgreSQL tests run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "postgres-server.sh"
LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))


@pytest.fixture
def own_server(postgres_url: str) -> Iterator[tuple[str, Path]]:
    """A throwaway server of this test's own: (its URL, its directory)."""
    if not SCRIPT.exists():
        pytest.skip("scripts/postgres-server.sh is not in this checkout")
    # The server runs as the postgres user when we are root: it must be
    # able to enter every directory above its own.
    base = Path(tempfile.mkdtemp(prefix="lq-restart-"))
    base.chmod(0o755)
    server = base / "server"
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(server)],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if started.returncode != 0:
            pytest.fail(f"could not start a server of this test's own:\n{started.stderr}")
        yield started.stdout.strip(), server
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(server)], timeout=120)
        subprocess.run(["rm", "-rf", str(base)], timeout=60)


@pytest.mark.slow
def test_a_server_restart_mid_run_loses_nothing(
    own_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, server = own_server
    report_file = tmp_path / "report.json"
    env = {**os.environ}
    env.pop("LOCALQUEUE_STORE", None)
    out = subprocess.run(
        [LOCALQUEUE, "harness", "run", "--store", f"{url}?schema=restart_check",
         "--mode", "crash-recovery", "--producers", "2", "--consumers", "2",
         "--messages", "400", "--kills", "2", "--seed", "11", "--deadline", "240",
         "--restart-cmd", f"bash {SCRIPT} restart {server}", "--report", str(report_file)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(report_file.read_text())
    assert report["lost"] == 0 and report["confirmed"] == 400
    [restart] = report["restarts"]
    assert restart["exit_status"] == 0
    assert "restart: running bash" in out.stderr
