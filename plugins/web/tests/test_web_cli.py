"""``localqueue web serve``: refuses what is unsafe or wrong in one line,
serves, and stops on SIGTERM."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localqueue import PersistentQueue

pytest_plugins = ["web_fixtures"]
Serve = Callable[..., Any]


def serve(
    url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    environ.update(env or {}, LOCALQUEUE_STORE=url)
    return subprocess.run(
        [sys.executable, "-m", "localqueue", "web", "serve", *args],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, env, reason",
    [
        (
            ["--host", "0.0.0.0"],
            {},
            "without a token; set one with --token or $LOCALQUEUE_WEB_TOKEN",
        ),
        (["--host", "::", "--token", ""], {}, "without a token"),
        (["--host", "0.0.0.0", "--token", "short"], {}, "a token of at least 16 characters"),
        (["--host", "0.0.0.0"], {"LOCALQUEUE_WEB_TOKEN": "short"}, "at least 16 characters"),
        (["--port", "70000"], {}, "70000 is not in the range"),
        (["--sample-every", "0.1"], {}, "sample at most once a second"),
        (["--sample-every", "soon"], {}, "is not a duration"),
    ],
)
def test_unsafe_or_wrong_options_are_refused_in_one_line(
    store_url: str, args: list[str], env: dict[str, str], reason: str
) -> None:
    run = serve(store_url, *args, env=env)
    assert run.returncode == 2, run.stderr
    assert reason in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_a_store_that_does_not_exist_is_one_line_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    run = serve(f"sqlite://{missing}", "--port", "0")
    assert run.returncode == 1
    assert run.stderr.startswith("Error: ") and len(run.stderr.strip().splitlines()) == 1
    assert not missing.exists()


def test_a_port_in_use_is_one_line(store_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        run = serve(store_url, "--port", str(port))
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "choose another --port" in run.stderr and "Traceback" not in run.stderr


def test_serves_the_dashboard_and_stops_on_sigterm(store_url: str, served: Serve) -> None:
    with served(store_url) as server:
        assert server.banner.startswith(
            f"serving the dashboard of {store_url} on http://127.0.0.1:"
        )
        with urllib.request.urlopen(server.address + "/", timeout=10) as page:
            text = page.read().decode()
        assert 'data-queue="emails"' in text
        started = time.monotonic()
        status, _, err = server.stop()
    assert status == 0, err
    assert time.monotonic() - started < 10
    assert "Traceback" not in err


def test_read_only_says_so_and_offers_no_action(store_url: str, served: Serve) -> None:
    with served(store_url, "--read-only") as server:
        assert server.banner.rstrip().endswith("(read-only)")
        with urllib.request.urlopen(server.address + "/queue?name=emails", timeout=10) as page:
            assert 'method="post"' not in page.read().decode()
        server.stop()


def test_the_token_from_the_environment_guards_every_page(store_url: str, served: Serve) -> None:
    token = "token-from-the-environment-42"
    with served(store_url, env={"LOCALQUEUE_WEB_TOKEN": token}) as server:
        assert "open it once as /?token=TOKEN" in server.banner
        assert token not in server.banner
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.address + "/", timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(
            server.address + "/", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as page:
            assert page.status == 200
        _, out, err = server.stop()
    assert token not in out + err


def test_the_command_is_listed_by_the_plugins_command(store_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "localqueue", "web", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0 and "serve" in run.stdout
    with PersistentQueue("emails", store=store_url) as q:
        assert q.stats().total == 7  # serving and asking changed nothing


def test_a_store_password_is_never_printed_or_shown(
    postgres_store_url: str, served: Serve, fill_store: Callable[[str], None]
) -> None:
    # The throwaway server trusts its clients: the password is ignored by
    # it, and must appear nowhere the dashboard prints or serves.
    password = "s3cr3t-web-pw"
    scheme, _, rest = postgres_store_url.partition("://")
    user_host = rest.split("@", 1)
    url = (
        f"{scheme}://{user_host[0].split(':', 1)[0]}:{password}@{user_host[1]}"
        if len(user_host) == 2
        else f"{scheme}://postgres:{password}@{rest}"
    )
    fill_store(url)
    with served(url) as server:
        assert ":***@" in server.banner and password not in server.banner
        for path in ("/", "/queue?name=emails", "/queue/message?name=emails&id=1", "/nowhere"):
            try:
                with urllib.request.urlopen(server.address + path, timeout=10) as page:
                    text = page.read().decode()
            except urllib.error.HTTPError as refused:
                text = refused.read().decode()
            assert password not in text and ":***@" in text, path
        _, out, err = server.stop()
    assert password not in out + err
