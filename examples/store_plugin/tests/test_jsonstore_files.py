"""What careless and hostile users do to a jsonfile store, one test each.

The rule under test: a file that is not this store's is refused with one
line that says what to do, and is left byte for byte as it was; a bad URL is
a ValueError; nothing a user can do turns into a silent reset of their data.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from localqueue.store import (
    ManualClock,
    NewMessage,
    SchemaVersionError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    open_store,
)
from localqueue_jsonstore import JsonFileStore, open_jsonfile_store

LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text, f"not a one-line message: {text!r}"
    return text


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- bad URLs: ValueError, nothing touched ----------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("jsonfile://", "has no path"),
        ("jsonfile://?busy_timeout=1", "has no path"),
        ("jsonfile://relative/q.json", "relative path"),
        ("jsonfile:///tmp/q.json?synchronous=FULL", "unknown jsonfile store option"),
        ("jsonfile:///tmp/q.json?busy_timeout=soon", "busy_timeout must be a number"),
        ("jsonfile:///tmp/q.json?busy_timeout=-1", "busy_timeout must be > 0"),
    ],
)
def test_a_bad_url_is_a_value_error(url: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        open_store(url)
    assert words in one_line(caught.value)


def test_a_url_of_just_the_root_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        open_store("jsonfile:///")


# -- the wrong thing at the path: refused, untouched --------------------------------


def test_a_directory_instead_of_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "q.json").mkdir()
    with pytest.raises(StoreError) as caught:
        open_jsonfile_store(f"jsonfile://{tmp_path}/q.json")
    assert "is a directory" in one_line(caught.value)
    assert f"jsonfile://{tmp_path}/q.json/queue.json" in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["q.json"]
    assert list((tmp_path / "q.json").iterdir()) == []


def test_a_pipe_is_refused_not_replaced(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "q.json")
    with pytest.raises(StoreError, match="not a regular file"):
        JsonFileStore(tmp_path / "q.json")
    assert stat.S_ISFIFO(os.stat(tmp_path / "q.json").st_mode)


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (os.urandom(4096), StoreCorruptError, "it is not JSON"),
        (b"\x00\x01 not json at all", StoreCorruptError, "it is not JSON"),
        (b'{"name": "my-app", "dependencies": {}}\n', StoreCorruptError, "format marker"),
        (b"[1, 2, 3]", StoreCorruptError, "format marker"),
        (b'{"format": "localqueue-jsonfile", "version": "one"}', StoreCorruptError, "version"),
        (
            b'{"format": "localqueue-jsonfile", "version": 1, "next_id": 2, '
            b'"messages": [{"id": 1}], "workers": {}}',
            StoreCorruptError,
            "damaged",
        ),
        (
            b'{"format": "localqueue-jsonfile", "version": 99, "messages": []}',
            SchemaVersionError,
            "upgrade the plugin",
        ),
    ],
)
def test_a_file_that_is_not_this_stores_is_refused_untouched(
    tmp_path: Path, content: bytes, error: type[StoreError], words: str
) -> None:
    (tmp_path / "q.json").write_bytes(content)
    with pytest.raises(error) as caught:
        open_jsonfile_store(f"jsonfile://{tmp_path}/q.json")
    assert words in one_line(caught.value)
    assert "untouched" in str(caught.value)
    # Byte for byte, and not even a lock file beside it.
    assert files_in(tmp_path) == {"q.json": content}


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    (tmp_path / "q.json").touch()
    store = JsonFileStore(tmp_path / "q.json")
    store.enqueue("jobs", [NewMessage(b"x")])
    assert json.loads((tmp_path / "q.json").read_bytes())["format"] == "localqueue-jsonfile"


def test_a_file_overwritten_while_open_is_reported_not_reset(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "q.json")
    store.enqueue("jobs", [NewMessage(b"x")])
    (tmp_path / "q.json").write_text('{"someone": "else"}')
    with pytest.raises(StoreCorruptError):
        store.enqueue("jobs", [NewMessage(b"y")])
    with pytest.raises(StoreCorruptError):
        store.stats("jobs")
    [problem] = store.check()
    assert "not a localqueue jsonfile store" in problem
    assert (tmp_path / "q.json").read_text() == '{"someone": "else"}'


def test_a_file_deleted_while_open_is_reported_not_recreated(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "q.json")
    (tmp_path / "q.json").unlink()
    with pytest.raises(StoreError) as caught:
        store.enqueue("jobs", [NewMessage(b"x")])
    assert "disappeared" in one_line(caught.value)
    assert not (tmp_path / "q.json").exists()


def test_a_stale_temporary_file_from_a_killed_writer_is_harmless(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "q.json")
    store.enqueue("jobs", [NewMessage(b"kept")])
    (tmp_path / "q.json.tmp").write_bytes(b'{"format": "localqueue-jsonfi')  # cut short
    again = JsonFileStore(tmp_path / "q.json")
    assert [r.payload for r in again.list_messages("jobs")] == [b"kept"]
    again.enqueue("jobs", [NewMessage(b"more")])
    assert len(again.list_messages("jobs")) == 2


def test_a_private_store_stays_private_after_a_write(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "q.json")
    os.chmod(tmp_path / "q.json", 0o600)
    store.enqueue("jobs", [NewMessage(b"x")])
    assert stat.S_IMODE(os.stat(tmp_path / "q.json").st_mode) == 0o600


def test_a_symlink_is_followed_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link.json").symlink_to(tmp_path / "real" / "q.json")
    store = JsonFileStore(tmp_path / "link.json")
    store.enqueue("jobs", [NewMessage(b"x")])
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real" / "q.json").stat().st_size > 0


# -- locks ------------------------------------------------------------------------


def test_a_writer_that_holds_the_lock_too_long_gives_store_busy(tmp_path: Path) -> None:
    store = open_jsonfile_store(f"jsonfile://{tmp_path}/q.json?busy_timeout=0.2")
    with open(tmp_path / "q.json.lock", "a") as other:  # another process's lock
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(StoreBusyError) as caught:
            store.enqueue("jobs", [NewMessage(b"x")])
        assert "busy_timeout" in one_line(caught.value)
        assert store.stats("jobs").ready == 0  # readers need no lock
    store.enqueue("jobs", [NewMessage(b"x")])


def test_a_forked_child_does_not_share_its_parents_lock(tmp_path: Path) -> None:
    """flock belongs to the open file description, which fork shares: a child
    reusing the parent's descriptor would 'take' the lock the parent holds."""
    store = JsonFileStore(tmp_path / "q.json", busy_timeout=0.3)
    store.enqueue("jobs", [NewMessage(b"before")])
    with store._file.transaction():  # the parent is mid-write
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            try:
                store.enqueue("jobs", [NewMessage(b"child")])
            except StoreBusyError:
                os._exit(0)
            except BaseException:
                os._exit(2)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child wrote while the parent held the lock"
    store.enqueue("jobs", [NewMessage(b"after")])
    assert [r.payload for r in store.list_messages("jobs")] == [b"before", b"after"]


# -- the command line -----------------------------------------------------------------


def test_the_cli_uses_the_store_and_says_in_one_line_what_it_lacks(tmp_path: Path) -> None:
    url = f"jsonfile://{tmp_path}/q.json"
    env = {**os.environ, "LOCALQUEUE_STORE": url}
    add = subprocess.run(
        [LOCALQUEUE, "queue", "add", "jobs", "--value", '{"n": 1}'],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    info = subprocess.run(
        [LOCALQUEUE, "store", "info"], env=env, capture_output=True, text=True, check=False
    )
    assert info.returncode != 0
    assert info.stderr.strip() == f"Error: store {url!r} does not support info"
    check = subprocess.run(
        [LOCALQUEUE, "store", "check"], env=env, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and "passed the integrity check" in check.stdout
    missing = subprocess.run(
        [LOCALQUEUE, "--store", f"jsonfile://{tmp_path}/typo.json", "store", "check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode != 0 and "no jsonfile store at" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not (tmp_path / "typo.json").exists()


def test_store_copy_into_it_and_back(tmp_path: Path) -> None:
    """The one optional capability it implements: SupportsImport."""
    clock = ManualClock()
    sqlite_url = f"sqlite://{tmp_path}/source.sqlite3"
    with PersistentQueue("jobs", store=open_store(sqlite_url, clock=clock)) as source:
        source.put({"n": 1}, dedupe_key="one")
        source.put({"n": 2}, delay=60)
    copied = subprocess.run(
        [LOCALQUEUE, "store", "copy", sqlite_url, f"jsonfile://{tmp_path}/copy.json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    store = JsonFileStore(tmp_path / "copy.json", clock=clock)
    records = store.list_messages("jobs")
    assert [(r.id, r.dedupe_key) for r in records] == [(1, "one"), (2, None)]
    assert store.enqueue("jobs", [NewMessage(b"3")]).records[0].id == 3
    back = subprocess.run(
        [LOCALQUEUE, "store", "copy", f"jsonfile://{tmp_path}/copy.json",
         f"sqlite://{tmp_path}/back.sqlite3"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    returned = open_store(f"sqlite://{tmp_path}/back.sqlite3", clock=clock)
    assert [r.payload for r in returned.list_messages("jobs")] == [
        r.payload for r in store.list_messages("jobs")
    ]
    returned.close()
