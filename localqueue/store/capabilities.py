"""Optional capabilities a store may offer beyond the Store protocol: import and maintenance.

The :class:`~localqueue.store.Store` protocol stays small so that any
store can be written against it. Operations that only make sense for some
stores (taking copied messages as they are, a schema to migrate, a file to
back up or vacuum, an archive of acked messages) are separate
``runtime_checkable`` protocols: a store implements
the ones it can, and callers check with ``isinstance`` before using one. The
CLI says "store 'memory://' does not support backup" instead of failing half
way, and a new store plugin owes none of these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from localqueue.store.records import MessageRecord


@dataclass(frozen=True)
class Migration:
    """One pending schema step: the version it reaches and what it does."""

    version: int
    description: str
    statements: Sequence[str] = ()


@dataclass(frozen=True)
class SchemaStatus:
    """The schema version of the store and the steps that would bring it up to date."""

    version: int
    newest: int
    pending: Sequence[Migration] = ()


@dataclass(frozen=True)
class BackupResult:
    """A verified copy: where it is and how large."""

    path: Path
    bytes: int
    seconds: float


@dataclass(frozen=True)
class VacuumResult:
    """Sizes (main file plus write-ahead log) before and after a vacuum."""

    bytes_before: int
    bytes_after: int

    @property
    def reclaimed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


@dataclass(frozen=True)
class AckedRecord:
    """An acknowledged message kept for audit by a queue with acked retention."""

    id: int
    queue: str
    payload: bytes
    priority: int
    attempts: int
    created_at: float
    acked_at: float
    acked_by: str | None = None
    dedupe_key: str | None = None


@dataclass(frozen=True)
class StoreInfo:
    """What an operator wants to know about a store at a glance.

    ``settings`` are the ones in force (for SQLite: journal mode,
    synchronous, busy timeout, page size); ``sizes`` are in bytes;
    ``counts`` maps queue -> state -> number of messages.
    """

    url: str
    kind: str
    schema_version: int | None
    newest_schema_version: int | None
    settings: Mapping[str, object] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@runtime_checkable
class SupportsInfo(Protocol):
    def info(self) -> StoreInfo:
        """A snapshot of versions, settings, sizes and counts."""
        ...


@runtime_checkable
class SupportsMigrate(Protocol):
    def schema_status(self) -> SchemaStatus:
        """The current version and the steps a migration would run (nothing changes)."""
        ...

    def migrate(self) -> tuple[int, int]:
        """Run every pending step in one transaction; (from, to) versions.

        A store whose migration has a long part after the transaction (the
        SQLite store counting the messages of a large file) may also take a
        keyword ``progress``, a callable given ``(done, total)``; ``store
        migrate`` passes it when the signature has it and shows a bar.
        """
        ...


@runtime_checkable
class SupportsBackup(Protocol):
    def backup(self, dest: Path, *, overwrite: bool = False) -> BackupResult:
        """Write a consistent, integrity-checked copy to ``dest`` while the store is in use.

        ``dest`` appears only when the copy is complete and verified; an
        existing ``dest`` is an error unless ``overwrite``, and one that is not
        a regular file is an error even then. The copy is never readable by
        more users than the store.
        """
        ...


@runtime_checkable
class SupportsVacuum(Protocol):
    def vacuum(self) -> VacuumResult:
        """Rewrite the store compactly, giving free space back to the filesystem."""
        ...


@runtime_checkable
class SupportsAckedRetention(Protocol):
    def keep_acked(self, queue: str) -> float | None:
        """Seconds acked messages of ``queue`` are kept for audit; None when off."""
        ...

    def set_keep_acked(self, queue: str, seconds: float | None) -> None:
        """Archive acked messages of ``queue`` (``seconds`` > 0), or stop (None or 0).

        Stored in the store, so every process that acks on the queue honours it.
        """
        ...

    def list_acked(
        self, queue: str, *, after_id: int | None = None, limit: int | None = None
    ) -> list[AckedRecord]:
        """Archived acked messages in id order; page with ``after_id``."""
        ...

    def prune_acked(self, queue: str, *, older_than: float, dry_run: bool = False) -> int:
        """Delete archived messages acked at least ``older_than`` seconds ago; the count."""
        ...


@runtime_checkable
class SupportsImport(Protocol):
    """A store that can take copied messages with their ids and states."""

    def import_conflicts(self, records: Sequence[MessageRecord]) -> list[str]:
        """Why some of ``records`` could not be imported (an id that exists, a
        dedupe key that is live in the queue); empty when all can be."""
        ...

    def import_messages(self, records: Sequence[MessageRecord]) -> None:
        """Insert ``records`` as they are, all or none; new ids stay above them."""
        ...
