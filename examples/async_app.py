"""A web service that enqueues from request handlers and consumes in the same
event loop: the shape of a FastAPI / Starlette app, in plain asyncio.

With FastAPI the two pieces below plug in as they are:

    app = FastAPI(lifespan=lifespan)

    @app.post("/signup")
    async def signup(body: dict) -> dict:
        return await enqueue_welcome_email(app.state.queue, body["email"])

Here ``main()`` plays the server: it runs the lifespan, sends twenty
"requests" at once, waits until the worker has sent every email, and shuts
down. ``python examples/async_app.py [STORE_URL]`` (default: a SQLite file
in a temporary directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from localqueue.aio import AsyncPersistentQueue, async_worker

SENT: list[str] = []


async def send_email(job: dict[str, Any]) -> None:
    """The handler: an async call to a mail service (simulated)."""
    await asyncio.sleep(0.01)
    SENT.append(job["to"])


async def enqueue_welcome_email(queue: AsyncPersistentQueue, email: str) -> dict[str, Any]:
    """An endpoint's body: store the job durably, answer at once."""
    message = await queue.put({"to": email}, dedupe_key=f"welcome:{email}")
    return {"queued": message.id}


@contextlib.asynccontextmanager
async def lifespan(app: Any, store: str) -> AsyncIterator[None]:
    """Open the queue and start the worker with the app; stop both with it.

    ``handle_signals=False``: the server owns SIGTERM and runs this
    shutdown, which lets the running jobs finish.
    """
    async with AsyncPersistentQueue("emails", store=store) as queue:
        app.state.queue = queue
        worker = async_worker(queue, concurrency=4, handle_signals=False)(send_email)
        running = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            worker.stop()
            summary = await running
            print(f"worker stopped: {summary.acked} acked, {summary.released} released")


async def main(store: str) -> int:
    app = SimpleNamespace(state=SimpleNamespace())
    async with lifespan(app, store):
        emails = [f"user{n}@example.com" for n in range(20)]
        answers = await asyncio.gather(
            *(enqueue_welcome_email(app.state.queue, email) for email in emails)
        )
        print(f"{len(answers)} requests answered")
        while len(SENT) < len(emails):  # the worker runs in this same loop
            await asyncio.sleep(0.01)
    print(f"{len(set(SENT))} welcome emails sent")
    return 0 if sorted(SENT) == sorted(emails) else 1


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite://{tmp}/app.db"
        sys.exit(asyncio.run(main(url)))
