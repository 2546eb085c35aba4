"""Tests that change the server itself: its persistence settings, its
password, a restart mid-run. Each starts a throwaway server of its own with
``scripts/redis-server.sh`` (the shared test server is never touched) and
runs only where the Redis tests run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from localqueue import PersistentQueue, persistent_worker
from localqueue.cli import build_cli
from localqueue.store import NewMessage, StoreConnectionLost, StoreError
from localqueue_redis.store import RedisStore

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "redis-server.sh"
LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))


class Server:
    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory

    def admin(self) -> redis.Redis:
        port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        return redis.Redis(port=port, password=self.password)

    password: str | None = None

    def run(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(SCRIPT), command, str(self.directory)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def shutdown(self) -> None:
        """Stop the server (the pid file stays, so `restart` starts it again)."""
        pid = int((self.directory / "redis.pid").read_text())
        os.kill(pid, 15)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@pytest.fixture
def own_server(redis_url: str) -> Iterator[Server]:
    if not SCRIPT.exists():
        pytest.skip("scripts/redis-server.sh is not in this checkout")
    base = Path(tempfile.mkdtemp(prefix="lq-redis-"))
    directory = base / "server"
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(directory)],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if started.returncode != 0:
            pytest.fail(f"could not start a server of this test's own:\n{started.stderr}")
        yield Server(started.stdout.strip(), directory)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(directory)], timeout=120)
        subprocess.run(["rm", "-rf", str(base)], timeout=60)


# -- durability ------------------------------------------------------------------


def test_a_server_that_persists_nothing_is_refused_unless_the_url_accepts_it(
    own_server: Server,
) -> None:
    admin = own_server.admin()
    admin.config_set("appendonly", "no")
    admin.config_set("save", "")
    with pytest.raises(StoreError, match=r"persists nothing .*durability=none") as caught:
        RedisStore(own_server.url)
    assert "\n" not in str(caught.value)
    code_out = CliRunner().invoke(build_cli(), ["--store", own_server.url, "queue", "stats", "q"])
    assert code_out.exit_code != 0 and "persists nothing" in code_out.output
    RedisStore(own_server.url + "?durability=none").close()
    admin.config_set("save", "3600 1")  # RDB snapshots alone are accepted
    store = RedisStore(own_server.url)
    assert "RDB" in str(store.info().settings["persistence"])
    store.close()


def test_a_server_that_evicts_keys_is_refused(own_server: Server) -> None:
    own_server.admin().config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(StoreError, match="evicts keys"):
        RedisStore(own_server.url)


def test_a_server_without_config_is_trusted_with_a_warning(
    own_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    admin = own_server.admin()
    admin.acl_setuser(
        "app",
        enabled=True,
        passwords=["+apppw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-config"],
    )
    url = own_server.url.replace("redis://", "redis://app:apppw@")
    with caplog.at_level(logging.WARNING, logger="localqueue.redis"):
        store = RedisStore(url)
    assert "CONFIG is disabled" in caplog.text
    store.enqueue("q", [NewMessage(b"x")])
    assert store.info().settings["persistence"] == "unknown (CONFIG is disabled on this server)"
    store.close()


# -- passwords -------------------------------------------------------------------


def test_a_wrong_password_is_one_line_without_the_password(own_server: Server) -> None:
    own_server.admin().config_set("requirepass", "right-one")
    bad = own_server.url.replace("redis://", "redis://:wrong-one@")
    with pytest.raises(StoreError, match="refused the credentials") as caught:
        RedisStore(bad)
    assert "wrong-one" not in str(caught.value)
    result = CliRunner().invoke(build_cli(), ["--store", bad, "queue", "stats", "q"])
    assert result.exit_code != 0 and "wrong-one" not in result.output
    good = own_server.url.replace("redis://", "redis://:right-one@")
    store = RedisStore(good)
    assert "right-one" not in store.url and ":***@" in store.url
    store.close()


# -- the server going away -------------------------------------------------------


def test_a_server_restart_is_a_lost_connection_then_the_store_goes_on(
    own_server: Server,
) -> None:
    store = RedisStore(own_server.url)
    store.enqueue("q", [NewMessage(b"kept")])
    own_server.shutdown()
    with pytest.raises(StoreConnectionLost, match="lost the connection to Redis"):
        store.enqueue("q", [NewMessage(b"during")])
    with pytest.raises(StoreConnectionLost):
        store.stats("q")
    store.wait("q", 0.05)  # a wait during the outage returns; the next claim reports it
    own_server.run("restart")
    assert [r.payload for r in store.list_messages("q")] == [b"kept"]  # the AOF kept it
    store.enqueue("q", [NewMessage(b"after")])
    assert store.stats("q").ready == 2
    store.close()


def test_a_worker_rides_out_a_server_restart(
    own_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    queue = PersistentQueue("jobs", store=own_server.url, lease_timeout=2.0)
    queue.put_many(list(range(200)))
    seen: set[int] = set()

    @persistent_worker(queue, handle_signals=False, poll_interval=0.05)
    def handle(value: int) -> None:
        seen.add(value)
        time.sleep(0.002)

    done: list[object] = []
    runner = threading.Thread(target=lambda: done.append(handle.run()))
    caplog.set_level(logging.WARNING, logger="localqueue.worker")
    runner.start()
    deadline = time.monotonic() + 90
    restarted = False
    while time.monotonic() < deadline:
        if not restarted and len(seen) > 50:
            own_server.shutdown()
            time.sleep(0.5)
            own_server.run("restart")
            restarted = True
        if restarted and len(seen) == 200:
            try:
                if queue.stats().total == 0:
                    break
            except StoreConnectionLost:
                pass
        time.sleep(0.05)
    handle.stop()
    runner.join(10)
    assert done and restarted, "the worker stopped or never got far enough"
    assert seen == set(range(200)) and queue.stats().total == 0
    queue.close()


@pytest.mark.slow
def test_the_harness_through_a_server_restart_loses_nothing(
    own_server: Server, tmp_path: Path
) -> None:
    report_file = tmp_path / "report.json"
    env = {**os.environ}
    env.pop("LOCALQUEUE_STORE", None)
    out = subprocess.run(
        [LOCALQUEUE, "harness", "run", "--store", own_server.url,
         "--mode", "crash-recovery", "--producers", "2", "--consumers", "2",
         "--messages", "300", "--kills", "2", "--seed", "11", "--deadline", "240",
         "--restart-cmd", f"bash {SCRIPT} restart {own_server.directory}",
         "--report", str(report_file)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(report_file.read_text())
    assert report["lost"] == 0 and report["confirmed"] == 300
    [restart] = report["restarts"]
    assert restart["exit_status"] == 0


# -- a Unix socket ---------------------------------------------------------------


def test_a_unix_socket_url_reaches_a_server_listening_on_one(redis_url: str) -> None:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not on PATH although the Redis tests run")
    directory = Path(tempfile.mkdtemp(prefix="lq-redis-sock-"))
    socket_path = directory / "redis.sock"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
         "--dir", str(directory), "--appendonly", "yes", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            if socket_path.exists():
                break
            time.sleep(0.05)
        url = f"unix://{socket_path}"
        with PersistentQueue("sock", store=url) as q:
            q.put({"over": "a socket"})
            message = q.get(timeout=5)
            assert message.value == {"over": "a socket"}
            q.ack(message)
            assert q.stats().ready == 0
        shown = CliRunner().invoke(build_cli(), ["--store", url, "store", "info"])
        assert shown.exit_code == 0, shown.output
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
