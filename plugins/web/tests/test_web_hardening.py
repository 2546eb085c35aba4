"""What a hostile page, an odd queue name, a proxy or a huge backlog does to
the dashboard: each case failed once, and is kept here."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from localqueue import PersistentQueue
from localqueue.store import Store
from localqueue_web import actions
from localqueue_web.app import build_app

pytest_plugins = ["web_fixtures"]
MakeClient = Callable[..., TestClient]
TOKEN = "a-long-enough-test-token-1234"


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/queue?name=emails").text)
    assert found
    return found[1]


def test_every_response_forbids_framing_and_sniffing(client: TestClient) -> None:
    # A page elsewhere could frame the dashboard and trick two clicks
    # ("preview purge", "delete these"): same-origin inside the frame.
    for response in (
        client.get("/"),
        client.get("/queue?name=emails"),
        client.get("/static/style.css"),
        client.get("/nowhere"),
        client.post("/actions/purge", data={"name": "emails"}),  # refused: no CSRF token
        client.get("/", headers={"Host": "evil.example"}),  # refused: not loopback
    ):
        assert response.headers["x-frame-options"] == "DENY", response.url
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "name",
    ["x/dead", "emails/messages/1", "a/../emails", "..", ".", "q?x=1#frag", "a%41", "with space",
     "ünïcödé/κ", "a&name=emails"],
)  # fmt: skip
def test_any_queue_name_opens_its_own_queue_and_acts_on_it_alone(
    store: Store, make_client: MakeClient, name: str
) -> None:
    with PersistentQueue(name, store=store) as q:
        ident = q.put({"mine": name}).id
        message = q.get(block=False)
        assert message is not None
        q.dead_letter(message, error=ValueError("x"))
    with make_client(store) as c:
        overview = c.get("/").text
        link = re.search(
            rf'<tr data-queue="{re.escape(escape_html(name))}">\s*<td><a href="([^"]+)"', overview
        )
        assert link, overview
        page = c.get(link[1].replace("&amp;", "&"))
        assert page.status_code == 200
        assert f'<span class="name">{escape_html(name)}</span>' in page.text
        message_page = c.get(f"/queue/message?name={quote(name, safe='')}&id={ident}")
        assert message_page.status_code == 200 and "&#34;mine&#34;" in message_page.text
        dead = c.get(f"/queue/dead?name={quote(name, safe='')}")
        assert dead.status_code == 200 and escape_html(name) in dead.text
        token = csrf_of(c)
        preview = c.post("/actions/purge", data={"csrf": token, "name": name, "state": "dead"}).text
        key = re.search(r'name="key" value="([^"]+)"', preview)
        assert key and 'id="preview-count">1<' in preview
        c.post("/actions/confirm", data={"csrf": token, "key": key[1]})
    assert store.stats(name).total == 0
    assert store.stats("emails").total == 7  # the queue a bad link would reach


def escape_html(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&#34;").replace("'", "&#39;")
    )  # fmt: skip


def test_a_purge_preview_counts_without_holding_the_backlog(
    store: Store, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Beyond MAX_PINNED the preview counts (the CLI's dry run), pins nothing
    # and points to the CLI instead of offering a confirmation.
    monkeypatch.setattr(actions, "MAX_PINNED", 5)
    monkeypatch.setattr(actions, "PAGE", 2)
    with make_client(store) as c:
        token = csrf_of(c)
        small = c.post("/actions/purge", data={"csrf": token, "name": "emails", "state": "ready"})
        assert 'id="preview-count">2<' in small.text and 'name="key"' in small.text
        large = c.post("/actions/purge", data={"csrf": token, "name": "emails", "state": "all"})
        assert 'id="preview-count">7<' in large.text
        assert 'id="too-many"' in large.text and "localqueue queue purge" in large.text
        assert 'name="key"' not in large.text
    # Pinning pages through the ids two at a time and keeps every one.
    found = actions.preview_purge(store, "emails", None, None, "all")
    assert found.count == 7 and found.ids == ()
    monkeypatch.setattr(actions, "MAX_PINNED", 100)
    found = actions.preview_purge(store, "emails", None, None, "all")
    assert found.ids == (1, 2, 3, 4, 5, 6, 7)


class FailsOnSecondPurge:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.purges = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def purge(self, queue: str, **options: Any) -> int:
        if not options.get("dry_run"):
            self.purges += 1
            if self.purges == 2:
                from localqueue.store import StoreConnectionLost

                raise StoreConnectionLost("the server went away")
        return self.store.purge(queue, **options)


def test_a_store_failing_part_way_through_an_action_says_how_far_it_got(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "CHUNK", 1)
    app = build_app(FailsOnSecondPurge(store), label="x", sample_every=None)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        token = csrf_of(c)
        preview = c.post("/actions/purge", data={"csrf": token, "name": "emails", "state": "dead"})
        key = re.search(r'name="key" value="([^"]+)"', preview.text)
        assert key
        done = c.post("/actions/confirm", data={"csrf": token, "key": key[1]})
    assert done.status_code == 503
    assert (
        "deleted 1 of the 3 message(s) previewed in &#39;emails&#39;, then the store" in done.text
    )
    assert "preview again for the rest" in done.text
    assert store.stats("emails").dead == 2


def test_behind_a_tls_proxy_actions_are_not_taken_for_another_site(
    store: Store, client: TestClient
) -> None:
    token = csrf_of(client)

    def purge_preview(headers: dict[str, str]) -> int:
        return client.post(
            "/actions/purge",
            data={"csrf": token, "name": "emails", "state": "ready"},
            headers=headers,
        ).status_code

    # https outside, http here; the Host kept by the proxy.
    assert purge_preview({"Origin": "https://127.0.0.1:8765"}) == 200
    # A proxy that rewrites Host: the browser's Sec-Fetch-Site still says.
    assert purge_preview({"Origin": "https://dash.example", "Sec-Fetch-Site": "same-origin"}) == 200
    assert purge_preview({"Origin": "https://dash.example"}) == 403
    assert purge_preview({"Origin": "https://127.0.0.1:8765", "Sec-Fetch-Site": "same-site"}) == 403


@pytest.mark.parametrize(
    "raw_path, location",
    [
        ("//evil.example/x", "/evil.example/x"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
        ("/\\evil.example", "/evil.example"),
        ("/queue?name=a%2541&state=dead", "/queue?name=a%2541&state=dead"),
    ],
)
def test_the_token_redirect_stays_on_this_server_and_keeps_the_address(
    store: Store, raw_path: str, location: str
) -> None:
    app = build_app(store, label="x", token=TOKEN, sample_every=None)
    with TestClient(app, base_url="http://dash.example") as c:
        joiner = "&" if "?" in raw_path else "?"
        request = c.build_request("GET", f"http://dash.example{raw_path}{joiner}token={TOKEN}")
        # Send the path as written, not normalised by the client.
        request.extensions["target"] = f"{raw_path}{joiner}token={TOKEN}".encode()
        response = c.send(request, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == location


def test_the_token_cookie_is_secure_behind_https(store: Store) -> None:
    app = build_app(store, label="x", token=TOKEN, sample_every=None)
    with TestClient(app, base_url="http://dash.example") as c:
        plain = c.get(f"/?token={TOKEN}", follow_redirects=False)
        proxied = c.get(
            f"/?token={TOKEN}", headers={"X-Forwarded-Proto": "https"}, follow_redirects=False
        )
    assert "secure" not in plain.headers["set-cookie"].lower()
    assert "secure" in proxied.headers["set-cookie"].lower()


@pytest.mark.parametrize("token", ["", "short"])
def test_an_empty_or_short_token_is_refused_by_the_api_too(store: Store, token: str) -> None:
    with pytest.raises(ValueError, match="a token of at least 16 characters"):
        build_app(store, label="x", token=token, sample_every=None)


def test_with_a_token_the_app_answers_any_host_by_default(store: Store) -> None:
    # As docs/web.md serves it: build_app(store, token=...) behind 0.0.0.0.
    app = build_app(store, label="x", token=TOKEN, sample_every=None)
    with TestClient(app, base_url="http://dash.example:8765") as c:
        assert c.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_tiny_duration_filter_survives_paging(store: Store, make_client: MakeClient) -> None:
    with PersistentQueue("many", store=store) as q:
        q.put_many(list(range(60)))
        for _ in range(60):
            got = q.get(block=False)
            assert got is not None
            q.dead_letter(got, error="x")
    with make_client(store) as c:
        first = c.get("/queue?name=many&state=dead&failed_within=1e-05s")
        assert first.status_code == 400  # the CLI's durations take no exponent
        first = c.get("/queue?name=many&state=dead&failed_within=3600.000001")
        following = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert following and "failed_within=3600.000001" in following[1]
        assert c.get(following[1].replace("&amp;", "&")).status_code == 200


def test_dead_letters_without_an_error_are_grouped_without_a_dead_link(
    store: Store, make_client: MakeClient
) -> None:
    with PersistentQueue("quiet", store=store) as q:
        q.put(1)
        got = q.get(block=False)
        assert got is not None
        q.dead_letter(got)
    with make_client(store) as c:
        page = c.get("/queue/dead?name=quiet").text
    assert "(no error)" in page
    assert "error_type=" not in page


def test_an_app_can_be_served_stopped_and_served_again(store: Store) -> None:
    app = build_app(store, label="x", sample_every=0.05)
    for _ in range(2):
        with TestClient(app, base_url="http://127.0.0.1") as c:
            assert c.get("/").status_code == 200
    assert store.stats("emails").ready == 2


def test_a_stop_is_not_held_up_by_a_request_that_never_ends(store_url: str, served: Any) -> None:
    with served(store_url) as server:
        host, port = server.address.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as stuck:
            # An action whose body never arrives.
            stuck.sendall(
                b"POST /actions/confirm HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 1000\r\n\r\ncsrf="
            )
            time.sleep(0.5)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            server.process.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
            server.process.wait(timeout=20)
    assert time.monotonic() - started < 10
    assert server.process.returncode in (0, 1)
