"""docs/stores.md quotes the example store; every quote must still be in the code.

MkDocs here has no snippet includes, so the tutorial copies excerpts. A code
block whose first line is ``# examples/store_plugin/<file>`` claims to be a
verbatim excerpt of that file; this test holds it to that, so the tutorial
cannot drift from the store it teaches.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "stores.md"
BLOCK = re.compile(r"^```\w*\n(# (examples/store_plugin/\S+)\n)(.*?)^```", re.MULTILINE | re.DOTALL)


def quotes() -> list[tuple[str, str]]:
    if not DOC.exists():
        pytest.skip("docs/stores.md is not beside this checkout")
    return [(match[1], match[2]) for match in BLOCK.findall(DOC.read_text())]


def test_the_tutorial_quotes_the_example() -> None:
    quoted = {path for path, _ in quotes()}
    assert len(quotes()) >= 8, "the tutorial walks through the store's code"
    assert {
        "examples/store_plugin/pyproject.toml",
        "examples/store_plugin/localqueue_jsonstore/store.py",
        "examples/store_plugin/localqueue_jsonstore/jsonfile.py",
        "examples/store_plugin/localqueue_jsonstore/plugin.py",
    } <= quoted


def test_every_quote_is_still_in_its_file() -> None:
    stale = [
        f"{path}:\n{excerpt}"
        for path, excerpt in quotes()
        if excerpt not in (ROOT / path).read_text()
    ]
    assert not stale, "docs/stores.md quotes code that changed; update the quote:\n" + "\n".join(
        stale
    )
