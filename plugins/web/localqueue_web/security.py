"""Who may see the dashboard and act through it.

* **Loopback by default.** Without a token the server binds only to a
  loopback address, and answers only requests whose ``Host`` header names
  one: a page on another site that rebinds its own DNS name to 127.0.0.1
  reaches the port but not the dashboard.
* **A token for any other address.** With a token every request must carry
  it: the ``Authorization: Bearer`` header, or a cookie set by opening the
  dashboard once as ``/?token=...`` (the server then redirects to the same
  page without it, so the token does not stay in the address bar).
* **CSRF.** Every action is a POST whose form carries this server's CSRF
  token (random per server start, in every form the dashboard renders, never
  in a cookie), and a POST whose ``Origin`` is another site is refused,
  before its form is read. A page elsewhere can make a browser post, but it
  cannot read the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

TOKEN_ENV = "LOCALQUEUE_WEB_TOKEN"
TOKEN_COOKIE = "localqueue_web_token"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


def check_binding(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise NeedsToken(
            f"--host {host} would serve the dashboard beyond this machine without a token; "
            f"set one with --token or ${TOKEN_ENV} (every request must then carry it), "
            "or bind to 127.0.0.1"
        )


def host_name(headers: Headers) -> str:
    """The name in the Host header, without its port."""
    host = headers.get("host", "").lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass
class Guard:
    """The checks every request passes before the dashboard sees it."""

    token: str | None = None
    loopback_only: bool = True
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def csrf_ok(self, submitted: object) -> bool:
        return isinstance(submitted, str) and hmac.compare_digest(
            submitted.encode(), self.csrf_token.encode()
        )

    def _token_ok(self, request: Request) -> bool:
        assert self.token is not None
        offered = request.cookies.get(TOKEN_COOKIE, "")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            offered = value.strip()
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def refuse(self, request: Request) -> Response | None:
        """A response refusing ``request``, or None to let it through."""
        if self.loopback_only and not is_loopback(host_name(request.headers)):
            return PlainTextResponse(
                "this dashboard answers only to localhost or a loopback address "
                "(127.0.0.1, [::1])\n",
                status_code=400,
            )
        if self.token is not None:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
                rest = urlencode(
                    [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                )
                target = request.url.path + (f"?{rest}" if rest else "")
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/"
                )
                return response
            if not self._token_ok(request):
                return PlainTextResponse(
                    "this dashboard needs its token: open it once as /?token=TOKEN, or send "
                    "'Authorization: Bearer TOKEN'\n",
                    status_code=401,
                )
        if request.method not in ("GET", "HEAD") and _cross_site(request):
            return PlainTextResponse(
                "refused: this action came from another site\n", status_code=403
            )
        return None


def _cross_site(request: Request) -> bool:
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.lower() != own.lower()


class GuardMiddleware:
    """Runs :meth:`Guard.refuse` in front of every HTTP request."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.guard.refuse(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
