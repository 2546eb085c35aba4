"""The charts' history: sampled by a thread while the server runs, an hour
kept, a store that fails now and then survived."""

from __future__ import annotations

import time

import pytest

from localqueue.store import QueueStats, Store, all_stats
from localqueue_web.charts import change_chart, depth_chart
from localqueue_web.history import History, Sampler

pytest_plugins = ["web_fixtures"]


def stats(queue: str, ready: int, dead: int = 0) -> QueueStats:
    return QueueStats(queue=queue, ready=ready, dead=dead)


def test_history_keeps_the_window_and_forgets_queues_that_left_it() -> None:
    history = History(window=60.0)
    history.add(0.0, [stats("a", 1), stats("b", 5)])
    history.add(30.0, [stats("a", 2)])
    history.add(70.0, [stats("a", 3)])
    assert [s.ready for s in history.series("a")] == [2, 3]
    assert history.series("b") == []  # its one sample is over a minute old
    assert history.series("never") == []


def test_charts_read_depth_and_change_per_minute() -> None:
    history = History()
    for at, ready in ((0.0, 10), (30.0, 40), (60.0, 40), (90.0, 0)):
        history.add(at, [stats("q", ready, dead=7)])
    samples = history.series("q")
    depth = depth_chart(samples, history.window)
    assert depth.summary == "waiting: 0 now, between 0 and 40 over the last 90 s"
    change = change_chart(samples, history.window)
    assert (change.low, change.high, change.last) == (-80.0, 60.0, -80.0)
    assert change.summary.startswith("change per minute: -80 now, -80 to +60")
    # Time runs across the whole width even while the history is short.
    xs = [float(point.split(",")[0]) for point in depth.points.split()]
    assert xs[0] == 0.0 and xs[-1] == 240.0
    assert depth_chart([], 3600).summary == "no samples yet"
    assert change_chart(samples[:1], 3600).summary == "needs two samples"


def test_the_sampler_samples_every_queue_until_stopped(store: Store) -> None:
    history = History()
    sampler = Sampler(store, history, every=0.05)
    sampler.start()
    try:
        deadline = time.monotonic() + 10
        while len(history.series("emails")) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sampler.stop()
    found = history.series("emails")
    assert len(found) >= 3 and found[-1].ready == 2 and found[-1].dead == 3
    assert len(history.series("reports")) >= 3
    taken = len(history.series("emails"))
    time.sleep(0.2)
    assert len(history.series("emails")) == taken  # stopped means stopped


class Flaky:
    """A store whose counts fail every other time (a server restarting)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def all_stats(self) -> list[QueueStats]:
        self.calls += 1
        if self.calls % 2:
            raise ConnectionError("the server is restarting")
        return all_stats(self.store)


def test_the_sampler_rides_out_a_failing_store(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    history = History()
    flaky = Flaky(store)
    sampler = Sampler(flaky, history, every=0.02)  # type: ignore[arg-type]
    sampler.start()
    try:
        deadline = time.monotonic() + 10
        while len(history.series("emails")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sampler.stop()
    assert len(history.series("emails")) >= 2
    assert flaky.calls >= 3
    assert "sampling the queues failed: the server is restarting" in caplog.text
