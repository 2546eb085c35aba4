"""Argument checks shared by the queue and the stores.

A store may be called directly (by the harness, by a plugin), so the rules
for names, keys, ids and durations live here, once, with errors that name
the argument and say what it must be.
"""

from __future__ import annotations

import math
import re

# The shortest lease a queue accepts. A lease must end after it starts: with
# time.time() near 1.7e9, now + 1e-9 == now, so a lease that short would end
# as it is granted and its message could never be acked. 1 ms is far above
# any clock's resolution and below any lease that makes sense.
MIN_LEASE_TIMEOUT = 0.001

# C0 controls, DEL and C1 controls (U+0080-U+009F).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_queue_name(queue: str) -> str:
    """Queue names are non-empty UTF-8 strings without control characters
    (C0, DEL or C1), of at most 200 characters."""
    if not isinstance(queue, str) or not queue.strip():
        raise ValueError(f"queue name must be a non-empty string, got {queue!r}")
    if _CONTROL.search(queue) or len(queue) > 200 or not _is_utf8(queue):
        raise ValueError(
            "queue name must be printable (no control characters) and at most "
            f"200 characters, got {queue!r}"
        )
    return queue


def check_dedupe_key(key: str | None) -> str | None:
    """Dedupe keys are None or non-empty UTF-8 strings without NUL."""
    if key is None:
        return None
    if not isinstance(key, str) or not key or "\x00" in key or not _is_utf8(key):
        raise ValueError(
            f"dedupe_key must be None or a non-empty text without NUL characters, got {key!r}"
        )
    return key


def check_message_id(value: object, argument: str = "message id") -> int:
    """Message ids are positive 64-bit integers."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise ValueError(f"{argument} must be a positive integer id, got {value!r}")
    return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def check_seconds(name: str, value: float, *, positive: bool = False) -> float:
    """Durations are finite numbers >= 0 (or > 0); the error names the argument."""
    cls = value.__class__
    if (cls is float or cls is int) and (0 < value < math.inf or (value == 0 and not positive)):
        return float(value)  # the common case first: this runs on every put and get
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def check_lease_timeout(value: float, name: str = "lease_timeout") -> float:
    """Leases are finite numbers of seconds >= MIN_LEASE_TIMEOUT."""
    seconds = check_seconds(name, value, positive=True)
    if seconds < MIN_LEASE_TIMEOUT:
        raise ValueError(
            f"{name} must be at least {MIN_LEASE_TIMEOUT:g} seconds (a shorter lease "
            f"would end as it is granted and its message could never be acked), got {value!r}"
        )
    return seconds


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_priority(value: int) -> int:
    if value.__class__ is int and -(2**31) <= value < 2**31:
        return value  # the common case first: this runs on every put (bool is not int here)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"priority must be an integer, got {value!r}")
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"priority must fit in 32 bits, got {value!r}")
    return value
