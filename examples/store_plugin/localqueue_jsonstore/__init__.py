"""localqueue-example-store: a complete store plugin, small enough to read in one sitting.

Every queue lives in one JSON file (``jsonfile:///path/to/queue.json``),
rewritten atomically under a file lock by each operation. It keeps the whole
delivery contract and passes the conformance harness, but every operation
reads and writes the whole file: a teaching store for small queues, not for
throughput. docs/stores.md builds it step by step.
"""

from __future__ import annotations

from localqueue_jsonstore.plugin import open_existing_jsonfile_store, open_jsonfile_store
from localqueue_jsonstore.store import JsonFileStore

__all__ = ["JsonFileStore", "open_existing_jsonfile_store", "open_jsonfile_store"]
