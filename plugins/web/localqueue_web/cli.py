"""``localqueue web serve``, added to the localqueue CLI through the
``localqueue_cli_commands`` hook."""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType

import click

from localqueue.cli import DURATION, cli_state, existing_store
from localqueue.store import redact_url
from localqueue_web.security import TOKEN_ENV, NeedsToken, check_binding, is_loopback

# Starlette, uvicorn and Jinja2 are imported inside the command: this module
# is imported each time the localqueue CLI is built, whatever the command.


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
    epilog="\b\nExamples:"
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
    if token is not None and len(token) < 16:
        raise click.BadParameter("use a token of at least 16 characters", param_hint="--token")
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
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    # The server runs in a thread (where uvicorn leaves signals alone) and
    # this one turns SIGTERM and Ctrl-C into a graceful stop and exit 0, as
    # `metrics serve` does: uvicorn itself would die of the signal at the end.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
