"""``localqueue web serve``, added to the localqueue CLI through the
``localqueue_cli_commands`` hook."""

from __future__ import annotations

import signal
import socket
import threading
import time
from types import FrameType

import click

from localqueue.cli import DURATION, cli_state, existing_store
from localqueue.store import redact_url
from localqueue_web.binding import (
    TOKEN_ENV,
    NeedsToken,
    check_binding,
    check_token,
    is_loopback,
)

# Starlette, uvicorn and Jinja2 are imported inside the command: this module
# is imported each time the localqueue CLI is built, whatever the command.

GRACE = 10  # seconds open requests get to finish once asked to stop


@click.group("web", epilog="\b\nExample:\n  $ localqueue web serve --port 8765")
def web_group() -> None:
    """A dashboard of the store in the browser (localqueue-web)."""


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a one-line error saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port (0: any free one) or --host"
        ) from None
    return sock


@web_group.command(
    "serve",
    epilog="\b\nExample:"
    "\n  $ localqueue web serve"
    "\n  $ localqueue web serve --read-only --port 0"
    "\n  $ LOCALQUEUE_WEB_TOKEN=$(openssl rand -hex 16) localqueue web serve --host 0.0.0.0",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free port, printed on stderr).",
)
@click.option("--read-only", is_flag=True, help="Show everything; offer no requeue or purge.")
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    metavar="TOKEN",
    help=f"Require this token on every request (also ${TOKEN_ENV}).",
)
@click.option(
    "--sample-every",
    type=DURATION,
    default=10.0,
    show_default=True,
    help="How often the charts sample every queue's counts.",
)
def serve_command(
    host: str, port: int, read_only: bool, token: str | None, sample_every: float
) -> None:
    """Serve the dashboard until SIGTERM or Ctrl-C.

    Every queue with its counts and workers, one queue's messages, one
    message with its payload and last error, dead letters by error type,
    and (unless --read-only) requeue and purge with a preview first.
    """
    token = token or None
    try:
        check_token(token)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--token") from None
    try:
        check_binding(host, token)
    except NeedsToken as exc:
        raise click.UsageError(str(exc)) from None
    if sample_every < 1:
        raise click.BadParameter("sample at most once a second", param_hint="--sample-every")
    import uvicorn

    from localqueue_web.app import build_app

    label = redact_url(cli_state().resolved_url)
    store = existing_store()
    app = build_app(
        store,
        label=label,
        read_only=read_only,
        token=token,
        loopback_only=token is None and is_loopback(host),
        sample_every=sample_every,
    )
    sock = _listen(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    where = f"http://{shown_host}:{sock.getsockname()[1]}/"
    click.echo(
        f"serving the dashboard of {label} on {where}"
        + (" (read-only)" if read_only else "")
        + (" - open it once as /?token=TOKEN" if token else ""),
        err=True,
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # Requests still open this long after a stop are cut off.
        timeout_graceful_shutdown=GRACE,
    )
    server = uvicorn.Server(config)
    # The server runs in a thread (where uvicorn leaves signals alone) and
    # this one turns SIGTERM and Ctrl-C into a graceful stop and exit 0, as
    # `metrics serve` does (uvicorn itself would die of the signal at the
    # end). A second signal stops at once; so does a stop that outlasts
    # GRACE and a few seconds more (a store call that hangs), with exit 1.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    asked: list[float] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if asked:
            server.force_exit = True
        asked.append(time.monotonic())
        server.should_exit = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if asked and (server.force_exit or time.monotonic() - asked[0] > GRACE + 5):
                thread.join(1.0)
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if thread.is_alive():
        raise click.ClickException("stopped before every request had finished")
