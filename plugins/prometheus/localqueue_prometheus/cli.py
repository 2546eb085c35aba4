"""``localqueue metrics serve`` and ``localqueue metrics write``, added to the
localqueue CLI through the ``localqueue_cli_commands`` hook."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from localqueue.cli import CliState, complete_queue_names, existing_store
from localqueue.store import Store, check_queue_name, redact_url

# prometheus_client is imported inside the commands, not here: this module
# is imported each time the localqueue CLI is built, whatever the command.


def _check_queues(
    ctx: click.Context, param: click.Parameter, queues: tuple[str, ...]
) -> tuple[str, ...]:
    """Each name valid, and once (a repeated name would repeat every series,
    which Prometheus rejects)."""
    for name in queues:
        try:
            check_queue_name(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return tuple(dict.fromkeys(queues))


queue_option = click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="QUEUE",
    callback=_check_queues,
    shell_complete=complete_queue_names,
    help="Report this queue (repeat for more); default: every queue that holds a message.",
)


def _state() -> CliState:
    return click.get_current_context().find_object(CliState) or CliState()


def _store() -> Store:
    """The store to export. Never created: exporting a store that does not
    exist is a mistake (a wrong path or URL), and an empty new one would
    hide it. (A SQLite file of an older schema is migrated, as by any
    program that works on the queue.)"""
    return existing_store()


@click.group("metrics", epilog="\b\nExample:\n  $ localqueue metrics serve --port 9464")
def metrics_group() -> None:
    """Prometheus metrics of the store (localqueue-prometheus)."""


@metrics_group.command(
    "serve", epilog="\b\nExample:\n  $ localqueue metrics serve --port 9464 --queue emails"
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9464,
    show_default=True,
    help="Port to listen on (0: any free port, printed on stderr).",
)
@queue_option
def serve_command(host: str, port: int, queues: tuple[str, ...]) -> None:
    """Serve /metrics for the whole store until SIGTERM or Ctrl-C.

    Gauges are read from the store at each scrape; counters and histograms
    are those of every process sharing $PROMETHEUS_MULTIPROC_DIR.
    """
    from localqueue_prometheus.exporter import serve

    state = _state()
    store = _store()
    server, thread = serve(store, host, port, list(queues) or None)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        click.echo(
            f"serving metrics of {redact_url(state.resolved_url)} on "
            f"http://{host}:{server.server_port}/metrics",
            err=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@metrics_group.command(
    "write",
    epilog="\b\nExample:"
    "\n  $ localqueue metrics write /var/lib/node_exporter/textfile/localqueue.prom",
)
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@queue_option
def write_command(file: str, queues: tuple[str, ...]) -> None:
    """Write the metrics to FILE in the Prometheus text format (for
    node_exporter's textfile collector), replacing it atomically."""
    from localqueue_prometheus.exporter import write_textfile

    write_textfile(file, _store(), list(queues) or None)
