"""How long the ``localqueue`` command takes to start, against bare Python.

    python examples/startup_benchmark.py [--runs 15] [--json] [--save FILE]

Times ``localqueue --version``, ``localqueue queue add`` (one message into a
throwaway SQLite file) and ``localqueue queue stats``, each the median of
``--runs`` runs, with the plugins installed in this environment and with
none (``LOCALQUEUE_PLUGINS=``). The baseline, measured in the same run, is
the interpreter starting and exiting (``python -c pass``): the command's
own cost is the difference. Target (issue 15, item 13): ``--version`` and
``queue add`` under 0.25 s on a 2-core machine.

To see where the time goes: ``python -X importtime -m localqueue --version``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_record import record


def median_seconds(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--save", metavar="FILE", help="append this run to a JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="localqueue-startup-") as tmp:
        env = dict(os.environ, LOCALQUEUE_STORE=f"sqlite:///{Path(tmp) / 'queue.db'}")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what users get: cached bytecode
        command = [sys.executable, "-m", "localqueue"]
        cases = {
            "--version": [*command, "--version"],
            "queue add": [*command, "queue", "add", "jobs", "--value", '{"n": 1}'],
            "queue stats": [*command, "queue", "stats", "jobs"],
        }
        # Warm the bytecode cache and create the store once.
        for argv in cases.values():
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)

        baseline = median_seconds([sys.executable, "-c", "pass"], env, args.runs)
        results: dict[str, dict[str, float]] = {}
        for label, plugin_env in (
            ("installed plugins", env),
            ("no optional plugins", dict(env, LOCALQUEUE_PLUGINS="")),
        ):
            results[label] = {
                name: median_seconds(argv, plugin_env, args.runs) for name, argv in cases.items()
            }

    if args.save:
        record(args.save, "startup", {"baseline_python_s": baseline, "median_s": results}, sys.argv)
    if args.json:
        print(json.dumps({"baseline_python_s": baseline, "median_s": results}))
        return
    print(f"python -c pass: {baseline * 1000:.0f} ms (baseline, median of {args.runs})")
    for label, timings in results.items():
        print(f"{label}:")
        for name, seconds in timings.items():
            verdict = "ok" if seconds < 0.25 else "over the 0.25 s target"
            print(
                f"  localqueue {name:<12} {seconds * 1000:5.0f} ms  "
                f"({seconds / baseline:4.1f}x python -c pass)  {verdict}"
            )


if __name__ == "__main__":
    main()
