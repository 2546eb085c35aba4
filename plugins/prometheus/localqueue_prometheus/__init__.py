"""Prometheus metrics for localqueue (distribution ``localqueue-prometheus``).

Counters and histograms come from the ``localqueue_event`` hook in every
process that has this plugin installed; gauges are read from the store at
scrape time. See docs/observability.md for names, labels and alert rules.

Nothing is imported here: the plugin is loaded by every process that uses
localqueue, and prometheus_client is imported only once it is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localqueue_prometheus.collector import StoreCollector
    from localqueue_prometheus.exporter import build_registry, serve, write_textfile

__all__ = ["StoreCollector", "build_registry", "serve", "write_textfile"]


def __getattr__(name: str) -> Any:
    if name == "StoreCollector":
        from localqueue_prometheus import collector

        return collector.StoreCollector
    if name in ("build_registry", "serve", "write_textfile"):
        from localqueue_prometheus import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'localqueue_prometheus' has no attribute {name!r}")
