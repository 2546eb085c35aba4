"""examples/pgqueuer_benchmark.py needs pgqueuer, which localqueue does not
depend on: without it the script says how to install it, in one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "pgqueuer_benchmark.py"


@pytest.mark.skipif(
    importlib.util.find_spec("pgqueuer") is not None,
    reason="pgqueuer is installed here (localqueue-postgres[bench]): the benchmark would run",
)
def test_without_pgqueuer_the_benchmark_says_how_to_install_it() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", "postgresql://nowhere/none"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "pgqueuer is not installed; it is only needed for this benchmark: "
        "pip install -e 'plugins/postgres[bench]'"
    ]
