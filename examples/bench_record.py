"""Keep benchmark runs in a JSON file, so a regression can be diffed.

Every benchmark under examples/ takes ``--save FILE``: the run is appended
to FILE (a JSON list, created if missing) with the command that produced
it, the machine, the date and the localqueue version, beside its numbers.
docs/benchmarks.md quotes these files; ``python examples/bench_record.py
FILE`` prints the runs a file holds, one line each. ``median_ms`` is the
timing the benchmarks that time single calls share.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """The median time of ``repeats`` calls, in milliseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    """What the numbers depend on, besides the code."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not on every platform
        load = None
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1min_at_start": load,
    }


def record(path: str, benchmark: str, results: dict[str, Any], argv: list[str]) -> None:
    """Append one run to ``path``."""
    from localqueue import __version__

    file = Path(path)
    runs: list[dict[str, Any]] = json.loads(file.read_text()) if file.exists() else []
    runs.append(
        {
            "benchmark": benchmark,
            "command": " ".join(["python", *argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "localqueue": __version__,
            "machine": machine(),
            "results": results,
        }
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(runs, indent=2) + "\n")


def main() -> None:
    for run in json.loads(Path(sys.argv[1]).read_text()):
        print(run["date"], run["command"], json.dumps(run["results"]))


if __name__ == "__main__":
    main()
