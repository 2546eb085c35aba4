"""localqueue-prometheus: counters from events, gauges read from the store at
scrape time, counters of several worker processes added up, and the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from localqueue import LeaseExpired as LeaseExpiredError
from localqueue import ManualClock, PersistentQueue
from localqueue.cli import build_cli
from localqueue.plugins import list_plugins, reset_plugin_manager
from localqueue.stores.sqlite import SQLiteStore
from localqueue.worker import persistent_worker
from localqueue_prometheus import StoreCollector, build_registry

Labels = dict[str, str]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in (
        "LOCALQUEUE_STORE",
        "LOCALQUEUE_PLUGINS",
        "LOCALQUEUE_DISABLE_PLUGINS",
        "LOCALQUEUE_LOG_EVENTS",
        "PROMETHEUS_MULTIPROC_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    reset_plugin_manager()
    yield
    reset_plugin_manager()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_plugin_is_installed_through_the_entry_point() -> None:
    [plugin] = [p for p in list_plugins() if p["name"] == "prometheus"]
    assert plugin["distribution"].startswith("localqueue-prometheus ")
    assert plugin["hooks"] == ["localqueue_cli_commands", "localqueue_event"]


def test_events_feed_the_counters_and_histograms(tmp_path: Path) -> None:
    name = f"counted-{os.getpid()}-{tmp_path.name}"  # the default registry outlives a test
    clock = ManualClock()
    store = SQLiteStore(tmp_path / "q.sqlite3", clock=clock)
    with PersistentQueue(name, store=store, lease_timeout=10) as q:
        q.put_many(["a", "b", "bad"])
        q.put("c", dedupe_key="k")
        clock.advance(1)  # a dedupe hit is told by its older created_at
        q.put("c", dedupe_key="k")  # adds nothing

        @persistent_worker(q, max_retries=1, handle_signals=False, poll_interval=0.01)
        def handle(value: str) -> None:
            if value == "bad":
                raise ValueError("bad value")

        summary = handle.run(until_empty=True)
        assert (summary.acked, summary.released, summary.dead) == (3, 1, 1)
        q.put("late")
        held = q.get(block=False)
        clock.advance(11)
        with pytest.raises(LeaseExpiredError):
            q.ack(held)
    store.close()
    assert counter("localqueue_enqueued_total", queue=name) == 5
    assert counter("localqueue_acked_total", queue=name) == 3
    assert counter("localqueue_released_total", queue=name) == 1
    assert counter("localqueue_dead_lettered_total", queue=name) == 1
    assert counter("localqueue_lease_expired_total", queue=name, found_by="holder") == 1
    assert counter("localqueue_lease_expired_total", queue=name, found_by="claim") == 0
    durations = {
        outcome: counter("localqueue_handler_duration_seconds_count", queue=name, outcome=outcome)
        for outcome in ("acked", "released", "dead")
    }
    assert durations == {"acked": 3, "released": 1, "dead": 1}
    # First deliveries only: a, b, bad, c and late; the retry of bad is not one.
    assert counter("localqueue_time_to_start_seconds_count", queue=name) == 5
    # a, b, bad and c waited 1 s (the clock moved before the worker ran); late 0 s.
    assert counter("localqueue_time_to_start_seconds_sum", queue=name) == 4.0


def test_a_lease_taken_over_after_expiry_is_counted(tmp_path: Path) -> None:
    name = f"reclaimed-{os.getpid()}-{tmp_path.name}"
    clock = ManualClock()
    store = SQLiteStore(tmp_path / "q.sqlite3", clock=clock)
    with PersistentQueue(name, store=store, lease_timeout=10) as q:
        q.put_many(["a", "b"])
        q.get_many(2, block=False)  # a worker takes both, then is killed
        clock.advance(11)

        @persistent_worker(q, handle_signals=False, poll_interval=0.01)
        def handle(value: str) -> None:
            pass

        assert handle.run(until_empty=True).acked == 2
    store.close()
    assert counter("localqueue_lease_expired_total", queue=name, found_by="claim") == 2
    assert counter("localqueue_lease_expired_total", queue=name, found_by="holder") == 0


def test_a_requeued_dead_letter_is_not_a_first_delivery_again(tmp_path: Path) -> None:
    name = f"requeued-{os.getpid()}-{tmp_path.name}"
    clock = ManualClock()
    store = SQLiteStore(tmp_path / "q.sqlite3", clock=clock)
    with PersistentQueue(name, store=store) as q:
        q.put("x")
        clock.advance(2)
        q.dead_letter(q.get(block=False), error="broken")
        clock.advance(86400)  # a day as a dead letter
        q.requeue_dead(all=True)
        q.ack(q.get(block=False))
    store.close()
    assert counter("localqueue_time_to_start_seconds_count", queue=name) == 1
    assert counter("localqueue_time_to_start_seconds_sum", queue=name) == 2.0


def test_gauges_are_read_from_the_store_at_scrape_time(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SQLiteStore(tmp_path / "g.sqlite3", clock=clock)
    q = PersistentQueue("jobs", store=store)
    q.put_many(["a", "b", "c"])
    q.put("d", delay=60)
    q.get(block=False)  # inflight
    q.dead_letter(q.get(block=False), error="x")
    store.record_heartbeat("jobs", "w1")
    clock.advance(5)
    registry = build_registry(store, ["jobs", "idle"])
    found = samples(generate_latest(registry).decode())
    states = {s: value(found, "localqueue_messages", queue="jobs", state=s) for s in
              ("ready", "delayed", "inflight", "dead")}  # fmt: skip
    assert states == {"ready": 1, "delayed": 1, "inflight": 1, "dead": 1}
    assert value(found, "localqueue_oldest_ready_age_seconds", queue="jobs") == 5.0
    assert value(found, "localqueue_workers", queue="jobs") == 1
    assert value(found, "localqueue_newest_heartbeat_age_seconds", queue="jobs") == 5.0
    assert value(found, "localqueue_messages", queue="idle", state="ready") == 0
    assert value(found, "localqueue_store_up") == 1
    # Read again at the next scrape: the gauges follow the store.
    q.ack_many(q.get_many(5, block=False))
    found = samples(generate_latest(registry).decode())
    assert value(found, "localqueue_messages", queue="jobs", state="ready") == 0
    # Without --queue, every queue that holds a message, and no other.
    found = samples(generate_latest(build_registry(store)).decode())
    assert {labels for (name, labels) in found if name == "localqueue_workers"} == {
        (("queue", "jobs"),)
    }
    store.close()


def test_a_store_that_cannot_be_read_reports_down(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "down.sqlite3")
    store.close()  # every read now fails
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    found = samples(generate_latest(registry).decode())
    assert value(found, "localqueue_store_up") == 0
    assert not [key for key in found if key[0] == "localqueue_messages"]


def _env(tmp_path: Path, multiproc: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    env.update(
        LOCALQUEUE_STORE=f"sqlite://{tmp_path}/shared.sqlite3",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    return env


def lq_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "localqueue", *args]


def test_two_worker_processes_add_up_in_one_scrape_over_http(tmp_path: Path) -> None:
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = _env(tmp_path, multiproc)
    lines = "".join(f'{{"n": {n}}}\n' for n in range(6))
    subprocess.run(lq_argv("queue", "add", "jobs", "--ndjson"), input=lines, text=True,
                   env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    argv = lq_argv("queue", "exec", "jobs", "--max-jobs", "3", "--", "true")
    workers = [
        subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in (1, 2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert "acked 3" in err  # each process did half of the work
    with PersistentQueue("jobs", store=env["LOCALQUEUE_STORE"]) as q:
        q.put_many([1, 2])  # this process is not in multiprocess mode: gauges only
    server = subprocess.Popen(
        lq_argv("metrics", "serve", "--port", "0"),
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        banner = server.stderr.readline()
        assert banner.startswith("serving metrics of sqlite://"), banner
        url = banner.rsplit(" ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode == 0
    found = samples(text)
    assert value(found, "localqueue_enqueued_total", queue="jobs") == 6
    assert value(found, "localqueue_acked_total", queue="jobs") == 6
    count = "localqueue_handler_duration_seconds_count"
    assert value(found, count, queue="jobs", outcome="acked") == 6
    assert value(found, "localqueue_messages", queue="jobs", state="ready") == 2
    assert value(found, "localqueue_workers", queue="jobs") == 0  # both stopped cleanly
    assert value(found, "localqueue_store_up") == 1


def test_write_makes_a_textfile_and_bad_input_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/w.sqlite3"
    runner = CliRunner()

    def lq(*args: str) -> Result:
        return runner.invoke(build_cli(), ["--store", url, *args])

    assert lq("queue", "add", "jobs", "--value", "1").exit_code == 0
    target = tmp_path / "localqueue.prom"
    done = lq("metrics", "write", str(target))
    assert done.exit_code == 0, done.output
    found = samples(target.read_text())
    assert value(found, "localqueue_messages", queue="jobs", state="ready") == 1

    missing = tmp_path / "no" / "x.prom"
    bad = lq("metrics", "write", str(missing))
    assert bad.exit_code == 1
    assert bad.stderr == f"Error: cannot write {missing}: No such file or directory\n"


def test_write_names_each_queue_once_and_refuses_an_empty_name(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/w.sqlite3"

    def lq(*args: str) -> Result:
        return CliRunner().invoke(build_cli(), ["--store", url, *args])

    assert lq("queue", "add", "jobs", "--value", "1").exit_code == 0
    target = tmp_path / "localqueue.prom"
    done = lq(
        "metrics", "write", str(target), "--queue", "jobs", "--queue", "idle", "--queue", "jobs"
    )
    assert done.exit_code == 0, done.output
    series = [line.split(" ")[0] for line in target.read_text().splitlines() if line[:1] != "#"]
    assert len(series) == len(set(series))  # no series twice: a valid exposition
    assert 'localqueue_messages{queue="jobs",state="ready"}' in series
    assert 'localqueue_messages{queue="idle",state="ready"}' in series
    empty = lq("metrics", "write", str(target), "--queue", "")
    assert empty.exit_code == 2
    assert empty.stderr.startswith("Error: Invalid value for '--queue': queue name must be")
    assert len(empty.stderr.splitlines()) == 1


def test_metrics_never_create_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite3"
    target = tmp_path / "localqueue.prom"
    wrote = CliRunner().invoke(
        build_cli(), ["--store", f"sqlite://{missing}", "metrics", "write", str(target)]
    )
    assert wrote.exit_code == 1
    assert wrote.stderr == f"Error: no store at {missing}: the file does not exist or is empty\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCALQUEUE_", "PROMETHEUS_"))}
    env["LOCALQUEUE_STORE"] = f"sqlite://{missing}"
    served = subprocess.run(lq_argv("metrics", "serve", "--port", "0"), env=env,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert served.returncode == 1
    assert served.stderr == f"Error: no store at {missing}: the file does not exist or is empty\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no file


def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "p.sqlite3").close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            build_cli(),
            ["--store", f"sqlite://{tmp_path}/p.sqlite3", "metrics", "serve", "--port", str(port)],
        )
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_an_unusable_multiprocess_directory_is_one_warning_and_counts_nothing(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path, tmp_path / "missing")
    lines = "".join(f'{{"n": {n}}}\n' for n in range(3))
    done = subprocess.run(lq_argv("queue", "add", "jobs", "--ndjson"), input=lines, text=True,
                          env=env, capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [warning] = done.stderr.splitlines()  # one line for three events, no traceback
    assert "counts nothing in this process" in warning
    assert f"PROMETHEUS_MULTIPROC_DIR is '{tmp_path / 'missing'}'" in warning
    assert "create it (empty)" in warning
    store = SQLiteStore(tmp_path / "shared.sqlite3")
    assert store.stats("jobs").ready == 3
    store.close()


def test_a_missing_multiprocess_directory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLiteStore(tmp_path / "m.sqlite3").close()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    result = CliRunner().invoke(
        build_cli(),
        ["--store", f"sqlite://{tmp_path}/m.sqlite3", "metrics", "write", str(tmp_path / "x.prom")],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: PROMETHEUS_MULTIPROC_DIR is ")
    assert len(result.stderr.splitlines()) == 1
