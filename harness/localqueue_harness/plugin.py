"""The pytest plugin (entry point ``pytest11``): the ``--localqueue-store`` option."""

from __future__ import annotations

import pytest

OPTION = "--localqueue-store"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("localqueue-harness")
    group.addoption(
        OPTION,
        metavar="URL",
        default=None,
        help="store URL to run the localqueue contract against "
        "(pytest --pyargs localqueue_harness --localqueue-store URL)",
    )
