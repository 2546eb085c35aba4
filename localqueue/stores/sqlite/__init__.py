"""The reference store: one SQLite file shared by the threads and processes of a machine.

* :mod:`~localqueue.stores.sqlite.store`: :class:`SQLiteStore`, the protocol;
* :mod:`~localqueue.stores.sqlite.statements`: the SQL it runs;
* :mod:`~localqueue.stores.sqlite.opening`: URL parsing, the openers, the scheme;
* :mod:`~localqueue.stores.sqlite.schema`: versions, migrations, refusing
  foreign or newer files untouched;
* :mod:`~localqueue.stores.sqlite.connections`: one connection per thread,
  transactions, driver errors turned into store errors;
* :mod:`~localqueue.stores.sqlite.maintenance`, ``retention``, ``importing``:
  the optional capabilities (info, backup, vacuum, migrate; the acked archive;
  ``store copy``);
* :mod:`~localqueue.stores.sqlite.faults`: named crash points for tests.

This package is the ``sqlite`` built-in plugin: it registers the
``sqlite://`` scheme through ``localqueue_store_schemes``.
"""

from __future__ import annotations

from localqueue.stores.sqlite.opening import (
    localqueue_store_schemes,
    open_existing_sqlite_store,
    open_sqlite_store,
    open_sqlite_store_as_found,
    parse_sqlite_url,
)
from localqueue.stores.sqlite.store import SQLiteStore

__all__ = [
    "SQLiteStore",
    "localqueue_store_schemes",
    "open_existing_sqlite_store",
    "open_sqlite_store",
    "open_sqlite_store_as_found",
    "parse_sqlite_url",
]
