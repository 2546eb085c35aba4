"""Throughput: the store's running totals of finished messages, sampled
twice, divided by the time between; on a store without them the pages say
so instead of passing net change off as throughput."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from localqueue import PersistentQueue
from localqueue.clock import ManualClock
from localqueue.store import FinishedCounts, QueueStats, Store, StoreError
from localqueue_web.charts import recent_rate, throughput_chart
from localqueue_web.history import History, Sampler

pytest_plugins = ["web_fixtures"]
MakeClient = Callable[..., TestClient]


def totals(queue: str, acked: int, dead: int = 0) -> dict[str, FinishedCounts]:
    return {queue: FinishedCounts(queue, acked, dead)}


def test_throughput_is_finished_per_minute_between_samples() -> None:
    history = History()
    history.add(0.0, [QueueStats("q", ready=90)], totals("q", 0))
    history.add(30.0, [QueueStats("q", ready=60)], totals("q", 30))
    history.add(60.0, [QueueStats("q", ready=0)], totals("q", 90, 6))
    chart = throughput_chart(history.series("q"), history.window)
    assert chart is not None
    assert (chart.low, chart.high, chart.last) == (60.0, 132.0, 132.0)
    assert chart.summary == (
        "finished per minute: 132 now (120 acked, 12 dead-lettered), 60 to 132 over the last 30 s"
    )


def test_the_overview_rate_spans_the_last_minute() -> None:
    history = History()
    for at, acked in ((0.0, 0), (30.0, 600), (60.0, 630), (90.0, 660)):
        history.add(at, [QueueStats("q", ready=1)], totals("q", acked))
    # 30 s to 90 s: 60 finished in a minute (the burst before it is older).
    assert recent_rate(history.series("q")) == 60.0
    assert recent_rate(history.series("q")[:1]) is None
    history = History()
    history.add(0.0, [QueueStats("q", ready=1)])
    history.add(9.0, [QueueStats("q", ready=1)])
    assert recent_rate(history.series("q")) is None


def test_no_throughput_without_finished_counts_or_from_one_sample() -> None:
    history = History()
    history.add(0.0, [QueueStats("q", ready=1)])
    history.add(30.0, [QueueStats("q", ready=2)])
    assert throughput_chart(history.series("q"), history.window) is None
    history = History()
    history.add(0.0, [QueueStats("q", ready=1)], totals("q", 5))
    chart = throughput_chart(history.series("q"), history.window)
    assert chart is not None and chart.summary == "throughput: needs two samples"


def test_totals_that_went_back_are_skipped_not_drawn_negative() -> None:
    # Totals only grow; lower ones mean another store behind the same name
    # (a PostgreSQL schema dropped and made again): that step is left out.
    history = History()
    for at, acked in ((0.0, 50), (60.0, 10), (120.0, 70)):
        history.add(at, [QueueStats("q", ready=1)], totals("q", acked))
    chart = throughput_chart(history.series("q"), history.window)
    assert chart is not None and (chart.low, chart.high) == (60.0, 60.0)


def test_a_queue_that_emptied_keeps_being_sampled_while_it_has_totals() -> None:
    history = History()
    history.add(0.0, [QueueStats("q", ready=100)], totals("q", 0))
    history.add(60.0, [], totals("q", 100))  # all_stats lists only queues holding messages
    history.add(120.0, [], totals("q", 100))
    history.add(120.0, [], totals("elsewhere", 3))  # never charted: not started now
    assert [(s.waiting, s.acked) for s in history.series("q")] == [(100, 0), (0, 100), (0, 100)]
    chart = throughput_chart(history.series("q"), history.window)
    assert chart is not None and chart.last == 0.0 and chart.high == 100.0
    assert history.series("elsewhere") == []


def test_the_pages_show_throughput_measured_on_a_real_store(
    store: Store, make_client: MakeClient
) -> None:
    clock = ManualClock(1000.0)
    history = History()
    sampler = Sampler(store, history, every=60.0, clock=clock.now)
    sampler.sample_once()
    with PersistentQueue("emails", store=store) as q:
        for _ in range(2):  # the two ready ones
            q.ack(q.get(block=False))
    clock.advance(30.0)
    sampler.sample_once()
    with make_client(store, history=history) as c:
        page = c.get("/queue?name=emails").text
        overview = c.get("/").text
    assert "finished per minute: 4 now (4 acked, 0 dead-lettered)" in page
    row = re.search(r'<tr data-queue="emails">.*?</tr>', overview, re.S)
    assert row and re.search(r'class="n throughput">4<', row[0])


class WithoutFinishedCounts:
    """A store that keeps no finished counts: everything else passes through."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        if name == "finished_counts":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_a_store_without_finished_counts_says_so(store: Store, make_client: MakeClient) -> None:
    plain = WithoutFinishedCounts(store)
    history = History()
    sampler = Sampler(plain, history, every=60.0)  # type: ignore[arg-type]
    sampler.sample_once()
    sampler.sample_once()
    assert history.series("emails")[-1].acked is None
    with make_client(plain, history=history) as c:
        page = c.get("/queue?name=emails").text
    assert "this store keeps no finished counts" in page
    assert "finished per minute" not in page


class RefusingFinishedCounts(WithoutFinishedCounts):
    def finished_counts(self) -> list[FinishedCounts]:
        raise StoreError("store file x.db keeps no finished counts yet (an older schema)")


def test_a_store_that_cannot_give_totals_is_still_sampled(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    history = History()
    sampler = Sampler(RefusingFinishedCounts(store), history, every=60.0)  # type: ignore[arg-type]
    sampler.sample_once()
    sampler.sample_once()
    assert len(history.series("emails")) == 2
    assert caplog.text.count("no throughput: store file x.db keeps no finished counts") == 1


def test_one_failed_read_of_the_totals_leaves_a_gap_not_a_blank_chart() -> None:
    history = History()
    history.add(0.0, [QueueStats("q", ready=9)], totals("q", 0))
    history.add(30.0, [QueueStats("q", ready=9)])  # the store could not say, this once
    history.add(60.0, [QueueStats("q", ready=9)], totals("q", 60))
    chart = throughput_chart(history.series("q"), history.window)
    assert chart is not None and chart.last == 60.0
    assert recent_rate(history.series("q")) == 60.0


class BrokenFinishedCounts(WithoutFinishedCounts):
    def finished_counts(self) -> list[FinishedCounts]:
        raise NotImplementedError("a store's bug")


def test_a_store_whose_totals_fail_oddly_still_gets_its_depth_sampled(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    history = History()
    sampler = Sampler(BrokenFinishedCounts(store), history, every=60.0)  # type: ignore[arg-type]
    sampler.sample_once()
    sampler.sample_once()
    assert [s.ready for s in history.series("emails")] == [2, 2]
    assert caplog.text.count("no throughput: NotImplementedError: a store's bug") == 1


def test_an_emptied_queue_ages_out_once_idle_for_a_whole_window() -> None:
    # The totals never go away; without this a dashboard would keep every
    # queue that ever finished a message, a window of samples each.
    history = History(window=60.0)
    history.add(0.0, [QueueStats("brief", ready=5)], totals("brief", 0))
    for at in range(10, 200, 10):
        history.add(float(at), [], totals("brief", 5))
    assert history.series("brief") == []
    busy = History(window=60.0)
    busy.add(0.0, [QueueStats("busy", ready=5)], totals("busy", 0))
    for at in range(10, 200, 10):  # still finishing work that arrives and goes between samples
        busy.add(float(at), [], totals("busy", 5 + at))
    assert len(busy.series("busy")) >= 6
