"""The pages show what the store holds, escaped, with the CLI's filters."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from starlette.testclient import TestClient

from localqueue.store import Store
from localqueue_web.history import History
from localqueue_web.pages import PAYLOAD_SHOWN

pytest_plugins = ["web_fixtures"]
MakeClient = Callable[..., TestClient]


def cells(html: str, queue: str) -> list[str]:
    row = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', html, re.S)
    assert row, html
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1])]


def test_the_overview_lists_every_queue_with_its_counts(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    # queue, ready, delayed, inflight, dead, oldest ready, workers
    assert cells(page.text, "emails")[:5] == ["emails", "2", "1", "1", "3"]
    assert cells(page.text, "reports")[:5] == ["reports", "1", "0", "0", "0"]
    # The rows alone, for the page's live refresh.
    rows = client.get("/?fragment=rows")
    assert rows.status_code == 200 and "<html" not in rows.text
    assert cells(rows.text, "emails")[:5] == ["emails", "2", "1", "1", "3"]


def test_the_overview_says_when_no_queue_holds_a_message(
    tmp_path: object, make_client: MakeClient
) -> None:
    from localqueue.store import open_store

    empty = open_store(f"sqlite://{tmp_path}/empty.db")
    with make_client(empty) as c:
        assert "No queue holds a message." in c.get("/").text
    empty.close()


def test_no_payload_or_error_text_is_rendered_unescaped(client: TestClient, hostile: str) -> None:
    for path in (
        "/",
        "/queue?name=emails",
        "/queue?name=emails&state=dead",
        "/queue/dead?name=emails",
        "/queue/message?name=emails&id=1",
    ):
        text = client.get(path).text
        assert hostile not in text, path
        assert "<script>alert" not in text, path
    message = client.get("/queue/message?name=emails&id=1").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in message


def test_a_queue_name_with_markup_is_escaped_everywhere(
    store: Store, make_client: MakeClient
) -> None:
    from localqueue import PersistentQueue

    name = 'q"><img src=x onerror=alert(1)>'
    with PersistentQueue(name, store=store) as q:
        q.put(1)
    with make_client(store) as c:
        for path in ("/", f"/queue?name={quote(name)}"):
            page = c.get(path)
            assert page.status_code == 200, (path, page.text)
            assert "<img src=x" not in page.text


def test_one_message_shows_payload_attempts_error_and_traceback(client: TestClient) -> None:
    page = client.get("/queue/message?name=emails&id=1").text
    assert '<dd class="state dead">dead</dd>' in page
    assert "user0@example.com" in page
    assert "TimeoutError" in page and "Traceback (most recent call last)" in page
    assert "requeue this dead letter" in page


def test_a_payload_that_is_not_json_is_shown_as_text_or_hex(client: TestClient) -> None:
    found = re.search(
        r'href="/queue/message\?name=reports&amp;id=(\d+)"', client.get("/queue?name=reports").text
    )
    assert found
    page = client.get(f"/queue/message?name=reports&id={found[1]}").text
    assert "(bytes, 12 bytes)" in page
    assert "00 ff 20 72 61 77" in page


def test_a_huge_payload_is_cut_and_says_so(store: Store, make_client: MakeClient) -> None:
    from localqueue import PersistentQueue

    with PersistentQueue("big", store=store) as q:
        ident = q.put("x" * (PAYLOAD_SHOWN * 3)).id
    with make_client(store) as c:
        page = c.get(f"/queue/message?name=big&id={ident}").text
    assert "the first 65,536 shown" in page
    assert len(page) < PAYLOAD_SHOWN * 2


def test_the_listing_filters_like_the_cli(client: TestClient) -> None:
    def ids(path: str) -> list[str]:
        page = client.get(path)
        assert page.status_code == 200, page.text
        return re.findall(r'href="/queue/message\?name=emails&amp;id=(\d+)"', page.text)

    assert len(ids("/queue?name=emails")) == 7
    assert ids("/queue?name=emails&state=dead") == ["1", "2", "3"]
    assert ids("/queue?name=emails&state=delayed") == ["7"]
    assert ids("/queue?name=emails&state=inflight") == ["4"]
    assert ids("/queue?name=emails&state=dead&error_contains=AGAIN") == ["2"]
    assert ids("/queue?name=emails&state=dead&error_type=ValueError") == ["3"]
    assert ids("/queue?name=emails&state=dead&min_attempts=2") == []
    assert ids("/queue?name=emails&state=dead&failed_within=1h") == ["1", "2", "3"]


def test_the_listing_pages_by_id(store: Store, make_client: MakeClient) -> None:
    from localqueue import PersistentQueue

    with PersistentQueue("many", store=store) as q:
        q.put_many(list(range(120)))
    with make_client(store) as c:
        first = c.get("/queue?name=many").text
        shown = re.findall(r'href="/queue/message\?name=many&amp;id=(\d+)"', first)
        assert len(shown) == 50
        following = re.search(r'href="/queue\?name=many&amp;after=(\d+)" rel="next"', first)
        assert following and following[1] == shown[-1]
        second = c.get(f"/queue?name=many&after={following[1]}").text
        more = re.findall(r'href="/queue/message\?name=many&amp;id=(\d+)"', second)
        assert len(more) == 50 and int(more[0]) == int(shown[-1]) + 1
        third = c.get(f"/queue?name=many&after={more[-1]}").text
        assert len(re.findall(r'href="/queue/message\?name=many&amp;id=(\d+)"', third)) == 20
        assert 'rel="next"' not in third


def test_dead_letters_are_grouped_by_error_type(client: TestClient) -> None:
    page = client.get("/queue/dead?name=emails").text
    groups = re.findall(r"<tr>\s*<td>(\w+)</td>\s*<td class=\"n\">(\d+)</td>", page)
    assert groups == [("TimeoutError", "2"), ("ValueError", "1")]
    assert "3 dead letter(s)" in page


def test_bad_addresses_get_a_one_line_reason(client: TestClient) -> None:
    for path, status, reason in [
        ("/queue?name=emails&state=bogus", 400, "state must be one of ready, delayed"),
        ("/queue?name=emails&failed_within=soon", 400, "is not a duration"),
        ("/queue?name=emails&min_attempts=-1", 400, "min_attempts must be a whole number"),
        ("/queue?name=emails&after=x", 400, "after must be a whole number"),
        ("/queue/message?name=emails&id=0", 400, "message id must be"),
        ("/queue/message?name=emails&id=abc", 400, "message id must be"),
        ("/queue/message?name=emails&id=99999", 404, "no message 99999 in queue"),
        (f"/queue?name=emails&error_contains={'x' * 2000}", 400, "longer than 1000"),
        ("/nowhere", 404, "Not Found"),
    ]:
        page = client.get(path)
        assert page.status_code == status, (path, page.text)
        error = re.search(r'<p class="error" id="error">(.*?)</p>', page.text, re.S)
        assert error and reason in error[1], (path, page.text)
        assert "Traceback" not in page.text


def test_read_only_offers_no_action_and_refuses_one(store: Store, make_client: MakeClient) -> None:
    with make_client(store, read_only=True) as c:
        for path in (
            "/",
            "/queue?name=emails",
            "/queue/message?name=emails&id=1",
            "/queue/dead?name=emails",
        ):
            page = c.get(path).text
            assert 'method="post"' not in page, path
            assert "read-only" in page
        refused = c.post("/actions/requeue", data={"name": "emails", "id": "1"})
        assert refused.status_code in (404, 405)
    assert store.stats("emails").dead == 3


def test_charts_draw_the_sampled_history(store: Store, make_client: MakeClient) -> None:
    history = History()
    for at in range(5):
        history.add(1000.0 + at * 10, [store.stats("emails")])
    with make_client(store, history=history) as c:
        page = c.get("/queue?name=emails").text
    assert "waiting: 4 now, between 4 and 4 over the last 40 s" in page
    assert "change per minute: +0 now" in page
    assert page.count("<polyline points=") == 2


def test_the_password_of_a_store_url_is_never_shown(store: Store) -> None:
    from localqueue.store import redact_url
    from localqueue_web.app import build_app

    label = redact_url("postgresql://ann:s3cret-pw@db.example/queues")
    app = build_app(store, label=label, sample_every=None)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for path in ("/", "/queue?name=emails", "/queue/message?name=emails&id=1", "/nowhere"):
            text = c.get(path).text
            assert "s3cret-pw" not in text and "ann:***@db.example" in text


def test_the_stylesheet_and_the_script_are_served_from_the_package(client: TestClient) -> None:
    style = client.get("/static/style.css")
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]
    script = client.get("/static/live.js")
    assert script.status_code == 200 and "data-refresh" in script.text
    assert client.get("/static/../app.py").status_code == 404


def test_the_queue_page_lists_its_workers_and_who_holds_what(
    store: Store, make_client: MakeClient
) -> None:
    store.record_heartbeat("emails", "worker-live")
    with make_client(store) as c:
        page = c.get("/queue?name=emails").text
    start = page.index('<table class="workers">')
    table = page[start : page.index("</table>", start)]
    cell = r"\s*<td[^>]*>([^<]+)</td>"
    rows = re.findall(r"<tr[^>]*>" + cell * 3, table)
    assert ("worker-live", "0 s ago", "0") in rows
    # The fixture leased one message with a plain get(): its holder shows.
    assert [held for _, seen, held in rows if seen == "none sent"] == ["1"]


def test_workers_are_listed_stale_first() -> None:
    from localqueue.store import QueueStats
    from localqueue_web.pages import WorkerRow, workers

    stats = QueueStats(
        queue="q",
        inflight_by_worker={"busy": 2, "script": 1},
        workers={"busy": 995.0, "gone": 800.0},
    )
    assert workers(stats, now=1000.0) == [
        WorkerRow("gone", 200.0, 0, True),
        WorkerRow("busy", 5.0, 2, False),
        WorkerRow("script", None, 1, False),
    ]
