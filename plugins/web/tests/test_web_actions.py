"""Requeue and purge: previewed with the CLI's counts, confirmed once, and
done only to what the preview showed."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.testclient import TestClient

from localqueue import PersistentQueue
from localqueue.store import State, Store
from localqueue_web.security import Guard

pytest_plugins = ["web_fixtures"]
MakeClient = Callable[..., TestClient]


def csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/queue?name=emails").text)
    assert found
    return found[1]


def preview(client: TestClient, path: str, **form: object) -> tuple[int, str]:
    page = client.post(path, data={"csrf": csrf(client), **form})
    assert page.status_code == 200, page.text
    count = re.search(r'<strong id="preview-count">([\d,]+)</strong>', page.text)
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert count, page.text
    return int(count[1].replace(",", "")), key[1] if key else ""


def confirm(client: TestClient, key: str) -> int:
    page = client.post("/actions/confirm", data={"csrf": csrf(client), "key": key})
    assert page.status_code == 200, page.text
    done = re.search(r'<p id="done">\w+ <strong>([\d,]+)</strong>', page.text)
    assert done, page.text
    return int(done[1].replace(",", ""))


def dead_ids(store: Store) -> list[int]:
    return [r.id for r in store.list_messages("emails", state=State.DEAD)]


def test_requeue_one_dead_letter(client: TestClient, store: Store) -> None:
    count, key = preview(client, "/actions/requeue", name="emails", id="1")
    assert count == 1
    assert dead_ids(store) == [1, 2, 3]  # a preview changes nothing
    assert confirm(client, key) == 1
    assert dead_ids(store) == [2, 3]
    assert store.get("emails", 1).state is State.READY  # type: ignore[union-attr]


def test_requeue_a_selection(client: TestClient, store: Store) -> None:
    page = client.post(
        "/actions/requeue",
        data={"csrf": csrf(client), "name": "emails", "id": ["1", "3"], "selected": "1"},
    )
    count = re.search(r'id="preview-count">(\d+)<', page.text)
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert count and count[1] == "2" and key
    assert confirm(client, key[1]) == 2
    assert dead_ids(store) == [2]


def test_requeue_selected_with_nothing_ticked_requeues_nothing(
    client: TestClient, store: Store
) -> None:
    page = client.post(
        "/actions/requeue", data={"csrf": csrf(client), "name": "emails", "selected": "1"}
    )
    assert page.status_code == 400
    assert "no dead letter was selected" in page.text
    assert dead_ids(store) == [1, 2, 3]


def test_requeue_every_dead_letter_matching_a_filter_counts_as_the_cli_dry_run(
    client: TestClient, store: Store
) -> None:
    # What `localqueue queue requeue-dead emails --error-contains timed --dry-run` counts.
    expected = store.requeue(
        "emails",
        filter=__import__("localqueue").MessageFilter(error_contains="timed"),
        dry_run=True,
    )
    count, key = preview(client, "/actions/requeue", name="emails", error_contains="timed")
    assert count == len(expected) == 2
    assert confirm(client, key) == 2
    assert dead_ids(store) == [3]


def test_requeue_by_error_type_from_the_grouped_page(client: TestClient, store: Store) -> None:
    page = client.get("/queue/dead?name=emails").text
    assert 'name="error_type" value="ValueError"' in page
    count, key = preview(client, "/actions/requeue", name="emails", error_type="ValueError")
    assert count == 1
    assert confirm(client, key) == 1
    assert dead_ids(store) == [1, 2]


def test_a_confirmation_touches_only_what_the_preview_showed(
    client: TestClient, store: Store
) -> None:
    count, key = preview(client, "/actions/purge", name="emails", state="dead")
    assert count == 3
    # While the operator reads the preview, another message dies.
    with PersistentQueue("emails", store=store) as q:
        message = q.get(block=False)
        assert message is not None
        q.dead_letter(message, error="late")
    assert len(dead_ids(store)) == 4
    assert confirm(client, key) == 3
    assert dead_ids(store) == [message.id]


def test_a_preview_confirms_once(client: TestClient, store: Store) -> None:
    _, key = preview(client, "/actions/requeue", name="emails", id="2")
    assert confirm(client, key) == 1
    again = client.post("/actions/confirm", data={"csrf": csrf(client), "key": key})
    assert again.status_code == 409
    assert "already confirmed" in again.text


def test_purge_preview_counts_as_the_cli_dry_run(client: TestClient, store: Store) -> None:
    for state, expected in (("ready", 2), ("delayed", 1), ("all", 7)):
        wanted = None if state == "all" else State(state)
        assert store.purge("emails", state=wanted, dry_run=True) == expected
        count, _ = preview(client, "/actions/purge", name="emails", state=state)
        assert count == expected, state
    count, _ = preview(client, "/actions/purge", name="emails", state="all", older_than="1d")
    assert count == 0  # nothing is a day old
    assert store.stats("emails").total == 7


def test_purge_confirmed_deletes(client: TestClient, store: Store) -> None:
    _, key = preview(client, "/actions/purge", name="emails", state="ready")
    assert confirm(client, key) == 2
    assert store.stats("emails").ready == 0
    assert store.stats("emails").total == 5


def test_bad_action_input_gets_a_reason_and_changes_nothing(
    client: TestClient, store: Store
) -> None:
    token = csrf(client)
    for path, form, reason in [
        ("/actions/requeue", {"name": "emails", "id": "x"}, "message id must be a whole number"),
        ("/actions/requeue", {"name": "emails", "min_attempts": "many"}, "min_attempts must be"),
        ("/actions/requeue", {"name": "emails", "failed_within": "-5"}, "is not a duration"),
        ("/actions/purge", {"name": "emails", "state": "gone"}, "state must be one of"),
        ("/actions/purge", {"name": "emails", "older_than": "1e400"}, "duration"),
        ("/actions/purge", {"name": "bad\x01name"}, "queue name"),
        ("/actions/purge", {}, "queue name"),
    ]:
        page = client.post(path, data={"csrf": token, **form})
        assert page.status_code == 400, (path, form, page.text)
        assert reason in page.text, (path, form, page.text)
    assert store.stats("emails").total == 7 and store.stats("emails").dead == 3


def test_actions_without_the_csrf_token_change_nothing(client: TestClient, store: Store) -> None:
    _, key = preview(client, "/actions/purge", name="emails", state="all")
    for path, form in [
        ("/actions/purge", {"name": "emails", "state": "all"}),
        ("/actions/requeue", {"name": "emails", "id": "1"}),
        ("/actions/confirm", {"key": key}),
        ("/actions/confirm", {"key": key, "csrf": "guessed"}),
        ("/actions/confirm", {"key": key, "csrf": ""}),
    ]:
        page = client.post(path, data=form)
        assert page.status_code == 403, (path, form)
        assert "CSRF" in page.text
    assert store.stats("emails").total == 7 and dead_ids(store) == [1, 2, 3]
    # The key was not spent by the refused confirmations.
    assert confirm(client, key) == 7


def test_actions_from_another_site_change_nothing(client: TestClient, store: Store) -> None:
    token = csrf(client)
    _, key = preview(client, "/actions/purge", name="emails", state="all")
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        page = client.post("/actions/confirm", data={"csrf": token, "key": key}, headers=headers)
        assert page.status_code == 403, headers
    assert store.stats("emails").total == 7
    # The same origin is welcome.
    same = client.post(
        "/actions/confirm",
        data={"csrf": token, "key": key},
        headers={"Origin": "http://127.0.0.1:8765", "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 200
    assert store.stats("emails").total == 0


def test_each_server_has_its_own_csrf_token(store: Store, make_client: MakeClient) -> None:
    with make_client(store) as first, make_client(store) as second:
        token = csrf(first)
        assert token != csrf(second)
        page = second.post("/actions/purge", data={"csrf": token, "name": "emails", "state": "all"})
        assert page.status_code == 403
    assert len(Guard().csrf_token) >= 40
