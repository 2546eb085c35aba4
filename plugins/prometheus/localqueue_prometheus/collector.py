"""Gauges read from the store at scrape time.

Counts of ready, delayed, inflight and dead messages are facts of the
store, not of any one process: reading them when Prometheus scrapes makes
them right however many worker processes there are, and after restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from localqueue.store import QueueStats, Store, all_stats, check_queue_name

log = logging.getLogger("localqueue.prometheus")

STATES = ("ready", "delayed", "inflight", "dead")


class StoreCollector(Collector):
    """Reports ``store``'s queues: the given ``queues``, or else every queue
    that holds a message at scrape time (an emptied queue then drops out;
    name queues to keep their zeros)."""

    def __init__(self, store: Store, queues: Sequence[str] | None = None) -> None:
        self.store = store
        # Each queue once: a repeated one would repeat its series, which
        # makes the whole exposition invalid.
        self.queues = [check_queue_name(q) for q in dict.fromkeys(queues)] if queues else None

    def describe(self) -> Iterable[Metric]:
        # Declared without reading the store, so registering never touches it.
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        messages, oldest, workers, heartbeat, up = self._families()
        try:
            # Every queue through the store's one-call fast path where it has
            # one, so a scrape costs the same at any backlog.
            stats = (
                [self.store.stats(q) for q in self.queues] if self.queues else all_stats(self.store)
            )
            now = self.store.clock.now()
        except Exception as exc:  # a store that is down must not hide the other metrics
            log.warning("could not read the store %s: %s", self.store.url, exc)
            up.add_metric([], 0)
            yield up
            return
        for s in stats:
            self._add(s, now, messages, oldest, workers, heartbeat)
        up.add_metric([], 1)
        yield from (messages, oldest, workers, heartbeat, up)

    @staticmethod
    def _add(
        s: QueueStats,
        now: float,
        messages: GaugeMetricFamily,
        oldest: GaugeMetricFamily,
        workers: GaugeMetricFamily,
        heartbeat: GaugeMetricFamily,
    ) -> None:
        for state in STATES:
            messages.add_metric([s.queue, state], getattr(s, state))
        oldest.add_metric([s.queue], s.oldest_ready_age or 0.0)
        workers.add_metric([s.queue], len(s.workers))
        if s.workers:
            heartbeat.add_metric([s.queue], max(0.0, now - max(s.workers.values())))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "localqueue_messages", "Messages in the store by state.", labels=["queue", "state"]
            ),
            GaugeMetricFamily(
                "localqueue_oldest_ready_age_seconds",
                "Seconds since the oldest ready message became available (0 when none is ready).",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "localqueue_workers",
                "Workers with a heartbeat entry on the queue (running, or killed without a "
                "clean stop; entries are dropped a week after their last heartbeat).",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "localqueue_newest_heartbeat_age_seconds",
                "Seconds since the most recent worker heartbeat on the queue (absent when no "
                "worker has an entry).",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "localqueue_store_up", "1 if the store could be read at this scrape, else 0."
            ),
        )
