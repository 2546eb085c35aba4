"""``localqueue queue add``: one message from --value or stdin, or many with --ndjson."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from typing import IO, Any

import click

from localqueue.cli.common import open_queue
from localqueue.cli.completion import queue_argument
from localqueue.cli.output import DURATION, PRIORITY, emit_json, example, json_option
from localqueue.errors import LocalQueueError
from localqueue.serializers import MAX_JSON_DEPTH

BATCH_SIZE = 500


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(text: str, raw: bool, where: str) -> Any:
    """One value, checked completely before anything is stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise click.ClickException(f"{where} is not valid UTF-8; fix the input encoding") from None
    if raw:
        return text
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise click.ClickException(
            f"{where} is JSON nested too deeply to read (lists and objects may nest at most "
            f"{MAX_JSON_DEPTH} levels); flatten it, or pass --raw to add it as a plain string"
        ) from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):  # NaN, Infinity
            raise click.ClickException(
                f"{where} is not valid JSON ({exc}); fix it, or pass --raw to add it as text"
            ) from None
        raise click.ClickException(
            f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); "
            "fix it, or pass --raw to add it as a plain string"
        ) from None


@click.command(
    "add",
    epilog=example(
        'localqueue queue add emails --value \'{"to": "ann@example.com"}\' --dedupe-key welcome:ann'
    ),
)
@queue_argument()
@click.option("--value", metavar="JSON", help="The message value as JSON (default: read stdin).")
@click.option("--raw", is_flag=True, help="Take the value (or each line) as a plain string.")
@click.option("--ndjson", is_flag=True, help="Add one message per stdin line, in batches.")
@click.option("--delay", type=DURATION, default=0.0, help="Deliver after this many seconds.")
@click.option("--priority", type=PRIORITY, default=0, help="Higher is delivered first (32-bit).")
@click.option("--dedupe-key", help="Skip the add if a message with this key is live.")
@json_option
def add_command(
    queue: str,
    value: str | None,
    raw: bool,
    ndjson: bool,
    delay: float,
    priority: int,
    dedupe_key: str | None,
    as_json: bool,
) -> None:
    """Add a message to QUEUE (created on first use)."""
    q = open_queue(queue)
    if ndjson:
        if value is not None or dedupe_key is not None:
            raise click.UsageError(
                "--ndjson reads stdin; it takes neither --value nor --dedupe-key"
            )
        if sys.stdin.isatty():
            click.echo("reading one message per line from stdin; end with Ctrl-D", err=True)
        ids = _add_lines(q, sys.stdin, raw, delay, priority)
        if as_json:
            emit_json({"queue": queue, "added": len(ids), "ids": ids})
        else:
            click.echo(f"added {len(ids)} message(s) to {queue}")
        return
    if value is None and sys.stdin.isatty():
        click.echo("reading the value from stdin; end it with Ctrl-D", err=True)
    text = value if value is not None else sys.stdin.read()
    if value is None and not text.strip() and not raw:
        raise click.UsageError("no value: pass --value JSON or write the value to stdin")
    if raw and value is None:
        # Like the shell's $(...): one trailing newline from stdin is not data.
        text = text.removesuffix("\n").removesuffix("\r")
    [(message, created)] = q.put_many_results(
        [_parse(text if raw else text.strip(), raw, "the value")],
        delay=delay,
        priority=priority,
        dedupe_keys=[dedupe_key],
    )
    if as_json:
        document: dict[str, Any] = {"queue": queue, "id": message.id, "state": message.state.value}
        if dedupe_key is not None:
            # Without a key every add creates a message: nothing to tell.
            document.update(created=created, deduplicated=not created, dedupe_key=dedupe_key)
        emit_json(document)
        return
    # The id alone stays on stdout, so that `id=$(localqueue queue add ...)`
    # gets an id either way; a dedupe hit is told on stderr.
    click.echo(f"{message.id}")
    if not created:
        click.echo(
            f"already queued as #{message.id} (dedupe key {dedupe_key}); nothing added",
            err=True,
        )


def _add_lines(q: Any, stream: IO[str], raw: bool, delay: float, priority: int) -> list[int]:
    """Parse a whole batch before adding it, so a bad line adds nothing of its batch."""
    ids: list[int] = []
    batch: list[Any] = []
    first_line_of_batch = 1
    progress = _Progress(stream)
    read = 0
    number = 0
    for number, line in enumerate(stream, start=1):
        read += len(line.encode("utf-8", errors="replace"))
        if not line.strip():
            continue
        try:
            text = line.rstrip("\r\n")
            batch.append(_parse(text if raw else text.strip(), raw, f"line {number}"))
        except click.ClickException as exc:
            done = (
                f"{len(ids)} message(s) from lines before {first_line_of_batch} were added; "
                if ids
                else ""
            )
            raise click.ClickException(
                f"{exc.message}; {done}nothing from lines {first_line_of_batch}-{number} was added"
            ) from None
        if len(batch) >= BATCH_SIZE:
            ids.extend(_put_batch(q, batch, delay, priority, ids, first_line_of_batch, number))
            batch = []
            first_line_of_batch = number + 1
            progress.show(len(ids), read)
    if batch:
        ids.extend(_put_batch(q, batch, delay, priority, ids, first_line_of_batch, number))
    progress.done(len(ids))
    return ids


def _put_batch(
    q: Any, batch: list[Any], delay: float, priority: int, ids: list[int], first: int, last: int
) -> list[int]:
    try:
        return [m.id for m in q.put_many(batch, delay=delay, priority=priority)]
    except LocalQueueError as exc:
        done = f"{len(ids)} message(s) from lines before {first} were added; " if ids else ""
        raise click.ClickException(
            f"{exc}; {done}nothing from lines {first}-{last} was added"
        ) from exc


class _Progress:
    """A progress bar on stderr when it is a terminal: by bytes when stdin is a
    file (its size is known), else a running count."""

    def __init__(self, stream: IO[str]) -> None:
        self.enabled = sys.stderr.isatty()
        self.total: int | None = None
        try:
            info = os.fstat(stream.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > 0:
                self.total = info.st_size
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def show(self, added: int, read: int) -> None:
        if not self.enabled:
            return
        if self.total:
            share = min(1.0, read / self.total)
            bar = "#" * int(share * 30)
            click.echo(f"\r[{bar:<30}] {share:4.0%}  {added:,} added", nl=False, err=True)
        else:
            click.echo(f"\r{added:,} added", nl=False, err=True)

    def done(self, added: int) -> None:
        if self.enabled and added:
            self.show(added, self.total or 0)
            click.echo(err=True)
