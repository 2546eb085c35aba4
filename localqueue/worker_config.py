"""PersistentWorkerConfig: everything one worker runs with.

It starts from the queue's QueueSpec (shared by every worker of the queue)
and adds per-worker settings; ``with_overrides`` changes any of them for one
worker without touching the spec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from localqueue.spec import (
    MIN_EXHAUSTED_DELAY,
    PolicySettings,
    QueueSpec,
    backoff_from,
    exception_types,
)
from localqueue.store import check_positive_int, check_seconds

DEFAULT_HEARTBEAT_FRACTION = 1 / 3
DEFAULT_POLL_INTERVAL = 1.0
MIN_HEARTBEAT_INTERVAL = 0.01


@dataclass(frozen=True)
class PersistentWorkerConfig(PolicySettings):
    """Policy fields (as in QueueSpec) plus per-worker settings.

    ``heartbeat_fraction``: while a handler runs, its lease is extended every
    ``lease_timeout * heartbeat_fraction`` seconds, so a job longer than its
    lease stays leased while the worker is alive. ``poll_interval``: how long
    one blocking fetch waits before the worker re-checks for a stop request.
    """

    worker_id: str | None = None
    concurrency: int = 1
    heartbeat_fraction: float = DEFAULT_HEARTBEAT_FRACTION
    poll_interval: float = DEFAULT_POLL_INTERVAL
    handle_signals: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("concurrency", self.concurrency)
        fraction = self.heartbeat_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not (0 < fraction < 1)
        ):
            raise ValueError(f"heartbeat_fraction must be between 0 and 1, got {fraction!r}")
        check_seconds("poll_interval", self.poll_interval, positive=True)
        if self.heartbeat_interval < MIN_HEARTBEAT_INTERVAL:
            raise ValueError(
                f"lease_timeout * heartbeat_fraction must be at least {MIN_HEARTBEAT_INTERVAL}s "
                f"(a heartbeat more often would hammer the store), got {self.heartbeat_interval!r}"
            )
        if not isinstance(self.handle_signals, bool):
            raise ValueError(f"handle_signals must be True or False, got {self.handle_signals!r}")
        if self.worker_id is not None and (
            not isinstance(self.worker_id, str) or not self.worker_id.strip()
        ):
            raise ValueError(f"worker_id must be a non-empty string, got {self.worker_id!r}")

    @classmethod
    def from_spec(cls, spec: QueueSpec) -> PersistentWorkerConfig:
        values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(PolicySettings)}
        return cls(**values)

    @property
    def heartbeat_interval(self) -> float:
        return self.lease_timeout * self.heartbeat_fraction

    def retry_delay(self, attempts: int) -> float:
        """Delay before the next try after a failure on attempt ``attempts``."""
        if self.backoff is not None:
            return self.backoff.delay(attempts)
        return self.release_delay

    def exhausted_delay(self) -> float:
        """Delay for an exhausted message when dead-lettering is off: the capped
        backoff (or the release delay), and never less than one second."""
        capped = self.backoff.max if self.backoff is not None else self.release_delay
        return max(capped, MIN_EXHAUSTED_DELAY)

    def with_overrides(self, **overrides: Any) -> PersistentWorkerConfig:
        """A copy with some fields changed; unknown names are a ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown worker setting(s) {unknown}; known: {', '.join(sorted(known))}"
            )
        if "backoff" in overrides:
            overrides["backoff"] = backoff_from(overrides["backoff"])
        if "give_up_on" in overrides:
            overrides["give_up_on"] = exception_types(overrides["give_up_on"])
        return dataclasses.replace(self, **overrides)
