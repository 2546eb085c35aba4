"""examples/pgqueuer_benchmark.py needs pgqueuer, which localqueue does not
depend on: without it the script says how to install it, in one line. Both
PostgreSQL benchmarks refuse bad arguments and an unreachable server in one
line too."""

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


POSTGRES_SCRIPT = SCRIPT.with_name("postgres_benchmark.py")


def one_line_usage_error(script: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("script", [SCRIPT, POSTGRES_SCRIPT], ids=["pgqueuer", "postgres"])
def test_the_benchmarks_refuse_bad_arguments_in_one_line(script: Path) -> None:
    runs = "--runs" if script == SCRIPT else "--repeats"
    assert "at least 1" in one_line_usage_error(script, runs, "0")
    if script == POSTGRES_SCRIPT:  # the other needs pgqueuer before it connects
        refused = one_line_usage_error(script, "--url", "postgresql://127.0.0.1:1/none")
        assert "cannot reach the server of --url" in refused
