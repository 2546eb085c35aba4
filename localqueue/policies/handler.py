"""The built-in handler call: run the user's handler, nothing more.

Registered ``trylast`` so plugins can wrap it (``@hookimpl(wrapper=True)``)
to time, trace or limit every job.
"""

from __future__ import annotations

from localqueue.hookspecs import hookimpl
from localqueue.worker.hook_types import HandlerCall


@hookimpl(trylast=True)
def localqueue_call_handler(call: HandlerCall) -> object:
    return call.call()
