"""Multi-process harness run on a SQLite file: throughput or crash recovery.

A thin entry point over ``localqueue_harness.runner`` (the same as
``localqueue --store URL harness run --mode ...``):

    python examples/sqlite_process_harness.py --mode crash-recovery --kills 20
    python examples/sqlite_process_harness.py --mode throughput --messages 20000

Prints the summary (or the JSON report with --json) and exits 1 when any
invariant fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from localqueue_harness.runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=["throughput", "crash-recovery"], default="throughput")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lq-process-harness-") as tmp:
        report = run(
            f"sqlite://{Path(tmp) / 'harness.sqlite3'}",
            mode=args.mode,
            producers=args.producers,
            consumers=args.consumers,
            messages=args.messages,
            kills=args.kills if args.mode == "crash-recovery" else 0,
            seed=args.seed,
            workdir=Path(tmp) / "run",
        )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
