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
    "settle_and_claim:mid",  # settlements applied, claim not made, not committed
    "settle_and_claim:after_commit",
)

# Points inside maintenance operations (kept apart: the harness covers POINTS).
MAINTENANCE_POINTS = (
    "migrate:before_commit",  # every step run, transaction not committed
    "backup:before_rename",  # verified copy written beside DEST, not yet renamed
)

armed: str | None = None


def arm(point: str) -> None:
    """SIGKILL this process when the store reaches ``point`` (harness only)."""
    global armed
    known = POINTS + MAINTENANCE_POINTS
    if point not in known:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(known)}")
    armed = point


def hit(point: str) -> None:
    if armed == point:
        os.kill(os.getpid(), signal.SIGKILL)
