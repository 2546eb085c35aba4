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
  in a cookie), and a POST the browser marks as coming from another site
  (``Sec-Fetch-Site``, else an ``Origin`` naming another host) is refused,
  before its form is read. A page elsewhere can make a browser post, but it
  cannot read the token.
* **No framing.** Every response forbids being shown in a frame (a page
  elsewhere could otherwise trick clicks on the dashboard's own buttons),
  and a content security policy allows only the dashboard's own script,
  stylesheet and forms.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from localqueue_web.binding import check_token, is_loopback

TOKEN_COOKIE = "localqueue_web_token"
HEADERS = [
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        b"form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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

    def __post_init__(self) -> None:
        check_token(self.token)  # an empty token would let everyone in

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
                response = RedirectResponse(_same_page(request), status_code=303)
                response.set_cookie(
                    TOKEN_COOKIE,
                    self.token,
                    httponly=True,
                    samesite="strict",
                    path="/",
                    secure=_https(request),
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


def _same_page(request: Request) -> str:
    """The address asked for, without its token: still percent-encoded (a
    queue named 'a%41' stays itself) and always a path on this server (a
    leading '//' or '\\' would make it another host)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = "/" + raw.decode("latin-1").lstrip("/\\")
    rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
    return path + (f"?{rest}" if rest else "")


def _https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _cross_site(request: Request) -> bool:
    """Whether the browser says this request comes from another site.

    Browsers send ``Sec-Fetch-Site``, which a page cannot forge; older ones
    only ``Origin``, compared by host and port alone, so that a reverse
    proxy ending TLS (https outside, http here) does not look foreign.
    Clients that are not browsers send neither, and still need the CSRF
    token."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    host = origin.split("://", 1)[-1].rstrip("/")
    return host.lower() != request.headers.get("host", "").lower()


class GuardMiddleware:
    """Runs :meth:`Guard.refuse` in front of every HTTP request."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        refusal = self.guard.refuse(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
