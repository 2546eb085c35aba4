"""Conformance harness for localqueue stores.

Two ways to use it:

* ``pytest --pyargs localqueue_harness --localqueue-store URL`` runs the
  contract against the store that URL opens, with no code written;
* subclass :class:`StoreContract` in your own tests and override the
  ``open_store`` fixture.
"""

from localqueue_harness.contract import StoreContract, StoreOpener
from localqueue_harness.state_machine import StoreStateMachine, machine_for

__all__ = ["StoreContract", "StoreOpener", "StoreStateMachine", "machine_for"]
