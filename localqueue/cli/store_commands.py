"""``localqueue store ...``: maintenance of the store itself.

Each maintenance operation is an optional capability of a store (see
``localqueue.store.capabilities``); a store that lacks one is told so in one
line rather than failing half way. Other modules may attach commands to this
group (``store copy`` lives in its own module).

These commands look at a store without changing it first: they never create
a missing store and, where the store's plugin offers ``open_as_found`` (the
SQLite store does), never migrate an older one on open (only ``store
migrate`` does, when asked). Every store is treated alike: what a store can
do is asked of its capabilities, never of its URL scheme.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from localqueue.cli.lazy_group import LazyGroup
from localqueue.cli.output import emit_json, example, json_option, table
from localqueue.cli.state import cli_state
from localqueue.store import Store
from localqueue.store.capabilities import (
    StoreInfo,
    SupportsBackup,
    SupportsInfo,
    SupportsMigrate,
    SupportsVacuum,
)
from localqueue.store.counts import SupportsRecount
from localqueue.store.url import open_store, redact_url


def maintenance_store() -> Store:
    """The store, opened for maintenance as found (never created, an older
    schema not migrated, where the store's plugin can promise that), closed
    when the command ends."""
    store = open_store(cli_state().resolved_url, as_found=True)
    click.get_current_context().call_on_close(store.close)
    return store


def unsupported(store: Store, what: str) -> click.ClickException:
    return click.ClickException(f"store {redact_url(store.url)!r} does not support {what}")


def mebibytes(n: int) -> str:
    return f"{n} bytes" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MiB"


def info_document(info: StoreInfo) -> dict[str, Any]:
    return {
        "url": redact_url(info.url),
        "kind": info.kind,
        "schema_version": info.schema_version,
        "newest_schema_version": info.newest_schema_version,
        "settings": dict(info.settings),
        "sizes": dict(info.sizes),
        "counts": {queue: dict(counts) for queue, counts in info.counts.items()},
    }


@click.command(
    "info", epilog=example("localqueue --store sqlite:///var/lib/app/queue.db store info")
)
@json_option
def info_command(as_json: bool) -> None:
    """Schema version, settings in force, file sizes and message counts."""
    store = maintenance_store()
    if not isinstance(store, SupportsInfo):
        raise unsupported(store, "info")
    info = store.info()
    if as_json:
        emit_json(info_document(info))
        return
    version = f"{info.schema_version} (newest this localqueue knows: {info.newest_schema_version})"
    if (info.schema_version or 0) < (info.newest_schema_version or 0):
        version += "; run 'localqueue store migrate'"
    click.echo(f"store     {redact_url(info.url)}")
    click.echo(f"kind      {info.kind}")
    click.echo(f"schema    {version}")
    click.echo("settings  " + " ".join(f"{k}={v}" for k, v in info.settings.items()))
    click.echo("sizes     " + ", ".join(f"{k} {mebibytes(v)}" for k, v in info.sizes.items()))
    states = ["ready", "delayed", "inflight", "dead", "acked_archived"]
    rows = [[queue, *(counts.get(s, 0) for s in states)] for queue, counts in info.counts.items()]
    click.echo()
    click.echo(table(rows, ["queue", *states]) if rows else "no messages")


@click.command("check", epilog=example("localqueue store check --json"))
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild the kept message counts from the messages if they differ.",
)
@json_option
def check_command(repair: bool, as_json: bool) -> None:
    """Integrity check of the whole store; exit 1 when anything is wrong."""
    store = maintenance_store()
    repaired: list[str] = []
    if repair:
        if not isinstance(store, SupportsRecount):
            raise unsupported(store, "repairing counts (it keeps none)")
        repaired = [str(difference) for difference in store.recount(repair=True)]
    problems = store.check()
    if as_json:
        document: dict[str, Any] = {
            "url": redact_url(store.url),
            "ok": not problems,
            "problems": problems,
        }
        if repair:
            document["repaired"] = repaired
        emit_json(document)
    else:
        for line in repaired:
            click.echo(f"repaired: {line}")
        for problem in problems:
            click.echo(problem)
        if not problems:
            click.echo(f"ok: {redact_url(store.url)} passed the integrity check")
    if problems:
        raise SystemExit(1)


@click.command("backup", epilog=example("localqueue store backup /backups/queue-$(date +%F).db"))
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST if it exists (a regular file only).")
@json_option
def backup_command(dest: Path, force: bool, as_json: bool) -> None:
    """Write a consistent, verified copy of the store to DEST, while workers run."""
    store = maintenance_store()
    if not isinstance(store, SupportsBackup):
        raise unsupported(store, "backup")
    result = store.backup(dest, overwrite=force)
    if as_json:
        emit_json({"path": str(result.path), "bytes": result.bytes, "seconds": result.seconds})
        return
    click.echo(
        f"backed up to {result.path} ({mebibytes(result.bytes)}, integrity ok) "
        f"in {result.seconds:.2f}s"
    )


@click.command("vacuum", epilog=example("localqueue store vacuum"))
@json_option
def vacuum_command(as_json: bool) -> None:
    """Rewrite the store compactly and report the bytes given back to the filesystem."""
    store = maintenance_store()
    if not isinstance(store, SupportsVacuum):
        raise unsupported(store, "vacuum")
    result = store.vacuum()
    if as_json:
        emit_json(
            {
                "bytes_before": result.bytes_before,
                "bytes_after": result.bytes_after,
                "reclaimed": result.reclaimed,
            }
        )
        return
    click.echo(
        f"vacuumed: {mebibytes(result.bytes_before)} -> {mebibytes(result.bytes_after)}, "
        f"reclaimed {mebibytes(result.reclaimed)}"
    )


@click.command("migrate", epilog=example("localqueue store migrate --dry-run"))
@click.option("--dry-run", is_flag=True, help="List the pending steps; change nothing.")
@json_option
def migrate_command(dry_run: bool, as_json: bool) -> None:
    """Bring the schema up to date in one transaction (preview with --dry-run)."""
    store = maintenance_store()
    if not isinstance(store, SupportsMigrate):
        raise unsupported(store, "migrations")
    status = store.schema_status()
    steps = [
        {"version": m.version, "description": m.description, "statements": list(m.statements)}
        for m in status.pending
    ]
    if status.pending and not dry_run:
        with CountingProgress() as progress:
            if accepts_keyword(store.migrate, "progress"):
                store.migrate(progress=progress)  # type: ignore[call-arg]
            else:
                store.migrate()
    if as_json:
        emit_json(
            {
                "from": status.version,
                "to": status.newest,
                "dry_run": dry_run,
                "steps": steps,
            }
        )
        return
    if not steps:
        click.echo(f"schema version {status.version} is current; nothing to do")
        return
    verb = "would migrate" if dry_run else "migrated"
    click.echo(f"{verb} schema version {status.version} -> {status.newest}:")
    for step in steps:
        click.echo(f"  {step['version']}: {step['description']}")


def accepts_keyword(function: Callable[..., object], name: str) -> bool:
    """Whether ``function`` takes keyword ``name`` (an optional extra of a
    capability, which stores written before it existed do not take)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class CountingProgress:
    """``progress(done, total)`` for a migration's long part, as a bar on
    stderr, shown only when there is enough to count to be worth one."""

    SHOW_FROM = 100_000

    def __init__(self) -> None:
        self._bar: Any = None
        self._shown = 0

    def __enter__(self) -> CountingProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if total < self.SHOW_FROM:
                return
            self._bar = click.progressbar(
                length=total, label="counting messages", file=sys.stderr
            ).__enter__()
        self._bar.update(min(done, total) - self._shown)
        self._shown = min(done, total)


def store_group() -> click.Group:
    @click.group(
        "store",
        cls=LazyGroup,
        lazy={"copy": "localqueue.cli.store_copy:copy_command"},
        epilog=example("localqueue store info"),
    )
    def store() -> None:
        """Inspect, check, back up, vacuum and migrate the store."""

    for command in (info_command, check_command, backup_command, vacuum_command, migrate_command):
        store.add_command(command)
    return store
