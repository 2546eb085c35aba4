"""Safe by default: loopback only without a token, the token everywhere with
one, no page for a Host header that is not this machine's."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from localqueue.store import Store
from localqueue_web.app import build_app
from localqueue_web.binding import NeedsToken, check_binding, is_loopback

pytest_plugins = ["web_fixtures"]
MakeClient = Callable[..., TestClient]
TOKEN = "a-long-enough-test-token-1234"


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
     ("example.com", False), ("", False)],
)  # fmt: skip
def test_which_addresses_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(NeedsToken, match=r"--host 0.0.0.0 would serve .* without a token"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", TOKEN)
    check_binding("127.0.0.1", None)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "10.0.0.1"]
)
def test_a_loopback_dashboard_answers_only_to_loopback_names(store: Store, host: str) -> None:
    # A page on another site that rebinds its DNS name to 127.0.0.1 sends
    # its own name as Host: it reaches the port, not the dashboard.
    app = build_app(store, label="x", sample_every=None)
    with TestClient(app, base_url=f"http://{host}") as c:
        page = c.get("/")
        assert page.status_code == 400
        assert "answers only to localhost" in page.text
        assert "emails" not in page.text


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "127.0.0.2:80", "localhost:1", "[::1]:8765", "localhost"]
)
def test_a_loopback_dashboard_answers_to_every_loopback_name(store: Store, host: str) -> None:
    app = build_app(store, label="x", sample_every=None)
    with TestClient(app, base_url=f"http://{host}") as c:
        assert c.get("/").status_code == 200


def token_client(store: Store) -> TestClient:
    app = build_app(store, label="x", token=TOKEN, loopback_only=False, sample_every=None)
    return TestClient(app, base_url="http://dashboard.example:8765")


def test_with_a_token_every_request_needs_it(store: Store) -> None:
    with token_client(store) as c:
        for path in (
            "/",
            "/queue?name=emails",
            "/queue/message?name=emails&id=1",
            "/static/style.css",
        ):
            page = c.get(path)
            assert page.status_code == 401, path
            assert "needs its token" in page.text
            assert "emails" not in page.text
        assert c.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/?token=wrong").status_code == 401
        assert c.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_token_in_the_address_once_sets_a_cookie_and_leaves_the_address(
    store: Store,
) -> None:
    with token_client(store) as c:
        first = c.get(f"/queue?name=emails&state=dead&token={TOKEN}", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/queue?name=emails&state=dead"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        # The cookie now carries it.
        assert c.get("/queue?name=emails&state=dead").status_code == 200


def test_an_action_from_another_host_without_the_token_changes_nothing(store: Store) -> None:
    with token_client(store) as c:
        page = c.post("/actions/purge", data={"name": "emails", "state": "all", "csrf": "x"})
        assert page.status_code == 401
        page = c.post("/actions/confirm", data={"key": "k", "csrf": "x"})
        assert page.status_code == 401
    assert store.stats("emails").total == 7


def test_the_token_is_never_shown(store: Store) -> None:
    with token_client(store) as c:
        c.get(f"/?token={TOKEN}")
        for path in ("/", "/queue?name=emails", "/queue/message?name=emails&id=1", "/nowhere"):
            assert TOKEN not in c.get(path).text
