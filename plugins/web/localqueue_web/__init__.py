"""localqueue-web: a dashboard for localqueue in the browser.

``localqueue web serve`` serves it; :func:`localqueue_web.app.build_app`
builds the ASGI application for any store, for serving it another way.
See docs/web.md.
"""

__version__ = "0.1.0"
