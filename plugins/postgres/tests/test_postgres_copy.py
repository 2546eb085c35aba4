"""``store copy`` between SQLite and PostgreSQL: every state survives the round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from localqueue.cli import build_cli
from localqueue.clock import ManualClock
from localqueue.store import (
    CopyConflict,
    ErrorInfo,
    Lease,
    MessageRecord,
    NewMessage,
    Store,
    copy_messages,
)
from localqueue.stores.sqlite import SQLiteStore
from localqueue_postgres.store import PostgresStore


def fill(store: Store, clock: ManualClock) -> None:
    """Messages in every state, with priorities, delays, keys, attempts and errors."""
    store.enqueue("jobs", [NewMessage(b'"low"'), NewMessage(b'"high"', priority=7)])
    store.enqueue("jobs", [NewMessage(b'"later"', delay=600, dedupe_key="k1")])
    store.enqueue(
        "jobs", [NewMessage(b'"leased"', priority=9), NewMessage(b'"failing"', priority=8)]
    )
    [leased, failing] = store.claim(
        "jobs", worker_id="host-1:42", limit=2, lease_seconds=120
    ).leased
    error = ErrorInfo("ValueError", "bad input", "Traceback (most recent call last): ...", 1.5)
    store.release("jobs", Lease(failing.id, failing.receipt or ""), delay=30, error=error)
    store.enqueue("mail", [NewMessage(b"\x00raw bytes\xff"), NewMessage(b'"dead"')])
    clock.advance(1)
    [_, doomed] = store.claim("mail", worker_id="w", limit=2, lease_seconds=60).leased
    store.dead_letter("mail", Lease(doomed.id, doomed.receipt or ""), error=error)
    assert leased.receipt


def snapshot(store: Store) -> dict[int, MessageRecord]:
    """Every message, without the receipt (which belongs to one store's delivery)."""
    return {
        r.id: r._replace(receipt=None)
        for queue in store.queues()
        for r in store.list_messages(queue)
    }


def test_sqlite_to_postgres_to_sqlite_keeps_every_message(
    tmp_path: Path, postgres_store_url: str
) -> None:
    clock = ManualClock()
    first = SQLiteStore(tmp_path / "first.sqlite3", clock=clock)
    fill(first, clock)
    middle = PostgresStore(postgres_store_url, clock=clock)
    last = SQLiteStore(tmp_path / "last.sqlite3", clock=clock)
    original = snapshot(first)
    assert {r.state.value for r in original.values()} == {"ready", "delayed", "inflight", "dead"}

    report = copy_messages(first, middle)
    assert report.as_dict()["totals"] == {"ready": 2, "delayed": 2, "inflight": 2, "dead": 1}
    assert snapshot(middle) == original
    copy_messages(middle, last)
    assert snapshot(last) == original
    assert middle.check() == [] and last.check() == []

    # The copies behave as the original: the next put gets a new id, the
    # copied inflight message is redelivered once its lease ends, the dead
    # letter can be requeued, and the dedupe key is still live.
    for store in (middle, last):
        [fresh] = store.enqueue("jobs", [NewMessage(b'"new"')]).records
        assert fresh.id > max(original)
        [same] = store.enqueue("jobs", [NewMessage(b'"again"', dedupe_key="k1")]).records
        assert same.payload == b'"later"'
        assert store.requeue("mail") == [r.id for r in original.values() if r.state.value == "dead"]
    clock.advance(121)
    for store in (middle, last):
        got = store.claim("jobs", worker_id="w2", limit=10, lease_seconds=30).leased
        assert b'"leased"' in {r.payload for r in got}
    for store in (first, middle, last):
        store.close()


def test_copy_refuses_a_destination_holding_the_same_ids(
    tmp_path: Path, postgres_store_url: str
) -> None:
    clock = ManualClock()
    source = SQLiteStore(tmp_path / "src.sqlite3", clock=clock)
    fill(source, clock)
    destination = PostgresStore(postgres_store_url, clock=clock)
    copy_messages(source, destination)
    before = snapshot(destination)
    with pytest.raises(CopyConflict, match="message id 1 exists"):
        copy_messages(source, destination)
    assert snapshot(destination) == before  # nothing half-copied
    source.close()
    destination.close()


def test_store_copy_command_into_postgres(tmp_path: Path, postgres_store_url: str) -> None:
    source = SQLiteStore(tmp_path / "backlog.sqlite3")
    source.enqueue("jobs", [NewMessage(str(n).encode()) for n in range(2500)])
    source.enqueue("other", [NewMessage(b"x", delay=3600)])
    source.close()
    runner = CliRunner()
    src = str(tmp_path / "backlog.sqlite3")
    dry = runner.invoke(build_cli(), ["store", "copy", src, postgres_store_url, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would copy 2501 message(s)" in dry.stdout
    done = runner.invoke(
        build_cli(), ["store", "copy", src, postgres_store_url, "--queue", "jobs", "--json"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["totals"]["ready"] == 2500
    store = PostgresStore(postgres_store_url)
    assert store.queues() == ["jobs"] and store.stats("jobs").ready == 2500
    store.close()


def test_inspecting_or_previewing_a_missing_schema_creates_nothing(
    tmp_path: Path, postgres_store_url: str
) -> None:
    from localqueue.errors import StoreNotFound
    from localqueue.store import open_store
    from localqueue_postgres.pytest_plugin import drop_schema
    from localqueue_postgres.url import parse_postgres_url

    schema = parse_postgres_url(postgres_store_url).schema

    def schema_exists() -> bool:
        import psycopg

        with psycopg.connect(parse_postgres_url(postgres_store_url).conninfo) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
            return row is not None and row[0] == 1

    with pytest.raises(StoreNotFound, match=f"no localqueue store in schema '{schema}'"):
        open_store(postgres_store_url, existing=True)
    runner = CliRunner()
    check = runner.invoke(build_cli(), ["--store", postgres_store_url, "store", "check"])
    assert check.exit_code == 1
    assert check.stderr.startswith("Error: no localqueue store in schema")
    source = SQLiteStore(tmp_path / "src.sqlite3")
    source.enqueue("jobs", [NewMessage(b"1")])
    source.close()
    preview = runner.invoke(
        build_cli(),
        ["store", "copy", str(tmp_path / "src.sqlite3"), postgres_store_url, "--dry-run"],
    )
    assert preview.exit_code == 0, preview.output
    assert "would copy 1 message(s)" in preview.stdout
    assert not schema_exists()
    missing_source = runner.invoke(
        build_cli(), ["store", "copy", postgres_store_url, str(tmp_path / "dst.sqlite3")]
    )
    assert missing_source.exit_code == 1 and "no localqueue store" in missing_source.stderr
    assert not schema_exists() and not (tmp_path / "dst.sqlite3").exists()
    for args in (
        ["metrics", "write", str(tmp_path / "m.prom")],
        ["queue", "prune", "jobs", "--dead-older-than", "1d"],
    ):
        result = runner.invoke(build_cli(), ["--store", postgres_store_url, *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("Error: no localqueue store in schema"), args
    assert not schema_exists()
    drop_schema(postgres_store_url, schema)
