"""Shared fixtures of the harness's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localqueue.plugins import reset_plugin_manager


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the user's store or plugin settings, or leaks its own."""
    monkeypatch.delenv("LOCALQUEUE_STORE", raising=False)
    monkeypatch.delenv("LOCALQUEUE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("LOCALQUEUE_PLUGINS", raising=False)
    monkeypatch.delenv("LOCALQUEUE_LOG_EVENTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    reset_plugin_manager()
    yield
    reset_plugin_manager()
