"""PersistentQueue's own checks that involve no store under test: opening
a store it owns from a URL or a path, and closing it.

Every transition and error of the delivery contract is checked through the
queue API by ``localqueue_harness.QueueContract`` (harness/), on the memory
and SQLite stores in harness/tests and on PostgreSQL in plugins/postgres/tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localqueue import PersistentQueue


def test_context_manager_closes_owned_store(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/owned.sqlite3"
    with PersistentQueue("q", store=url) as q:
        q.put(1)
    with pytest.raises(Exception, match="closed"):
        q.put(2)
    with PersistentQueue("q", store=url) as again:
        assert again.qsize() == 1


def test_store_argument_is_checked(tmp_path: Path) -> None:
    with PersistentQueue("q", store=tmp_path / "by-path.db") as q:
        q.put(1)
        assert q.store.url.endswith("by-path.db")
    with pytest.raises(ValueError, match="store must be"):
        PersistentQueue("q", store=42)  # type: ignore[arg-type]
