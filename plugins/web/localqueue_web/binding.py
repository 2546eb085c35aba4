"""Where the dashboard may listen, and with what token: the rules the
command checks before it starts. Standard library only, so that building
the localqueue CLI (which imports the plugin's command on every run) does
not import the web stack."""

from __future__ import annotations

import ipaddress

TOKEN_ENV = "LOCALQUEUE_WEB_TOKEN"
MIN_TOKEN = 16  # characters


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` serves this machine alone."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class NeedsToken(ValueError):
    """Serving beyond loopback without a token."""


def check_token(token: str | None) -> None:
    if token is not None and len(token) < MIN_TOKEN:
        raise ValueError(f"use a token of at least {MIN_TOKEN} characters")


def check_binding(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise NeedsToken(
            f"--host {host} would serve the dashboard beyond this machine without a token; "
            f"set one with --token or ${TOKEN_ENV} (every request must then carry it), "
            "or bind to 127.0.0.1"
        )
