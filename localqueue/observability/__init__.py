"""Observability: the events a queue and its workers emit, and who hears them.

* :mod:`~localqueue.observability.events`: the frozen event types (public);
* :mod:`~localqueue.observability.observers`: finds the ``localqueue_event``
  observers among the plugins and calls them, never letting one fail an
  operation;
* :mod:`~localqueue.observability.event_log`: the built-in observer that
  writes each event as one JSON line;
* ``queue_events`` / ``worker_events``: build the events of queue and worker
  operations (internal; called only when someone listens).
"""
