"""``localqueue store copy SRC_URL DST_URL``: move messages between stores.

For example a SQLite backlog into PostgreSQL when workers spread over
several hosts. The copy checks every message against the destination before
it copies any (an id that exists there, or a dedupe key live there, refuses
the copy) and reports counts per queue and state. The source is never
changed, and a SQLite source that does not exist is an error - never a new
empty file.
"""

from __future__ import annotations

import sys

import click
from click.shell_completion import CompletionItem

from localqueue.cli.completion import queue_names_in_store
from localqueue.cli.output import emit_json, example, json_option, table
from localqueue.errors import StoreNotFound
from localqueue.store import State, Store
from localqueue.store.copy import copy_messages
from localqueue.store.url import open_store, redact_url, resolve_store_url


def open_source(url: str) -> Store:
    # Read it as it is: do not create a mistyped path, do not migrate.
    return open_store(resolve_store_url(url), as_found=True)


def open_destination(url: str, dry_run: bool) -> Store | None:
    """The destination; None for a dry run into a store that does not exist
    yet (a preview creates nothing, and migrates nothing)."""
    resolved = resolve_store_url(url)
    if not dry_run:
        return open_store(resolved)
    try:
        return open_store(resolved, as_found=True)
    except StoreNotFound:
        return None


def _complete_source_queues(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """--queue completes with the queues of SRC_URL (not of the store in force)."""
    # Click fills params only when the line parses; with "--queue" still
    # waiting for its value it does not, and the arguments are left in args.
    source = ctx.params.get("src_url") or (ctx.args[0] if ctx.args else None)
    if source is None:
        return []
    names = queue_names_in_store(source)
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


@click.command(
    "copy",
    epilog=example(
        "localqueue store copy sqlite:///var/lib/app/queue.db postgresql://app@db/app --dry-run"
    ),
)
@click.argument("src_url")
@click.argument("dst_url")
@click.option(
    "--queue", "queues", multiple=True, metavar="QUEUE", shell_complete=_complete_source_queues,
    help="Copy only this queue (repeat for more); default: every queue.",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Check and count; copy nothing.")
@json_option
def copy_command(
    src_url: str, dst_url: str, queues: tuple[str, ...], dry_run: bool, as_json: bool
) -> None:
    """Copy every message (all states) from SRC_URL to DST_URL.

    Ids, payloads, priorities, attempts, delays, leases and dead letters
    with their errors are kept. Stop producers and workers first for an
    exact copy; the source is left as it was.
    """
    if resolve_store_url(src_url) == resolve_store_url(dst_url):
        raise click.ClickException("SRC_URL and DST_URL name the same store; nothing to copy")
    ctx = click.get_current_context()
    source = open_source(src_url)
    ctx.call_on_close(source.close)
    missing = [q for q in queues if q not in source.queues()]
    if missing:
        known = ", ".join(source.queues()) or "none"
        shown = redact_url(source.url)
        raise click.ClickException(
            f"queue(s) {', '.join(map(repr, missing))} hold no messages in {shown}; "
            f"queues with messages: {known}"
        )
    destination = open_destination(dst_url, dry_run)
    if destination is not None:
        ctx.call_on_close(destination.close)
    # Shown and reported without its password, like every URL the CLI prints.
    shown_destination = redact_url(
        destination.url if destination is not None else resolve_store_url(dst_url)
    )

    def progress(copied: int) -> None:
        if not as_json and sys.stderr.isatty():
            click.echo(f"\rcopied {copied}", err=True, nl=False)

    report = copy_messages(
        source,
        destination,
        queues=list(queues) or None,
        dry_run=dry_run,
        progress=progress,
        destination_url=shown_destination,
    )
    if as_json:
        urls = {"source": redact_url(report.source), "destination": shown_destination}
        emit_json({**report.as_dict(), **urls})
        return
    if sys.stderr.isatty() and not dry_run and report.total:
        click.echo("", err=True)
    states = [s.value for s in State]
    rows = [[queue, *(counts[s] for s in states)] for queue, counts in report.counts.items()]
    if rows:
        click.echo(table(rows, ["queue", *states]))
    verb = "would copy" if dry_run else "copied"
    shown_source = redact_url(source.url)
    click.echo(f"{verb} {report.total} message(s) from {shown_source} to {shown_destination}")
