"""SQLite store URLs (issue 15, items 1, 2, 5 and the repeated-option part of 8).

A store URL either works on every open or is refused on the first with one
line; ``store.url`` is a URL that reopens the very same file; the options
are refused, not bent, when SQLite cannot honour them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from localqueue import PersistentQueue, open_store, resolve_store_url
from localqueue.cli import build_cli
from localqueue.stores.sqlite import SQLiteStore, parse_sqlite_url

# File names whose characters mean something in a URL or a SQLite URI.
AWKWARD_NAMES = [
    "with space.db",
    "percent%.db",
    "looks-encoded%41.db",
    "question?mark.db",
    "hash#mark.db",
    "ampersand&equals=.db",
    "non-ascii-é-日本.db",
    "plus+sign.db",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(build_cli(), list(args))


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def put_one(url: str, value: str = "kept") -> Path:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    PersistentQueue("q", store=store).put(value)
    store.close()
    return store.path


def values_in(url: str) -> list[str]:
    store = open_store(url, existing=True)
    try:
        return [json.loads(m.payload) for m in store.list_messages("q")]
    finally:
        store.close()


# -- item 1: every open works, or the first is refused --------------------------------------


def test_four_slash_url_works_on_every_open(tmp_path: Path) -> None:
    """Item 1: sqlite:////abs/path.db (the SQLAlchemy habit) opened once, then
    every later open failed with 'invalid uri authority'."""
    url = "sqlite:///" + str(tmp_path / "four.db")
    assert url.startswith("sqlite:////")
    path = put_one(url)
    assert path == tmp_path / "four.db"
    for _ in range(2):
        assert values_in(url) == ["kept"]
    for existing, as_found in ((False, False), (True, False), (True, True)):
        store = open_store(url, existing=existing, as_found=as_found)
        assert isinstance(store, SQLiteStore) and store.path == tmp_path / "four.db"
        store.close()
    # The same file as the three-slash form, and the URL it reports is that form.
    assert values_in("sqlite://" + str(tmp_path / "four.db")) == ["kept"]
    assert parse_sqlite_url(url)[0] == tmp_path / "four.db"


def test_bare_path_with_two_leading_slashes_works_on_every_open(tmp_path: Path) -> None:
    """Item 1: a plain path starting with '//' became a URI with an authority."""
    bare = "/" + str(tmp_path / "bare.db")
    assert bare.startswith("//")
    put_one(bare)
    assert values_in(bare) == ["kept"]
    store = SQLiteStore(bare)
    assert store.path == tmp_path / "bare.db"
    store.close()


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_awkward_file_names_open_every_time(tmp_path: Path, name: str) -> None:
    """Item 1: the read-only probe turns the path into a SQLite URI; every
    character of the name must survive that on every later open."""
    path = tmp_path / name
    put_one(str(path))
    assert values_in(str(path)) == ["kept"]
    store = open_store(str(path), as_found=True)
    assert isinstance(store, SQLiteStore) and store.path == path
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        name
    ]


def test_a_file_name_that_is_not_utf8_works_as_a_bare_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Latin-1 "café.db": the bytes os.fsdecode turns into a lone surrogate.
    name = os.fsdecode(b"caf\xe9.db")
    path = tmp_path / name
    url = resolve_store_url(str(path))  # used to raise UnicodeEncodeError
    assert url.endswith("/caf%E9.db")
    with PersistentQueue("jobs", store=url) as q:
        q.put(1)
        reopened_url = q.store.url
    assert os.fsencode(path) in [os.fsencode(p) for p in tmp_path.iterdir()]
    for again in (url, reopened_url, str(path)):
        with PersistentQueue("jobs", store=again) as q:
            assert q.stats().total == 1
    monkeypatch.setenv("LOCALQUEUE_STORE", str(path))
    result = run("queue", "stats", "jobs", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ready"] == 1


def test_store_info_through_the_cli_on_a_four_slash_url(tmp_path: Path) -> None:
    """Item 1: `store info` opens read-only, through the probe."""
    url = "sqlite:///" + str(tmp_path / "info.db")
    put_one(url)
    result = run("--store", url, "store", "info", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["url"] == "sqlite://" + str(tmp_path / "info.db")
    result = run("--store", url, "queue", "stats", "q")
    assert result.exit_code == 0, (result.output, result.exception)


# -- item 2: store.url reopens the same store -----------------------------------------------


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_store_url_reopens_the_same_store(tmp_path: Path, name: str) -> None:
    """Item 2: store.url was not percent-encoded although open_store decodes it,
    so passing it on opened a different, empty file."""
    path = put_one(str(tmp_path / name))
    store = open_store(str(path))
    url = store.url
    store.close()
    # A real URL: ASCII only, nothing in the path that a URL parser would cut.
    assert url.startswith("sqlite:///") and url.isascii(), url
    assert not any(c in url for c in " ?#"), url
    reopened = open_store(url, existing=True)
    assert isinstance(reopened, SQLiteStore) and reopened.path == path
    reopened.close()
    assert values_in(url) == ["kept"]
    assert parse_sqlite_url(url)[0] == path


@pytest.mark.parametrize("name", ["percent%.db", "question?mark.db", "with space.db"])
def test_the_url_store_info_shows_reopens_the_same_store(tmp_path: Path, name: str) -> None:
    """Item 2, through the CLI: the URL `store info` prints can be passed on."""
    path = put_one(str(tmp_path / name))
    result = run("--store", str(path), "store", "info", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    url = json.loads(result.stdout)["url"]
    assert values_in(url) == ["kept"]
    result = run("--store", url, "queue", "stats", "q", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        name
    ]


# -- item 5: busy_timeout within SQLite's range ---------------------------------------------


@pytest.mark.parametrize(
    "value", ["2147484", "1e10", "1e306", "1e309", "nan", "inf", "-inf", "-1", "-0.5", "soon", ""]
)
def test_busy_timeout_outside_sqlites_range_is_refused(tmp_path: Path, value: str) -> None:
    """Item 5: 2,147,484 s or more silently became 0 (SQLite counts 32-bit
    milliseconds) and 1e306 failed with 'cannot convert float infinity'."""
    url = f"sqlite://{tmp_path / 'busy.db'}?busy_timeout={value}"
    with pytest.raises(ValueError) as info:
        store = open_store(url)
        # Before the fix the value only failed (or silently became 0) on first use.
        with store._pool.connection() as conn:  # type: ignore[attr-defined]
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        store.close()
    message = str(info.value)
    assert "\n" not in message
    assert "busy_timeout" in message and "0 to 2147483" in message, message


@pytest.mark.parametrize("value", [2147484.0, 1e306, float("nan"), float("inf"), -1.0])
def test_busy_timeout_argument_is_checked_the_same_way(tmp_path: Path, value: float) -> None:
    """Item 5, from Python: SQLiteStore(busy_timeout=...) keeps the same range."""
    with pytest.raises(ValueError, match=r"busy_timeout must be .* 0 to 2147483 seconds"):
        SQLiteStore(tmp_path / "busy.db", busy_timeout=value)
    assert not (tmp_path / "busy.db").exists()


def test_the_largest_busy_timeout_reaches_sqlite_intact(tmp_path: Path) -> None:
    """Item 5: the top of the range is honoured, not wrapped to 0."""
    store = open_store(f"sqlite://{tmp_path / 'busy.db'}?busy_timeout=2147483")
    assert isinstance(store, SQLiteStore)
    with store._pool.connection() as conn:
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2_147_483_000
    store.close()
    small = SQLiteStore(tmp_path / "small.db", busy_timeout=0.0001)
    with small._pool.connection() as conn:
        # A positive timeout never rounds down to "do not wait at all".
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1
    small.close()


# -- item 8 (part): repeated URL options ----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("synchronous=FULL&synchronous=NORMAL", "synchronous"),
        ("busy_timeout=1&busy_timeout=2", "busy_timeout"),
        ("synchronous=FULL&busy_timeout=5&synchronous=FULL", "synchronous"),
    ],
)
def test_a_repeated_url_option_is_refused(tmp_path: Path, query: str, option: str) -> None:
    """Item 8: repeated options were silently last-wins."""
    url = f"sqlite://{tmp_path / 'r.db'}?{query}"
    with pytest.raises(ValueError, match=f"option '{option}' is given more than once") as info:
        open_store(url)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r.db").exists()


# -- every bad URL is one line through the CLI ----------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("busy_timeout=2147484", "busy_timeout"),
        ("busy_timeout=1e306", "busy_timeout"),
        ("busy_timeout=nan", "busy_timeout"),
        ("busy_timeout=-1", "busy_timeout"),
        ("synchronous=FULL&synchronous=NORMAL", "synchronous"),
        ("busy_timeout=1&busy_timeout=1", "busy_timeout"),
        ("synchronous=OFF", "synchronous"),
        ("nope=1", "unknown SQLite store option"),
    ],
)
def test_bad_sqlite_urls_are_one_line_errors_in_the_cli(
    tmp_path: Path, query: str, expected: str
) -> None:
    url = f"sqlite://{tmp_path / 'cli.db'}?{query}"
    for command in (
        ["queue", "stats", "q"],
        ["store", "info"],
        ["queue", "add", "q", "--value", "1"],
    ):
        line = one_line_error(run("--store", url, *command))
        assert expected in line, line
    assert not (tmp_path / "cli.db").exists()
