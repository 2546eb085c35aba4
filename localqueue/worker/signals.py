"""The stop signals a worker answers, installed only while it runs.

SIGTERM (a service manager), SIGINT (Ctrl-C) and SIGHUP (a closed
terminal) ask a worker to stop; the first lets the running job finish, a
second stops at once. Handlers go in only in the main thread (Python
allows no other) and only for as long as the worker runs; whatever was
there before comes back after.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

# SIGHUP too: a closed terminal should stop a worker cleanly, not kill it.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def stop_signals_handled(
    handle: bool,
    on_signal: Callable[[int, FrameType | None], None],
    replaceable: Callable[[object], bool] = lambda handler: True,
) -> Iterator[None]:
    """``on_signal`` for the stop signals while the block runs (only in the
    main thread, only if ``handle``, only over handlers ``replaceable``
    accepts), the previous handlers restored after."""
    if not handle or threading.current_thread() is not threading.main_thread():
        yield
        return
    chosen = [sig for sig in STOP_SIGNALS if replaceable(signal.getsignal(sig))]
    previous = {sig: signal.signal(sig, on_signal) for sig in chosen}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
