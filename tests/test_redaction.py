"""Store URLs are never printed with their password (issue 15, item 4).

``redact_url`` masks the password in the userinfo and secret query values;
every command that prints or writes a URL shows it through it. Here: the
kit's function and ``store copy`` (text and --json), core only. The
PostgreSQL URLs of ``metrics serve`` and ``harness run`` are checked in
plugins/prometheus/tests and harness/tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from localqueue.cli.app import build_cli
from localqueue.clock import Clock
from localqueue.plugins import get_plugin_manager
from localqueue.store import NewMessage, Store, StoreNotFound, StoreScheme, hookimpl
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore

PASSWORD = "s3cr3t-pw"
TOKEN = "t0ken-value"


# -- redact_url --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # the password in the userinfo
        (
            f"postgresql://lq:{PASSWORD}@127.0.0.1:5432/db?schema=x",
            "postgresql://lq:***@127.0.0.1:5432/db?schema=x",
        ),
        # percent-encoded password (and user): the user is kept as written
        ("postgresql://l%40q:p%40ss%3Aw%2Fd@db/jobs", "postgresql://l%40q:***@db/jobs"),
        # a raw "@" (and ":") in the password: cut at the last "@"
        ("postgresql://lq:p@ss:w@rd@db:5433/jobs", "postgresql://lq:***@db:5433/jobs"),
        # an empty password is still a password field
        ("postgresql://lq:@db/jobs", "postgresql://lq:***@db/jobs"),
        # secret query parameters, any case, with the others kept byte for byte
        (
            "postgresql://db/jobs?password=a&sslpassword=b&schema=q&sslmode=require",
            "postgresql://db/jobs?password=***&sslpassword=***&schema=q&sslmode=require",
        ),
        (
            "postgres://lq@db/j?Api_Token=x&client_SECRET=y&PGPASSWORD=z&host=%2Ftmp&flag",
            "postgres://lq@db/j?Api_Token=***&client_SECRET=***&PGPASSWORD=***&host=%2Ftmp&flag",
        ),
        # a percent-encoded parameter name is still recognised
        ("postgresql://db/j?pass%77ord=x&a=1", "postgresql://db/j?pass%77ord=***&a=1"),
        # a fragment is kept
        ("postgresql://u:p@h/d?token=x#frag", "postgresql://u:***@h/d?token=***#frag"),
        # IPv6 host, no userinfo: unchanged
        ("postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db"),
    ],
)
def test_redact_url_masks_passwords_and_secret_parameters(url: str, shown: str) -> None:
    from localqueue.store import redact_url

    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://lq@db/jobs?schema=q",  # no password
        "postgresql:///jobs",
        "sqlite:///tmp/a%3Fb%23c/queue.sqlite3",
        "sqlite:///srv/user:name@host/queue.sqlite3",  # "@" and ":" in a path, not userinfo
        "sqlite:///var/q.db?busy_timeout=5",
        "memory://",
        "memory://shared",
        "",
        "garbage",
        "/just/a/path:with@odd?chars",
        ":::",
        "://",
        "postgresql://",
        "postgresql://?",
        "x://@",
        "\x00\udcff://ä@?=&&==#",
    ],
)
def test_redact_url_keeps_urls_without_secrets_byte_for_byte(url: str) -> None:
    from localqueue.store import redact_url

    assert redact_url(url) == url


def test_redact_url_never_raises_and_is_idempotent() -> None:
    from localqueue.store import redact_url

    for url in ["a://b:c@d@e:f/g?h=i&password=j#k", "x://u:p@", "s://:@", "q://h?token", "?&="]:
        once = redact_url(url)
        assert redact_url(once) == once
    assert redact_url("x://u:p@") == "x://u:***@"


def test_redact_url_is_public_in_the_kit() -> None:
    import localqueue.store as kit

    assert "redact_url" in kit.__all__


# -- store copy ------------------------------------------------------------
# A third-party store whose URL carries a password and whose store.url shows
# it as given: the CLI must mask it anyway.


class _SecretScheme:
    @hookimpl
    def localqueue_store_schemes(self) -> Sequence[StoreScheme]:
        def factory(url: str, *, clock: Clock | None = None) -> Store:
            return MemoryStore(url, clock=clock)

        def as_found(url: str, *, clock: Clock | None = None) -> Store:
            if "missing" in url:
                raise StoreNotFound(f"no store at {url}")  # (its own message, not ours)
            return MemoryStore(url, clock=clock)

        return [StoreScheme("secretdb", factory, open_existing=as_found, open_as_found=as_found)]


@pytest.fixture
def secret_scheme() -> None:
    get_plugin_manager().register(_SecretScheme(), name="secretdb-test")


def _url(host: str) -> str:
    return f"secretdb://lq:{PASSWORD}@{host}/db?schema=x&api_token={TOKEN}"


def _source(tmp_path: Path) -> str:
    path = tmp_path / "src.sqlite3"
    store = SQLiteStore(path)
    store.enqueue("jobs", [NewMessage(b"1"), NewMessage(b"2")])
    store.close()
    return str(path)


def _assert_clean(text: str) -> None:
    assert PASSWORD not in text and TOKEN not in text, text


@pytest.mark.usefixtures("secret_scheme")
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_copy_dry_run_into_a_store_that_does_not_exist_hides_the_password(
    tmp_path: Path, as_json: bool
) -> None:
    argv = ["store", "copy", _source(tmp_path), _url("missing"), "--dry-run"]
    result = CliRunner().invoke(build_cli(), argv + (["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    _assert_clean(result.stdout + result.stderr)
    if as_json:
        assert json.loads(result.stdout)["destination"] == (
            "secretdb://lq:***@missing/db?schema=x&api_token=***"
        )
    else:
        assert "to secretdb://lq:***@missing/db?schema=x&api_token=***" in result.stdout


@pytest.mark.usefixtures("secret_scheme")
@pytest.mark.parametrize("dry_run", [False, True], ids=["copy", "dry-run"])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_copy_between_stores_that_show_their_password_hides_it(
    tmp_path: Path, as_json: bool, dry_run: bool
) -> None:
    src = f"src-{as_json}-{dry_run}"
    MemoryStore(_url(src)).enqueue("jobs", [NewMessage(b"1")])  # shared, named by the URL
    argv = ["store", "copy", _url(src), _url(f"dst-{as_json}-{dry_run}")]
    argv += (["--json"] if as_json else []) + (["--dry-run"] if dry_run else [])
    result = CliRunner().invoke(build_cli(), argv)
    assert result.exit_code == 0, result.output
    _assert_clean(result.stdout + result.stderr)
    if as_json:
        document = json.loads(result.stdout)
        assert document["source"] == f"secretdb://lq:***@{src}/db?schema=x&api_token=***"
        assert document["total"] == 1


@pytest.mark.usefixtures("secret_scheme")
def test_copy_of_a_queue_the_source_lacks_hides_the_password(tmp_path: Path) -> None:
    MemoryStore(_url("src2")).enqueue("jobs", [NewMessage(b"1")])
    argv = ["store", "copy", _url("src2"), str(tmp_path / "dst.sqlite3"), "--queue", "nope"]
    result = CliRunner().invoke(build_cli(), argv)
    assert result.exit_code == 1
    assert "'nope' hold no messages in secretdb://lq:***@src2/" in result.stderr
    _assert_clean(result.stdout + result.stderr)
