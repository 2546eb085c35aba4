"""Put the metrics together for one store, and serve or write them."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.multiprocess import MultiProcessCollector

from localqueue.store import Store
from localqueue_prometheus import metrics
from localqueue_prometheus.collector import StoreCollector
from localqueue_prometheus.plugin import MULTIPROC_ENV, multiproc_problem


def build_registry(store: Store, queues: Sequence[str] | None = None) -> CollectorRegistry:
    """A registry with the store's gauges and the event counters.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the counters and histograms are
    those of every process that wrote to that directory, added up; without
    it, those of this process only.
    """
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(store, queues))
    path = os.environ.get(MULTIPROC_ENV)
    if path is not None:
        problem = multiproc_problem(writing=False)  # the exporter only reads it
        if problem is not None:
            raise ValueError(problem)
        # Untyped in prometheus_client; it registers itself in the registry.
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        for metric in metrics.ALL:
            registry.register(metric)
    return registry


def serve(
    store: Store, host: str, port: int, queues: Sequence[str] | None = None
) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on ``host:port`` from a daemon thread (port 0: any free port,
    see ``server.server_port``). Stop it with ``server.shutdown()``."""
    registry = build_registry(store, queues)
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def write_textfile(path: str, store: Store, queues: Sequence[str] | None = None) -> None:
    """Write the metrics in the text format, for node_exporter's textfile
    collector: to a temporary file beside ``path``, then renamed, so the
    collector never reads half a file."""
    registry = build_registry(store, queues)
    try:
        write_to_textfile(path, registry)
    except OSError as exc:
        # Name the user's file, not prometheus_client's temporary one.
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
