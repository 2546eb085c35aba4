"""What the web tests share: a store filled with something in every state,
and a test client of the dashboard on it (fixtures ``store_url``, ``store``
and ``client``; a test module uses them with ``pytest_plugins =
["web_fixtures"]``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from localqueue import PersistentQueue, RawBytesSerializer
from localqueue.store import Store, open_store
from localqueue_web.app import build_app
from localqueue_web.history import History

HOSTILE = "<script>alert('x')</script>"


def fill(url: str) -> None:
    """emails: 3 ready, 1 delayed, 1 inflight, 3 dead (2 TimeoutError, one
    of them with markup in its message and traceback, 1 ValueError); a
    second queue, reports, with one ready message."""
    with PersistentQueue("emails", store=url) as q:
        for n in range(6):
            q.put({"to": f"user{n}@example.com", "note": HOSTILE})
        q.put({"later": True}, delay=3600)
        for error in (
            TimeoutError(f"smtp timed out {HOSTILE}"),
            TimeoutError("smtp timed out again"),
            ValueError("bad address"),
        ):
            message = q.get(block=False)
            try:
                raise error
            except Exception as exc:
                q.dead_letter(message, error=exc)
        q.get(block=False)  # inflight: leased and never acked
    with PersistentQueue("reports", store=url, serializer=RawBytesSerializer()) as q:
        q.put(b"\x00\xff raw bytes")


def client_for(store: Store, **options: object) -> TestClient:
    app = build_app(store, label="sqlite:///x.db", sample_every=None, **options)  # type: ignore[arg-type]
    # TestClient's default Host is "testserver": a loopback dashboard
    # refuses it, as it refuses any name that is not this machine's.
    return TestClient(app, base_url="http://127.0.0.1:8765")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path}/web.db"
    fill(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with client_for(store, history=History()) as c:
        yield c


@pytest.fixture
def make_client() -> Callable[..., TestClient]:
    """``client_for`` as a fixture: test modules take helpers only through
    fixtures, so that this module is imported once, as their plugin."""
    return client_for


@pytest.fixture
def hostile() -> str:
    """Markup stored in payloads and errors by ``fill``."""
    return HOSTILE


class Served:
    """``localqueue web serve`` running in a process of its own."""

    def __init__(self, url: str, *args: str, env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
        environ.update(env or {})
        environ["LOCALQUEUE_STORE"] = url
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localqueue", "web", "serve", "--port", "0", *args],
            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stderr is not None
        self.banner = self.process.stderr.readline()
        found = re.search(r"on (http://\S+/)", self.banner)
        if found is None:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise AssertionError(f"web serve did not start: {self.banner}{err}")
        self.address = found[1].rstrip("/")

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM it; its exit status and what it printed."""
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=20)
        return self.process.returncode, out, self.banner + err

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)


@pytest.fixture
def served() -> type[Served]:
    """``Served``, for test modules (which take helpers through fixtures)."""
    return Served


@pytest.fixture
def fill_store() -> Callable[[str], None]:
    """``fill``, for test modules that bring their own store (PostgreSQL)."""
    return fill
