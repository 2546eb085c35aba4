"""Small inline SVG charts of a queue's history, drawn on the server: no
script library, nothing fetched, and the numbers are in the page as text
too (the chart's title) for anyone who cannot see it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from localqueue_web.history import Sample

WIDTH = 240
HEIGHT = 48


@dataclass(frozen=True)
class Chart:
    """What a template needs to draw one line: SVG points and a summary."""

    points: str  # "x,y x,y ..." for <polyline points=...>
    low: float
    high: float
    last: float | None
    summary: str


def _scale(values: Sequence[float], times: Sequence[float], window: float) -> str:
    """SVG points: time across (the window, or less while the history is
    shorter, so a new server's chart is not one line at the right edge),
    value up, between the lowest and highest value shown."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    end = times[-1]
    across = min(window, end - times[0]) or 1.0
    points = []
    for at, value in zip(times, values, strict=True):
        x = WIDTH * (1 - (end - at) / across)
        y = HEIGHT - 2 - (HEIGHT - 4) * (value - low) / span
        points.append(f"{max(0.0, x):.1f},{y:.1f}")
    return " ".join(points)


def _covered(times: Sequence[float]) -> str:
    seconds = times[-1] - times[0] if times else 0.0
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def depth_chart(samples: Sequence[Sample], window: float) -> Chart:
    """Messages waiting (ready, delayed and inflight) at each sample."""
    values = [float(s.waiting) for s in samples]
    times = [s.at for s in samples]
    if not values:
        return Chart("", 0, 0, None, "no samples yet")
    summary = (
        f"waiting: {int(values[-1]):,} now, between {int(min(values)):,} and "
        f"{int(max(values)):,} over the last {_covered(times)}"
    )
    return Chart(_scale(values, times, window), min(values), max(values), values[-1], summary)


def throughput_chart(samples: Sequence[Sample], window: float) -> Chart | None:
    """Messages finished (acked or dead-lettered) per minute between samples,
    from the store's running totals; None when the store keeps none."""
    # Samples without totals (a read that failed now and then) are skipped;
    # a store that never gave any has no throughput to show.
    known = [s for s in samples if s.acked is not None and s.dead_lettered is not None]
    if not known:
        return None
    times, values = [], []
    acked = dead = 0.0
    for before, after in pairwise(known):
        took = after.at - before.at
        grew_acked = (after.acked or 0) - (before.acked or 0)
        grew_dead = (after.dead_lettered or 0) - (before.dead_lettered or 0)
        if took > 0 and grew_acked >= 0 and grew_dead >= 0:  # totals only grow
            times.append(after.at)
            acked, dead = grew_acked * 60.0 / took, grew_dead * 60.0 / took
            values.append(acked + dead)
    if not values:
        return Chart("", 0, 0, None, "throughput: needs two samples")
    summary = (
        f"finished per minute: {values[-1]:,.0f} now ({acked:,.0f} acked, {dead:,.0f} "
        f"dead-lettered), {min(values):,.0f} to {max(values):,.0f} over the last "
        f"{_covered(times)}"
    )
    return Chart(_scale(values, times, window), min(values), max(values), values[-1], summary)


def recent_rate(samples: Sequence[Sample], seconds: float = 60.0) -> float | None:
    """Messages finished per minute over the last ``seconds`` of samples (or
    what there is of them): steadier than the last interval alone, for the
    overview's column. None without finished counts or two samples."""
    known = [s for s in samples if s.acked is not None and s.dead_lettered is not None]
    if not known:
        return None
    last = known[-1]
    first = next(s for s in known if s.at >= last.at - seconds)
    took = last.at - first.at
    if took <= 0:
        return None
    done = (last.acked or 0) + (last.dead_lettered or 0)
    done -= (first.acked or 0) + (first.dead_lettered or 0)
    return max(0.0, done * 60.0 / took)


def change_chart(samples: Sequence[Sample], window: float) -> Chart:
    """Net change of waiting messages per minute between samples: above zero
    the backlog grows, below zero it drains. Messages that arrive and finish
    between two samples do not show here (the throughput chart counts them,
    on a store that keeps finished counts)."""
    times, values = [], []
    for before, after in pairwise(samples):
        took = after.at - before.at
        if took > 0:
            times.append(after.at)
            values.append((after.waiting - before.waiting) * 60.0 / took)
    if not values:
        return Chart("", 0, 0, None, "needs two samples")
    summary = (
        f"change per minute: {values[-1]:+,.0f} now, {min(values):+,.0f} to {max(values):+,.0f}"
    )
    return Chart(_scale(values, times, window), min(values), max(values), values[-1], summary)
