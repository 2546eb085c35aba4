"""Named crash points inside the SQLite store, for the conformance harness.

A test arms one point by name in its own process (``arm("claim:after_commit")``);
when the store reaches that point the process SIGKILLs itself, and the test
checks the file after a reopen. Only code can arm a point: there is no
environment variable, URL option or setting that does, so normal use can
never turn one on. Unarmed, each point costs one attribute check.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "put:before",
    "put:after_commit",
    "put_many:mid",  # rows inserted, transaction not committed
    "put_many:after_commit",
    "claim:after_commit",
    "ack:before",
    "ack:after_commit",
    "release:after_commit",
    "dead_letter:after_commit",
)

armed: str | None = None


def arm(point: str) -> None:
    """SIGKILL this process when the store reaches ``point`` (harness only)."""
    global armed
    if point not in POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(POINTS)}")
    armed = point


def hit(point: str) -> None:
    if armed == point:
        os.kill(os.getpid(), signal.SIGKILL)
