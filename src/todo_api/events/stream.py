"""One Server-Sent Events stream: the wire format, and the loop that turns wake-ups into
`change` events read from the feed.

Delivery is at least once: each event's `id` is the feed cursor just after its change,
so a client resuming with `Last-Event-ID` gets every later change. An object that changed
again meanwhile arrives with its current state, possibly once more than strictly needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from todo_api.db.database import Database
from todo_api.errors import AppError, DatabaseUnavailable, Gone
from todo_api.events.hub import EventHub, Subscription
from todo_api.http.problems import send_problem
from todo_api.services import changes as feed
from todo_api.services.cursors import CursorCodec

#: Feed entries read per page while catching up.
PAGE = 200
#: After a failed read, how soon the stream tries again.
RETRY_READ_SECONDS = 1.0

KEEP_ALIVE = b": keep-alive\n\n"
SHUTTING_DOWN = b": server shutting down; reconnect with Last-Event-ID\n\n"


def sse(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One event in the `text/event-stream` format (data is one line of JSON)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head.encode() + b"data: " + data + b"\n\n"


@dataclass
class StreamPlan:
    """Everything a stream needs once its opening request has been answered."""

    database: Database
    codec: CursorCodec
    user_id: str
    cursor: str
    #: Sent as `event: ready` first (a fresh start) when set.
    ready: bool
    #: Unix time at which the token that opened the stream expires, if any.
    expires_at: float | None
    keepalive: float
    retry_ms: int
    retention_days: int
    #: Turns a feed entry and its row into the JSON of a `Change` (as `GET /changes`).
    render: Callable[[Any, Any], bytes]


async def events(plan: StreamPlan, subscription: Subscription) -> AsyncIterator[bytes]:
    """The stream's bytes until the token expires, the server shuts down or the
    account is erased (its cursor then gets 410 on reconnect)."""
    hub = subscription.hub
    loop = asyncio.get_running_loop()
    yield f"retry: {plan.retry_ms}\n\n".encode()
    if plan.ready:
        yield sse("ready", orjson.dumps({"cursor": plan.cursor}), plan.cursor)
    chunks: list[bytes] | None = None
    pending = True  # read once at the start: covers commits made before subscribing
    last_sent = loop.time()
    while True:
        if hub.closing:
            yield SHUTTING_DOWN
            return
        if plan.expires_at is not None and time.time() >= plan.expires_at:
            yield sse("expired", b"{}")
            return
        if pending:
            try:
                # Shielded: a client leaving mid-read must not cut the transaction
                # short (its connection goes back to the pool cleanly either way).
                chunks, more = await asyncio.shield(asyncio.ensure_future(_read_page(plan)))
            except Gone:
                return
            except DatabaseUnavailable:
                chunks, more = None, True
            if chunks is not None:
                pending = more
                if chunks:
                    yield b"".join(chunks)
                    last_sent = loop.time()
                if not more and subscription.woken_at is not None:
                    if hub.observe_lag is not None:
                        hub.observe_lag(loop.time() - subscription.woken_at)
                    subscription.woken_at = None
        now = loop.time()
        if now - last_sent >= plan.keepalive:
            yield KEEP_ALIVE
            last_sent = now
        timeout = plan.keepalive - (now - last_sent)
        if pending:
            # The next page at once, or a failed read again shortly.
            timeout = 0.0 if chunks is not None else min(timeout, RETRY_READ_SECONDS)
        if plan.expires_at is not None:
            timeout = min(timeout, plan.expires_at - time.time())
        if await subscription.wait(timeout):
            pending = True


async def _read_page(plan: StreamPlan) -> tuple[list[bytes], bool]:
    """The next page of changes after the plan's cursor, as events (advancing the
    cursor), and whether more are waiting."""
    async with plan.database.transaction(plan.user_id) as session:
        page = await feed.read_feed(
            session, plan.user_id, plan.cursor, PAGE, plan.codec, plan.retention_days
        )
    chunks = [
        sse(
            "change",
            plan.render(entry, row),
            feed.cursor_at(plan.codec, plan.user_id, page, entry.seq),
        )
        for entry, row in page.changes
    ]
    plan.cursor = page.next_cursor
    return chunks, page.has_more


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover (makes this an async generator)


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response. The stream takes its place in the hub only when
    the response is sent (after the request's transaction has committed), so a
    response that is never sent holds no place; over a cap, the answer is a problem
    document instead, and the place is always given back, even when the client leaves
    before the first byte."""

    media_type = "text/event-stream"

    def __init__(self, plan: StreamPlan, hub: EventHub) -> None:
        super().__init__(_nothing(), headers={"X-Accel-Buffering": "no"})
        self.plan = plan
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            subscription = self.hub.subscribe(self.plan.user_id)
        except AppError as refused:
            await send_problem(
                scope,
                send,
                refused.status,
                refused.code,
                refused.detail,
                dict(refused.headers or {}),
            )
            return
        self.body_iterator = events(self.plan, subscription)
        try:
            await super().__call__(scope, receive, send)
        finally:
            subscription.close()
