"""Conformance harness for localqueue stores.

Two ways to use it:

* ``pytest --pyargs localqueue_harness --localqueue-store URL`` runs the
  contract (the store-level and the queue-level classes) against the store
  that URL opens, with no code written;
* subclass :class:`StoreContract` and :class:`QueueContract` in your own
  tests and override their one fixture, ``open_store``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localqueue_harness.async_contract import AsyncQueueContract
    from localqueue_harness.contract import StoreContract, StoreOpener
    from localqueue_harness.queue_contract import QueueContract
    from localqueue_harness.state_machine import StoreStateMachine, machine_for

# Imported on first use: the ``localqueue`` CLI loads this package's entry
# point (``harness run``) on every call, and pytest and hypothesis would
# double the start-up time of every ``localqueue`` command.
_LAZY = {
    "AsyncQueueContract": "localqueue_harness.async_contract",
    "StoreContract": "localqueue_harness.contract",
    "StoreOpener": "localqueue_harness.contract",
    "QueueContract": "localqueue_harness.queue_contract",
    "StoreStateMachine": "localqueue_harness.state_machine",
    "machine_for": "localqueue_harness.state_machine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AsyncQueueContract",
    "QueueContract",
    "StoreContract",
    "StoreOpener",
    "StoreStateMachine",
    "machine_for",
]
