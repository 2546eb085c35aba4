"""Blocking waits: pub/sub on the queue's channel, with a timeout to the next due time.

Every write that can make work available publishes to the queue's channel
inside its script. A waiting thread holds one pub/sub connection of its own
(redis-py's PubSub is not shared between threads), subscribes to a queue's
channel the first time it waits on that queue, and keeps the subscription.
It subscribes *before* it reads the queue's next due time, so a put that
lands after the read arrives as a message and ends the wait.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis


class Waker:
    """Per-thread subscriptions of one store, and the wait built on them."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._local = threading.local()

    def _subscriber(self, channel: str) -> Any:
        local = self._local
        pubsub = getattr(local, "pubsub", None)
        if pubsub is None or getattr(local, "pid", None) != os.getpid():
            # A forked child never uses its parent's connection.
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            local.pubsub, local.pid, local.channels = pubsub, os.getpid(), set()
        if channel not in local.channels:
            pubsub.subscribe(channel)
            local.channels.add(channel)
        return pubsub

    def drop(self) -> None:
        """Forget this thread's connection (broken, or the store is closing)."""
        local = self._local
        pubsub = getattr(local, "pubsub", None)
        local.pubsub = None
        if pubsub is not None and getattr(local, "pid", None) == os.getpid():
            with contextlib.suppress(redis.RedisError):
                pubsub.close()

    def _outage(self, deadline: float) -> None:
        # The server is unreachable: return after a short pause (a spurious
        # wake-up is allowed) and let the next claim report the outage.
        self.drop()
        time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))

    def wait(
        self,
        channel: str,
        timeout: float,
        next_due: Callable[[], tuple[float | None, float]],
    ) -> None:
        """Until a message on ``channel``, the next due time, or ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            pubsub = self._subscriber(channel)
            while pubsub.get_message(timeout=0.0) is not None:
                pass  # wake-ups from before this wait: the read below covers them
        except (redis.ConnectionError, redis.TimeoutError):
            self._outage(deadline)
            return
        due, now = next_due()
        if due is not None and due <= now:
            return
        until = deadline if due is None else min(deadline, time.monotonic() + (due - now))
        remaining = until - time.monotonic()
        try:
            # A subscription's confirmation reads as None too: keep waiting.
            while remaining > 0:
                if pubsub.get_message(timeout=remaining) is not None:
                    return
                remaining = until - time.monotonic()
        except (redis.ConnectionError, redis.TimeoutError):
            self._outage(deadline)
