"""Conformance harness for localqueue stores.

Two ways to use it:

* ``pytest --pyargs localqueue_harness --localqueue-store URL`` runs the
  contract (the store-level and the queue-level classes) against the store
  that URL opens, with no code written;
* subclass :class:`StoreContract` and :class:`QueueContract` in your own
  tests and override their one fixture, ``open_store``.
"""

from localqueue_harness.contract import StoreContract, StoreOpener
from localqueue_harness.queue_contract import QueueContract
from localqueue_harness.state_machine import StoreStateMachine, machine_for

__all__ = ["QueueContract", "StoreContract", "StoreOpener", "StoreStateMachine", "machine_for"]
