"""QueueSpec and PersistentWorkerConfig: what a queue's workers run with.

Several workers of one queue share a spec (lease, retry budget, backoff,
pacing, breaker); each ``with_*`` returns a new spec, so a spec can be
defined once at module level and refined per use without surprises.

PersistentWorkerConfig starts from a QueueSpec and adds per-worker
settings; ``with_overrides`` changes any of them for one worker without
touching the spec. It lives here rather than in :mod:`localqueue.worker`
because the queue builds it (``PersistentQueue.build_worker_config``) and
the worker depends on the queue, not the other way round.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from localqueue.store.validation import (
    check_lease_timeout,
    check_positive_int,
    check_queue_name,
    check_seconds,
)

__all__ = [
    "DEFAULT_HEARTBEAT_FRACTION",
    "DEFAULT_LEASE_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_POLL_INTERVAL",
    "MAX_PREFETCH",
    "Backoff",
    "PersistentWorkerConfig",
    "QueueSpec",
]

DEFAULT_LEASE_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
# With dead-lettering turned off, an exhausted message is released again with
# at least this delay, so a poison message can never become a hot loop.
MIN_EXHAUSTED_DELAY = 1.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``initial * multiplier ** (retry - 1)``, capped at
    ``max``, then spread by +/- ``jitter`` (a fraction, 0.1 = 10 %)."""

    initial: float = 1.0
    multiplier: float = 2.0
    max: float = 300.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        check_seconds("backoff.initial", self.initial)
        check_seconds("backoff.max", self.max)
        if not _finite(self.multiplier) or self.multiplier < 1:
            raise ValueError(f"backoff.multiplier must be a number >= 1, got {self.multiplier!r}")
        if not _finite(self.jitter) or not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff.jitter must be between 0 and 1, got {self.jitter!r}")
        if self.max < self.initial:
            raise ValueError(
                f"backoff.max ({self.max!r}) must be >= backoff.initial ({self.initial!r})"
            )

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 = first retry)."""
        raw = self.initial
        for _ in range(max(0, retry - 1)):
            if raw >= self.max:
                break  # stop early: large powers would overflow a float
            raw *= self.multiplier
        base = min(raw, self.max)
        if self.jitter:
            spread = base * self.jitter
            base += (rng or random).uniform(-spread, spread)
        return max(0.0, base)


def _finite(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not math.isnan(value)
        and not math.isinf(value)
    )


def backoff_from(value: Backoff | Mapping[str, Any] | None) -> Backoff | None:
    if value is None or isinstance(value, Backoff):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {f.name for f in dataclasses.fields(Backoff)}
        if unknown:
            raise ValueError(
                f"backoff has unknown key(s) {sorted(unknown)}; "
                "use initial, multiplier, max, jitter"
            )
        return Backoff(**value)
    raise ValueError(f"backoff must be a Backoff or a mapping, got {value!r}")


def exception_types(
    value: Iterable[type[BaseException]] | type[BaseException],
) -> tuple[type[BaseException], ...]:
    items = (value,) if isinstance(value, type) else tuple(value)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ValueError(f"give_up_on must list exception classes, got {item!r}")
    return items


@dataclass(frozen=True)
class PolicySettings:
    """The settings a queue's workers share: lease, retry budget, backoff,
    pacing, breaker. QueueSpec and PersistentWorkerConfig both carry them.

    ``max_retries`` counts retries after the first attempt, so a message is
    delivered at most ``max_retries + 1`` times before it is exhausted.
    """

    name: str
    lease_timeout: float = DEFAULT_LEASE_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: Backoff | None = None
    give_up_on: tuple[type[BaseException], ...] = ()
    release_delay: float = 0.0
    min_interval: float = 0.0
    breaker_threshold: int | None = None
    breaker_cooldown: float | None = None
    dead_letter_on_failure: bool = True
    # Messages a worker leases at once, in the transaction that acks the
    # batch before (see docs/workers.md, "Batches").
    prefetch: int = 1

    def __post_init__(self) -> None:
        validate_policy_fields(self)

    @property
    def max_attempts(self) -> int | None:
        """Deliveries before a message is exhausted; None when exhausted
        messages are never dead-lettered."""
        return self.max_retries + 1 if self.dead_letter_on_failure else None


@dataclass(frozen=True)
class QueueSpec(PolicySettings):
    """The defaults every worker of one queue starts from, as an immutable
    fluent builder: each ``with_*`` returns a new spec."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # A worker's config needs more (see MIN_HEARTBEAT_INTERVAL) and says so.
        check_lease_timeout(self.lease_timeout)

    def with_name(self, name: str) -> QueueSpec:
        return dataclasses.replace(self, name=name)

    def with_lease_timeout(self, seconds: float) -> QueueSpec:
        return dataclasses.replace(self, lease_timeout=seconds)

    def with_retry(
        self,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        backoff: Backoff | Mapping[str, Any] | None = None,
        give_up_on: Iterable[type[BaseException]] | type[BaseException] = (),
    ) -> QueueSpec:
        return dataclasses.replace(
            self,
            max_retries=max_retries,
            backoff=backoff_from(backoff),
            give_up_on=exception_types(give_up_on),
        )

    def with_release_delay(self, seconds: float) -> QueueSpec:
        return dataclasses.replace(self, release_delay=seconds)

    def with_min_interval(self, seconds: float) -> QueueSpec:
        return dataclasses.replace(self, min_interval=seconds)

    def with_circuit_breaker(self, *, threshold: int, cooldown: float) -> QueueSpec:
        return dataclasses.replace(self, breaker_threshold=threshold, breaker_cooldown=cooldown)

    def with_dead_letter_on_failure(self, enabled: bool) -> QueueSpec:
        return dataclasses.replace(self, dead_letter_on_failure=enabled)

    def with_prefetch(self, messages: int) -> QueueSpec:
        return dataclasses.replace(self, prefetch=messages)


def validate_policy_fields(obj: Any) -> None:
    """Shared checks for QueueSpec and PersistentWorkerConfig; errors name the field."""
    check_queue_name(obj.name)
    check_seconds("lease_timeout", obj.lease_timeout, positive=True)
    retries = obj.max_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"max_retries must be an integer >= 0, got {retries!r}")
    if obj.backoff is not None and not isinstance(obj.backoff, Backoff):
        raise ValueError(f"backoff must be a Backoff, got {obj.backoff!r}")
    if not isinstance(obj.give_up_on, tuple):
        # Frozen dataclasses: normalise a list given to the constructor.
        object.__setattr__(obj, "give_up_on", exception_types(obj.give_up_on))
    exception_types(obj.give_up_on)
    check_seconds("release_delay", obj.release_delay)
    check_seconds("min_interval", obj.min_interval)
    threshold, cooldown = obj.breaker_threshold, obj.breaker_cooldown
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ValueError(f"breaker_threshold must be an integer >= 1, got {threshold!r}")
        if cooldown is None:
            raise ValueError("breaker_cooldown is required when breaker_threshold is set")
    if cooldown is not None:
        check_seconds("breaker_cooldown", cooldown, positive=True)
        if threshold is None:
            raise ValueError("breaker_threshold is required when breaker_cooldown is set")
    if not isinstance(obj.dead_letter_on_failure, bool):
        raise ValueError(
            f"dead_letter_on_failure must be True or False, got {obj.dead_letter_on_failure!r}"
        )
    prefetch = obj.prefetch
    if (
        isinstance(prefetch, bool)
        or not isinstance(prefetch, int)
        or not (1 <= prefetch <= MAX_PREFETCH)
    ):
        raise ValueError(f"prefetch must be an integer from 1 to {MAX_PREFETCH}, got {prefetch!r}")


# A batch this large already pays one commit per thousand messages; more
# would only hold more leases that a crash sends back to be run again.
MAX_PREFETCH = 1000
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
        # The tolerance lets 0.03 s * (1/3), which is 0.00999..98 in floats, pass.
        if self.heartbeat_interval < MIN_HEARTBEAT_INTERVAL - 1e-12:
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
