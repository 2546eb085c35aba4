"""The dashboard as an ASGI application (Starlette), on any store.

Pages: the overview of every queue (its rows refresh in place), one
queue's messages by state with paging and the CLI's filters, one message,
and a queue's dead letters grouped by error type. Actions (left out with
``read_only``): requeue dead letters (one, a selection, or every one
matching a filter) and purge, each previewed with the counts the CLI's
``--dry-run`` prints and then confirmed.

Store calls block, so they run on a small pool of threads of their own (a
networked store opens one connection per thread: a handful, not one per
request).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from localqueue.errors import LocalQueueError
from localqueue.store import MessageFilter
from localqueue_web import actions, charts, forms, pages
from localqueue_web.history import History, Sampler
from localqueue_web.security import Guard, GuardMiddleware

# Resolved: an editable install reaches this file through a link, and
# StaticFiles serves nothing through a link that leads outside its directory.
HERE = Path(__file__).resolve().parent
STORE_THREADS = 4
T = TypeVar("T")


class Dashboard:
    """What the pages share: the store, its label, the guard, the history."""

    def __init__(
        self,
        store: Any,
        *,
        label: str,
        guard: Guard,
        read_only: bool,
        history: History,
        sample_every: float | None,
        refresh_seconds: float,
    ) -> None:
        self.store = store
        self.label = label
        self.guard = guard
        self.read_only = read_only
        self.history = history
        self.sample_every = sample_every
        self.refresh_seconds = refresh_seconds
        self.previews = actions.Previews()
        # Made at each start of the app (its lifespan), so that an app can be
        # served, stopped and served again.
        self.pool: ThreadPoolExecutor | None = None
        self.sampler: Sampler | None = None
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every value a template shows is escaped
            undefined=jinja2.StrictUndefined,
        )
        self.templates = Jinja2Templates(env=env)

    def start(self) -> None:
        self.pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="localqueue-web-store")
        if self.sample_every is not None:
            self.sampler = Sampler(self.store, self.history, self.sample_every)
            self.sampler.start()

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.pool is None:
            raise RuntimeError("the dashboard is not started: serve it with its lifespan on")
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.update(
            store_label=self.label,
            read_only=self.read_only,
            csrf=self.guard.csrf_token,
            refresh_seconds=self.refresh_seconds,
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def charts_for(self, queue: str) -> tuple[charts.Chart, charts.Chart | None, charts.Chart]:
        """Waiting, throughput (None on a store without finished counts) and net change."""
        samples = self.history.series(queue)
        window = self.history.window
        return (
            charts.depth_chart(samples, window),
            charts.throughput_chart(samples, window),
            charts.change_chart(samples, window),
        )

    def overview_charts(self, queue: str) -> tuple[charts.Chart, float | None]:
        """What an overview row draws: waiting, and finished per minute over
        the last minute (None on a store without finished counts)."""
        samples = self.history.series(queue)
        return charts.depth_chart(samples, self.history.window), charts.recent_rate(samples)


def _dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


async def overview(request: Request) -> Response:
    d = _dashboard(request)
    rows = await d.call(pages.overview, d.store)
    fragment = request.query_params.get("fragment") == "rows"
    return d.render(
        request,
        "overview_rows.html" if fragment else "overview.html",
        rows=rows,
        charts={row.stats.queue: d.overview_charts(row.stats.queue) for row in rows},
    )


def _queue(values: Mapping[str, str]) -> str:
    """The queue a page or action is about: a query or form field, never a
    path segment, so that any name (one with '/', '..', '?' or '%') reaches
    exactly its own queue."""
    return forms.queue_name(values.get("name", ""))


async def queue_page(request: Request) -> Response:
    d = _dashboard(request)
    queue = _queue(request.query_params)
    chosen = forms.list_filter(request.query_params)
    stats = await d.call(d.store.stats, queue)
    now = await d.call(d.store.clock.now)
    rows, next_after = await d.call(pages.listing, d.store, queue, chosen)
    depth, throughput, change = d.charts_for(queue)
    return d.render(
        request,
        "queue.html",
        queue=queue,
        stats=stats,
        workers=pages.workers(stats, now),
        stale_after=pages.STALE_AFTER,
        rows=rows,
        chosen=chosen,
        next_after=next_after,
        depth=depth,
        throughput=throughput,
        change=change,
        states=["all", "ready", "delayed", "inflight", "dead"],
    )


async def message_page(request: Request) -> Response:
    d = _dashboard(request)
    queue = _queue(request.query_params)
    ident = forms.message_id(request.query_params.get("id", ""))
    view = await d.call(pages.message, d.store, queue, ident)
    if view is None:
        raise HTTPException(404, f"no message {ident} in queue {queue!r} (acked or purged?)")
    return d.render(request, "message.html", queue=queue, view=view)


async def dead_page(request: Request) -> Response:
    d = _dashboard(request)
    queue = _queue(request.query_params)
    groups, read, cut = await d.call(pages.dead_groups, d.store, queue)
    return d.render(
        request, "dead.html", queue=queue, groups=groups, read=read, cut=cut,
        limit=pages.GROUP_LIMIT,
    )  # fmt: skip


async def _checked_form(request: Request) -> FormData:
    form = await request.form(max_files=0, max_fields=20_000)
    if not _dashboard(request).guard.csrf_ok(form.get("csrf")):
        raise HTTPException(403, "refused: the form lacks this dashboard's CSRF token; reload")
    return form


def _values(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _confirmation(request: Request, preview: actions.Preview) -> Response:
    """The preview page: the count, the first ids, and the pinned key to confirm."""
    d = _dashboard(request)
    key = d.previews.pin(preview) if preview.ids else ""
    return d.render(
        request, "confirm.html", preview=preview, key=key, shown=preview.ids[:20],
        max_pinned=actions.MAX_PINNED,
    )  # fmt: skip


async def requeue_preview(request: Request) -> Response:
    d = _dashboard(request)
    form = await _checked_form(request)
    queue = _queue(_values(form))
    ids = forms.chosen_ids([v for v in form.getlist("id") if isinstance(v, str)])
    flt: MessageFilter | None
    if ids:
        flt = MessageFilter(ids=ids)
        described = f"the {len(ids)} selected dead letter(s)"
    elif form.get("selected"):
        # "Requeue selected" with nothing ticked must not mean "every one".
        raise forms.BadInput("no dead letter was selected: tick the ones to requeue")
    else:
        # The store's clock may ask its server now and then: off the loop too.
        now = await d.call(d.store.clock.now)
        flt, described = forms.dead_filter(_values(form), now)
    preview = await d.call(actions.preview_requeue, d.store, queue, flt, described)
    return _confirmation(request, preview)


async def purge_preview(request: Request) -> Response:
    d = _dashboard(request)
    form = await _checked_form(request)
    values = _values(form)
    queue = _queue(values)
    wanted = forms.state(values)
    older = forms.duration(values, "older_than")
    flt = None if older is None else MessageFilter(older_than=older)
    described = f"{wanted.value if wanted else 'all'} messages" + (
        f" older than {older:g}s" if older is not None else ""
    )
    preview = await d.call(actions.preview_purge, d.store, queue, wanted, flt, described)
    return _confirmation(request, preview)


async def confirm(request: Request) -> Response:
    d = _dashboard(request)
    form = await _checked_form(request)
    key = form.get("key")
    preview = d.previews.take(key) if isinstance(key, str) else None
    if preview is None:
        raise HTTPException(
            409, "this preview was already confirmed or is over ten minutes old; preview again"
        )
    done = await d.call(actions.carry_out, d.store, preview)
    return d.render(request, "done.html", preview=preview, done=done)


async def _bad_input(request: Request, exc: Exception) -> Response:
    return _error_page(request, 400, str(exc))


async def _partly_done(request: Request, exc: Exception) -> Response:
    return _error_page(request, 503, str(exc))


async def _store_error(request: Request, exc: Exception) -> Response:
    return _error_page(request, 503, f"the store refused: {exc}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_page(request, exc.status_code, str(exc.detail))


def _error_page(request: Request, status: int, text: str) -> Response:
    d = _dashboard(request)
    if request.query_params.get("fragment"):
        return HTMLResponse("", status_code=status)
    return d.render(request, "error.html", status=status, status_code=status, message=text)


def build_app(
    store: Any,
    *,
    label: str,
    read_only: bool = False,
    token: str | None = None,
    loopback_only: bool | None = None,
    sample_every: float | None = 10.0,
    refresh_seconds: float = 2.0,
    history: History | None = None,
) -> Starlette:
    """The dashboard for ``store`` (which the caller closes). ``label`` is the
    store as shown (pass it through ``redact_url``). With a ``token`` (16
    characters or more) every request must carry it; ``loopback_only``
    (by default: when there is no token) answers only requests addressed to
    this machine by name. ``sample_every`` None takes no samples (tests add
    their own to ``history``)."""
    dashboard = Dashboard(
        store,
        label=label,
        guard=Guard(
            token=token, loopback_only=token is None if loopback_only is None else loopback_only
        ),
        read_only=read_only,
        history=history or History(),
        sample_every=sample_every,
        refresh_seconds=refresh_seconds,
    )
    routes = [
        Route("/", overview),
        Route("/queue", queue_page),
        Route("/queue/dead", dead_page),
        Route("/queue/message", message_page),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if not read_only:
        routes += [
            Route("/actions/requeue", requeue_preview, methods=["POST"]),
            Route("/actions/purge", purge_preview, methods=["POST"]),
            Route("/actions/confirm", confirm, methods=["POST"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dashboard.start()
        try:
            yield
        finally:
            dashboard.stop()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            forms.BadInput: _bad_input,
            actions.PartlyDone: _partly_done,
            LocalQueueError: _store_error,
            HTTPException: _http_error,
        },
    )
    app.state.dashboard = dashboard
    app.add_middleware(GuardMiddleware, guard=dashboard.guard)
    return app
