"""The file behind a ``jsonfile://`` store: its format, its lock, its atomic rewrite.

Why this shape (docs/stores.md walks through it):

* **One JSON document holds everything**, so there is nothing to keep in
  step: the messages of every queue, the next id and the worker heartbeats
  are read together and written together.
* **A writer never changes the file in place.** It writes the whole new
  document to a sibling temporary file, fsyncs it, ``os.replace``s it over
  the store file and fsyncs the directory. A reader therefore always opens a
  complete document (the old one or the new one, never half of one), a
  process killed while writing leaves only a stale temporary file behind,
  and an operation that returned is on disk even after a power cut.
* **Writers exclude each other with ``flock`` on a sidecar ``.lock`` file.**
  The store file itself cannot carry the lock: it is replaced by every
  write. The kernel drops a ``flock`` when its holder dies, so a writer
  killed with SIGKILL never leaves the store locked.
* **Readers take no lock**: replacing is atomic, so a read sees one whole
  version of the store.

Every operation reads, and every change rewrites, the whole file: O(n) in
the number of messages. This store is for learning and for small queues,
not for throughput.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localqueue.store import (
    DEAD,
    INFLIGHT,
    QUEUED,
    ErrorInfo,
    SchemaVersionError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreNotFound,
)

# The marker that says "this JSON document is a localqueue jsonfile store".
# A file without it is someone else's and is never written to.
FORMAT = "localqueue-jsonfile"
VERSION = 1

# Stored states as the file spells them: words, so that `jq` shows a
# readable file; the kit's helpers take the integers.
STATE_NAMES = {QUEUED: "queued", INFLIGHT: "inflight", DEAD: "dead"}
STATE_CODES = {name: code for code, name in STATE_NAMES.items()}

# Waiting for another process's lock: poll from FIRST_LOCK_POLL, doubling up
# to MAX_LOCK_POLL. A holder only ever keeps it for one read-modify-write.
FIRST_LOCK_POLL = 0.0002
MAX_LOCK_POLL = 0.005


@dataclass
class Row:
    """One message as the file keeps it: the stored state and one time.

    ``available_at`` means "delayed until" for a queued message and "leased
    until" for an inflight one, so a delay or an expired lease needs no
    timer: :func:`localqueue.store.derived_state` reads the state off it.
    """

    id: int
    queue: str
    payload: bytes
    stored: int
    priority: int
    attempts: int
    created_at: float
    available_at: float
    leased_by: str | None = None
    receipt: str | None = None
    last_error: ErrorInfo | None = None
    failed_at: float | None = None
    dedupe_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        error = self.last_error
        return {
            "id": self.id,
            "queue": self.queue,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "state": STATE_NAMES[self.stored],
            "priority": self.priority,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "available_at": self.available_at,
            "leased_by": self.leased_by,
            "receipt": self.receipt,
            "error": None if error is None else error.as_dict(),
            "failed_at": self.failed_at,
            "dedupe_key": self.dedupe_key,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Row:
        error = item["error"]
        return cls(
            id=_int(item["id"]),
            queue=_str(item["queue"]),
            payload=base64.b64decode(_str(item["payload"]), validate=True),
            stored=STATE_CODES[item["state"]],
            priority=_int(item["priority"]),
            attempts=_int(item["attempts"]),
            created_at=_time(item["created_at"]),
            available_at=_time(item["available_at"]),
            leased_by=_opt_str(item["leased_by"]),
            receipt=_opt_str(item["receipt"]),
            last_error=None
            if error is None
            else ErrorInfo(
                type=_str(error["type"]),
                message=_str(error["message"]),
                traceback=_opt_str(error["traceback"]),
                at=None if error["at"] is None else _time(error["at"]),
            ),
            failed_at=None if item["failed_at"] is None else _time(item["failed_at"]),
            dedupe_key=_opt_str(item["dedupe_key"]),
        )


@dataclass
class Document:
    """The whole store, as read from the file in one go.

    ``next_id`` is a high-water mark: ids are handed out from it and it
    never goes down, so an id is never reused even after the message with
    the highest id is acked. Code that changes the document sets
    ``changed``; a transaction that changed nothing writes nothing.
    """

    next_id: int = 1
    rows: dict[int, Row] = field(default_factory=dict)
    # queue -> worker id -> last heartbeat (store clock)
    workers: dict[str, dict[str, float]] = field(default_factory=dict)
    changed: bool = False


def encode(doc: Document) -> bytes:
    """The file's bytes. ``allow_nan=False``: NaN and infinities are not JSON,
    and a document that other tools cannot read is not written."""
    body = {
        "format": FORMAT,
        "version": VERSION,
        "next_id": doc.next_id,
        "messages": [doc.rows[i].to_json() for i in sorted(doc.rows)],
        "workers": doc.workers,
    }
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode("ascii") + b"\n"


def decode(data: bytes, path: Path) -> Document:
    """Read a document, or refuse the file with an error that says what to do.

    A file that is not ours (not JSON, or JSON without our marker) is
    :class:`StoreCorruptError`; one written by a newer version of this
    plugin is :class:`SchemaVersionError`. Neither is ever written to.
    """
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise StoreCorruptError(
            f"{path} is not a localqueue jsonfile store (it is not JSON); it was left "
            "untouched: choose another path, or move that file away"
        ) from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise StoreCorruptError(
            f"{path} is not a localqueue jsonfile store (no {FORMAT!r} format marker); it was "
            "left untouched: choose another path, or move that file away"
        )
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StoreCorruptError(
            f"{path} has an invalid format version {version!r}; it was left untouched: "
            "restore it from a backup"
        )
    if version > VERSION:
        raise SchemaVersionError(
            f"{path} was written by a newer localqueue-example-store (format version "
            f"{version}, this one reads {VERSION}); it was left untouched: upgrade the plugin",
            found=version,
            supported=VERSION,
        )
    try:
        rows = [Row.from_json(item) for item in body["messages"]]
        workers = {
            _str(queue): {_str(worker): _time(seen) for worker, seen in entries.items()}
            for queue, entries in body["workers"].items()
        }
        return Document(_int(body["next_id"]), {row.id: row for row in rows}, workers)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise StoreCorruptError(
            f"{path} is a damaged jsonfile store ({type(exc).__name__}: {exc}); it was left "
            "untouched: restore it from a backup"
        ) from None


class JsonFile:
    """The store file and its sidecars: ``PATH.lock`` (the writers' lock) and
    ``PATH.tmp`` (the next version, being written).

    Thread-safe and fork-safe: threads of one process take turns through a
    ``threading.Lock`` (``flock`` alone would not separate them if they
    shared one descriptor), and a forked child opens its own lock descriptor
    (an inherited one shares the parent's lock).
    """

    def __init__(self, path: Path, *, busy_timeout: float, create: bool) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.lock_path = Path(f"{path}.lock")
        self.tmp_path = Path(f"{path}.tmp")
        self._pid = os.getpid()
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._open(create)

    # -- opening -------------------------------------------------------------

    def _open(self, create: bool) -> None:
        """Check what is at the path; create a new store only where nothing is.

        An empty file counts as nothing (``touch queue.json`` is a fine way
        to pick the place). Anything else must be our format, or it is
        refused before a single byte is written.
        """
        found = self._stat()
        if found is not None and found.st_size > 0:
            self.load()  # validates the format; raises on a foreign file
            return
        if not create:
            raise StoreNotFound(
                f"no jsonfile store at {self.path}: the file does not exist or is empty"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._os_error("create the directory of", exc) from exc
        with self.transaction(fresh=True):
            pass  # a missing file reads as a new document, which is written

    def _stat(self) -> os.stat_result | None:
        """What the path holds: None if nothing; a refusal if not a regular file."""
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error("read", exc) from exc
        if stat.S_ISDIR(found.st_mode):
            raise StoreError(
                f"{self.path} is a directory; a jsonfile store is one file: use a path like "
                f"jsonfile://{self.path}/queue.json"
            )
        if not stat.S_ISREG(found.st_mode):
            raise StoreError(
                f"{self.path} is not a regular file (a device, socket or pipe); "
                "choose the path of a file"
            )
        return found

    # -- reading -------------------------------------------------------------

    def load(self) -> Document:
        """The current document, without a lock (a replace is atomic)."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise self._os_error("read", exc) from exc
        return decode(data, self.path)

    @contextmanager
    def watching(self) -> Iterator[tuple[Document, Callable[[], bool]]]:
        """The current document, and a function that says whether the file
        has been replaced since.

        The file stays open meanwhile. That is what makes the check exact: a
        replaced file's inode cannot be reused while we hold it open, so a
        different inode at the path means a new version, whatever the
        resolution of the file system's timestamps.
        """
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - held open on purpose, closed below
        except OSError as exc:
            raise self._os_error("read", exc) from exc
        with handle:
            held = os.fstat(handle.fileno())
            doc = decode(handle.read(), self.path)

            def replaced() -> bool:
                try:
                    now = os.stat(self.path)
                except OSError:
                    return True  # gone: let the caller's next read report it
                return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

            yield doc, replaced

    # -- writing -------------------------------------------------------------

    @contextmanager
    def transaction(self, *, fresh: bool = False) -> Iterator[Document]:
        """Read-modify-write under the lock: all of it, or none of it.

        The body changes the document it is given and sets ``changed``; the
        new version is written when the body returns. If the body raises,
        nothing is written. ``fresh``: a missing or empty file reads as a
        new, empty store (only when opening).
        """
        self._after_fork()
        with self._thread_lock:
            fd = self._locked_fd()
            try:
                doc = self._load_for_update(fresh)
                yield doc
                if doc.changed:
                    self._replace(encode(doc))
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _load_for_update(self, fresh: bool) -> Document:
        if fresh:
            found = self._stat()
            if found is None or found.st_size == 0:
                return Document(changed=True)
        return self.load()

    def _locked_fd(self) -> int:
        """The lock descriptor, with the exclusive ``flock`` taken.

        Polls with a non-blocking ``flock`` so that a process that holds the
        lock and hangs (stopped, swapped out) gives :class:`StoreBusyError`
        after ``busy_timeout`` instead of a caller blocked forever.
        """
        fd = self._lock_descriptor()
        deadline = time.monotonic() + self.busy_timeout
        interval = FIRST_LOCK_POLL
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._os_error("lock", exc) from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StoreBusyError(
                    f"another process held the lock of {self.path} for more than "
                    f"{self.busy_timeout:g} s; retry, or raise busy_timeout in the URL "
                    "(jsonfile:///path?busy_timeout=SECONDS)"
                )
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, MAX_LOCK_POLL)

    def _after_fork(self) -> None:
        """In a forked child, drop what is shared with the parent.

        The inherited lock descriptor shares the parent's open file
        description, and with it any ``flock`` the parent holds: locking it
        here would "succeed" while the parent writes. The inherited thread
        lock may be held by a parent thread that does not exist here.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread_lock = threading.Lock()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the parent's lock stays: it holds its own copy
            self._lock_fd = None

    def _lock_descriptor(self) -> int:
        if self._lock_fd is None:
            try:
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                self._lock_fd = os.open(self.lock_path, flags, 0o666)
            except OSError as exc:
                raise self._os_error("create the lock file of", exc) from exc
        return self._lock_fd

    def _replace(self, data: bytes) -> None:
        """Write ``data`` as the new version: temp file, fsync, rename, fsync dir.

        The temporary file has a fixed name: only the lock holder writes it,
        and a stale one left by a killed writer is simply truncated. It
        takes the permissions of the file it replaces, so a store an
        operator made private stays private (a new store gets what the
        umask allows).
        """
        try:
            try:
                mode: int | None = stat.S_IMODE(os.stat(self.path).st_mode)
            except FileNotFoundError:
                mode = None
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            fd = os.open(self.tmp_path, flags, 0o666)
            try:
                if mode is not None:
                    os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp_path, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise self._os_error("write", exc) from exc

    def close(self) -> None:
        self._after_fork()
        with self._thread_lock:  # not under a transaction of another thread
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _os_error(self, action: str, exc: OSError) -> StoreError:
        """An OSError as a one-line StoreError (the OSError stays as __cause__)."""
        if isinstance(exc, FileNotFoundError) and action == "read":
            return StoreError(
                f"{self.path} disappeared while the store was open (deleted or moved); "
                "restore it, or open the store again to start an empty one"
            )
        reason = exc.strerror or str(exc)
        return StoreError(f"cannot {action} {self.path}: {reason}")


# Typed readers: a wrong type in the file is damage, reported by decode().
def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, found {value!r}")
    return value


def _time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a time in seconds, found {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)
