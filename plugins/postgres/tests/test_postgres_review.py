"""PostgreSQL store: outages, odd text, poolers, URLs, rights and threads."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from localqueue import PersistentQueue
from localqueue.errors import StoreConnectionLost, StoreError
from localqueue.store import ErrorInfo, Lease, MessageRecord, NewMessage, State
from localqueue.worker import persistent_worker
from localqueue_postgres.pytest_plugin import drop_schema, with_option
from localqueue_postgres.store import PostgresStore
from localqueue_postgres.url import parse_postgres_url

Q = "jobs"


def admin(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(parse_postgres_url(url).conninfo, autocommit=True)


class Proxy:
    """A TCP proxy in front of the server that can be taken down and back up,
    as a server restart or a network outage looks to a client."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # down: refuse
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        self.up.clear()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self.sockets.clear()

    def close(self) -> None:
        self.down()
        self.listener.close()


@pytest.fixture
def proxied_url(postgres_store_url: str) -> Iterator[tuple[str, Proxy]]:
    parts = urlsplit(postgres_store_url)
    assert parts.hostname and parts.port
    proxy = Proxy(parts.hostname, parts.port)
    url = postgres_store_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    yield url, proxy
    proxy.close()


def test_a_worker_waits_out_a_server_outage(proxied_url: tuple[str, Proxy]) -> None:
    url, proxy = proxied_url
    queue = PersistentQueue(Q, store=url, lease_timeout=2.0)
    queue.put_many(list(range(100)))
    seen: set[int] = set()
    outage = threading.Event()

    @persistent_worker(queue, handle_signals=False, poll_interval=0.05)
    def handle(value: int) -> None:
        seen.add(value)
        if value == 30 and not outage.is_set():
            outage.set()
            proxy.down()  # the server "restarts" for 1.5 s, refusing connections
            threading.Timer(1.5, proxy.up.set).start()

    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(handle.run()))
    runner.start()
    deadline = time.monotonic() + 60
    remaining = -1
    while time.monotonic() < deadline and remaining != 0:
        time.sleep(0.1)
        if len(seen) == 100 and proxy.up.is_set():
            # Results lost in the outage come back when their leases expire.
            with contextlib.suppress(StoreConnectionLost):
                remaining = queue.stats().total
    handle.stop()
    runner.join(15)
    assert outage.is_set()
    assert outcome, "the worker died during the outage"
    assert seen == set(range(100))
    assert queue.stats().total == 0
    queue.close()


def test_an_unreachable_server_after_opening_is_a_lost_connection(
    proxied_url: tuple[str, Proxy],
) -> None:
    url, proxy = proxied_url
    store = PostgresStore(url)
    store.enqueue(Q, [NewMessage(b"1")])
    proxy.down()
    with pytest.raises(StoreConnectionLost):
        store.claim(Q, worker_id="w", limit=1, lease_seconds=30)
    with pytest.raises(StoreConnectionLost, match="cannot reconnect"):
        store.stats(Q)
    proxy.up.set()
    assert store.stats(Q).ready == 1
    store.close()


def test_nul_in_error_texts_and_worker_ids_is_kept_visible(postgres_store_url: str) -> None:
    store = PostgresStore(postgres_store_url)
    store.enqueue(Q, [NewMessage(b"1")])
    [leased] = store.claim(Q, worker_id="host\x00x", limit=1, lease_seconds=30).leased
    assert leased.leased_by == "host\\x00x"
    error = ErrorInfo("Value\x00Error", "bad\x00byte", "trace\x00back", at=1.0)
    assert store.release(Q, Lease(leased.id, leased.receipt or ""), error=error)
    [record] = store.list_messages(Q)
    assert record.last_error == ErrorInfo("Value\\x00Error", "bad\\x00byte", "trace\\x00back", 1.0)
    store.record_heartbeat(Q, "host\x00x")
    assert "host\\x00x" in store.stats(Q).workers
    store.close()


def test_a_worker_whose_handler_raises_nul_text_goes_on(postgres_store_url: str) -> None:
    queue = PersistentQueue(Q, store=postgres_store_url, max_attempts=2)
    queue.put_many([1, 2])

    @persistent_worker(queue, handle_signals=False, poll_interval=0.01, release_delay=0)
    def handle(value: int) -> None:
        raise ValueError("bad\x00byte")

    summary = handle.run(until_empty=True)
    assert summary.dead == 2
    [dead, _] = queue.dead_letters()
    assert dead.last_error is not None and "bad\\x00byte" in dead.last_error.message
    queue.close()


def test_without_prepared_statements_and_without_session_locks(postgres_store_url: str) -> None:
    # What a transaction-pooling proxy needs: nothing that lives in a server
    # session between transactions.
    url = with_option(with_option(postgres_store_url, "prepare", "off"), "notify", "off")
    store = PostgresStore(url)
    for n in range(12):  # more than psycopg's prepare threshold (5)
        store.enqueue(Q, [NewMessage(str(n).encode())])
        [r] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
        assert store.ack(Q, [Lease(r.id, r.receipt or "")]) == []
    conn = store._conns.get()
    assert conn.prepare_threshold is None
    assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    locks = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    ).fetchone()
    assert locks == (0,)
    store.close()


def test_urls_without_a_host_and_with_secret_parameters(postgres_store_url: str) -> None:
    parsed = parse_postgres_url("postgresql:///jobs?host=/run/postgresql&password=hunter2")
    assert parsed.conninfo == "postgresql:///jobs?host=%2Frun%2Fpostgresql&password=hunter2"
    assert "hunter2" not in parsed.display_url and "password=***" in parsed.display_url
    assert "s3" not in parse_postgres_url("postgresql://h/db?sslpassword=s3").display_url
    # A live one: the host and port as parameters.
    parts = urlsplit(postgres_store_url)
    url = (
        f"postgresql://{parts.path}?host={parts.hostname}&port={parts.port}"
        f"&user={parts.username}&{parts.query}"
    )
    store = PostgresStore(url)
    store.enqueue(Q, [NewMessage(b"1")])
    assert store.stats(Q).ready == 1
    store.close()


def test_a_schema_named_like_a_keyword(postgres_url: str) -> None:
    url = with_option(postgres_url, "schema", "order")
    try:
        store = PostgresStore(url)
        store.enqueue(Q, [NewMessage(b"1")])
        assert store.queues() == [Q]
        store.close()
    finally:
        drop_schema(postgres_url, '"order"')
    with pytest.raises(ValueError, match="one of PostgreSQL's own"):
        parse_postgres_url("postgresql://h/db?schema=pg_catalog")


def test_a_schema_a_dba_created_for_a_user_without_create_rights(postgres_store_url: str) -> None:
    schema = parse_postgres_url(postgres_store_url).schema
    role = f"lq_role_{uuid.uuid4().hex[:8]}"
    with admin(postgres_store_url) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"REVOKE CREATE ON DATABASE localqueue_test FROM {role}")
        conn.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    parts = urlsplit(postgres_store_url)
    url = postgres_store_url.replace(f"{parts.username}@", f"{role}@")
    try:
        store = PostgresStore(url)
        store.enqueue(Q, [NewMessage(b"1")])
        [r] = store.claim(Q, worker_id="w", limit=1, lease_seconds=30).leased
        assert store.ack(Q, [Lease(r.id, r.receipt or "")]) == []
        store.close()
    finally:
        drop_schema(postgres_store_url, schema)
        with admin(postgres_store_url) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_connections_of_finished_threads_are_closed(postgres_store_url: str) -> None:
    store = PostgresStore(postgres_store_url)

    def one_request() -> None:
        store.stats(Q)

    for _ in range(30):
        thread = threading.Thread(target=one_request)
        thread.start()
        thread.join()
    store.stats(Q)  # connecting from a new thread sweeps the dead threads' connections
    worker = threading.Thread(target=one_request)
    worker.start()
    worker.join()
    assert store._conns.open_count() <= 2
    store.close()


def test_odd_but_valid_requests(postgres_store_url: str) -> None:
    store = PostgresStore(postgres_store_url)
    assert store.list_messages(Q, limit=0) == []
    record = MessageRecord(
        7, Q, b"x", State.INFLIGHT, 0, 1, 1.0, time.time() + 600, time.time() + 600, None
    )
    store.import_messages([record])  # inflight, no worker named
    assert store.stats(Q).inflight_by_worker == {"": 1}
    with pytest.raises(StoreError):
        store.enqueue("bad\x00queue", [NewMessage(b"1")])  # rejected, one line
    store.close()
