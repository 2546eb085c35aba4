"""ServerClock (the kit's clock for networked stores): the host's clock plus
the server's measured offset, re-measured every REFRESH seconds, keeping
the last offset when a re-measure fails."""

from __future__ import annotations

import time

import pytest

from localqueue.store import ServerClock, StoreError


def test_now_follows_the_servers_offset_measured_once_per_refresh() -> None:
    reads: list[float] = []

    def read() -> float:
        reads.append(time.time())
        return time.time() + 3600.0  # a server an hour ahead

    clock = ServerClock(read)
    assert abs(clock.now() - (time.time() + 3600.0)) < 1.0
    clock.now()
    assert len(reads) == 1  # within REFRESH: no second round trip


def test_a_failed_remeasure_keeps_the_last_offset_and_a_failed_first_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[float | None] = [None]

    def read() -> float:
        answer = answers.pop(0)
        if answer is None:
            raise StoreError("the server is down")
        return answer

    clock = ServerClock(read)
    with pytest.raises(StoreError, match="down"):
        clock.now()
    answers[:] = [time.time() - 600.0, None]  # ten minutes behind, then down again
    assert abs(clock.now() - (time.time() - 600.0)) < 1.0
    monkeypatch.setattr(ServerClock, "REFRESH", 0.0)
    assert abs(clock.now() - (time.time() - 600.0)) < 1.0  # the re-measure failed
