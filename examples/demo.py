"""End-to-end demo on the embedded SQLite store.

Puts five jobs, works them with a handler that always fails on one of them,
shows the queue's stats and the dead letter (with its error and attempt
count), then requeues the dead letter and shows it ready again.

    python examples/demo.py                 # a throwaway file in a temp directory
    python examples/demo.py --store sqlite:///tmp/demo.sqlite3
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import tempfile
from pathlib import Path
from typing import Any

from localqueue import PersistentQueue, State


def handle(job: dict[str, Any]) -> None:
    """The 'work': resize an image, except that one file is broken."""
    if job["file"] == "broken.png":
        raise ValueError(f"cannot decode {job['file']}: not a PNG file")


def work_until_empty(q: PersistentQueue) -> None:
    while True:
        try:
            msg = q.get(timeout=0.2)
        except queue.Empty:
            return
        try:
            handle(msg.value)
        except Exception as exc:
            went_to = q.release(msg, error=exc)
            print(
                f"  job {msg.id} {msg.value['file']:<12} attempt {msg.attempts}: "
                f"failed ({exc}) -> {went_to}"
            )
        else:
            q.ack(msg)
            print(f"  job {msg.id} {msg.value['file']:<12} attempt {msg.attempts}: done")


def show_stats(q: PersistentQueue) -> None:
    stats = q.stats().as_dict()
    print("  " + ", ".join(f"{k}={stats[k]}" for k in ("ready", "delayed", "inflight", "dead")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store URL (default: a new SQLite file in a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="localqueue-demo-") as tmp:
        url = args.store or f"sqlite://{Path(tmp) / 'demo.sqlite3'}"
        print(f"store: {url}")
        with PersistentQueue("localqueue-demo", store=url, max_attempts=3) as q:
            if q.stats().total:
                print(
                    f"error: queue 'localqueue-demo' in {url} already holds messages; "
                    "run the demo on an empty store (omit --store)",
                    file=sys.stderr,
                )
                return 1
            files = ["cat.png", "dog.png", "broken.png", "bird.png", "fish.png"]
            q.put_many([{"file": name} for name in files])
            print(f"\n1. put {len(files)} jobs")
            show_stats(q)

            print("\n2. work them (broken.png fails every time; 3 attempts allowed)")
            work_until_empty(q)

            print("\n3. stats")
            show_stats(q)

            print("\n4. dead letters")
            for dead in q.dead_letters():
                error = dead.last_error
                assert error is not None
                print(
                    f"  job {dead.id} {json.dumps(dead.value)} attempts={dead.attempts} "
                    f"error={error.type}: {error.message}"
                )

            print("\n5. requeue the dead letter (fresh attempt budget)")
            moved = q.requeue_dead(all=True)
            print(f"  requeued ids {moved}")
            for msg_id in moved:
                again = q.inspect(msg_id)
                print(f"  job {again.id} is {again.state}, attempts={again.attempts}")
            show_stats(q)
            ok = q.stats().ready == 1 and q.inspect(moved[0]).state is State.READY
    print("\ndemo finished" + ("" if ok else " WITH UNEXPECTED STATE"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
