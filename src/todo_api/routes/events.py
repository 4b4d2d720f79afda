"""Live updates over Server-Sent Events. Mounted at `/api/{user_id}` (documented) and
`/api` (alias)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status

from todo_api.db.statements import Row
from todo_api.deps import ContextDep, ContextRoute
from todo_api.events import tickets
from todo_api.events.hub import EventHub
from todo_api.events.stream import EventStreamResponse, StreamPlan
from todo_api.http.problems import error_responses
from todo_api.routes import API_PREFIX
from todo_api.routes.changes import change_of
from todo_api.schemas.events import EventTicket
from todo_api.services import changes as feed
from todo_api.services.changes import Entry

#: Feed cursors are unpadded base64url, about a hundred characters.
CURSOR_MAX = 256
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"

router = APIRouter(prefix=API_PREFIX, tags=["events"], route_class=ContextRoute)

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: `event: change` (`id`: a feed cursor, `data`: one "
        "`Change`), `event: ready` on a fresh start, `event: expired` when the token "
        "that opened the stream expires, `: keep-alive` comments.",
        # One event (OpenAPI 3.1 has no `itemSchema`: the schema is read per event).
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "enum": ["ready", "change", "expired"]},
                        "id": {"type": "string", "description": "A feed cursor."},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "description": "`change`: a `Change`; `ready`: "
                            '`{"cursor": ...}`; `expired`: `{}`.',
                        },
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
    },
}


def _render(entry: Entry, row: Row | None) -> bytes:
    return change_of(entry, row).model_dump_json().encode()


@router.post(
    "/events/tickets",
    summary="Mint a ticket for EventSource",
    status_code=status.HTTP_201_CREATED,
    response_model=EventTicket,
    responses=error_responses(401, 403),
)
async def create_event_ticket(request: Request, ctx: ContextDep) -> EventTicket:
    """A single-use ticket, valid for `EVENTS_TICKET_TTL_SECONDS` (at most 60 s, never
    past the token's own expiry), that opens one event stream on any instance:
    `new EventSource("/api/me/events?ticket=...")`. Browsers' `EventSource` cannot send
    an `Authorization` header; a JWT is never accepted in a URL."""
    minted = await tickets.mint(
        ctx.session,
        request.app.state.ticket_codec,
        ctx.principal,
        ctx.settings.events_ticket_ttl_seconds,
    )
    return EventTicket(ticket=minted.ticket, expires_at=minted.expires_at)


@router.get(
    "/events",
    summary="Live changes (Server-Sent Events)",
    status_code=status.HTTP_200_OK,
    response_class=EventStreamResponse,
    responses={**_STREAM_DOC, **error_responses(401, 403, 410, 422, 429, 503)},
)
async def stream_events(
    request: Request,
    ctx: ContextDep,
    since: Annotated[
        str | None,
        Query(
            max_length=CURSOR_MAX,
            pattern=CURSOR_PATTERN,
            description="Resume after this feed cursor (an event `id`).",
        ),
    ] = None,
    ticket: Annotated[
        str | None,
        Query(
            max_length=tickets.MAX_TICKET_LENGTH,
            pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
            description="A ticket from `POST .../events/tickets`, instead of a bearer token.",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=CURSOR_MAX,
            pattern=CURSOR_PATTERN,
            description="Sent by `EventSource` on reconnect; wins over `since`.",
        ),
    ] = None,
) -> EventStreamResponse:
    """Every change to the caller's tasks, lists and tags as it is committed, on any
    instance: one `event: change` per changed object, `data` exactly as an item of
    `GET /changes`, `id` the feed cursor after it. Resume with `Last-Event-ID` (or
    `since`): only later changes follow (at least once: an object may repeat). With
    neither, the stream starts now with `event: ready` carrying the current cursor.

    Authenticate with `Authorization: Bearer`, or with `?ticket=` for `EventSource`.
    The stream ends with `event: expired` when the token that opened it expires
    (reconnect with a fresh token or ticket, and `Last-Event-ID`). 410 `cursor_expired`
    for a cursor older than the history kept; 429 `too_many_streams` beyond
    `EVENTS_MAX_STREAMS_PER_USER` open on one server."""
    settings = ctx.settings
    start = last_event_id or since
    # Checks the cursor (410/422 before the stream starts), or takes "now".
    page = await feed.read_feed(
        ctx.session, ctx.user_id, start, 1, ctx.codec, settings.changes_retention_days
    )
    expires = tickets.token_expiry(ctx.principal)
    plan = StreamPlan(
        database=ctx.shared.database,
        codec=ctx.codec,
        user_id=ctx.user_id,
        cursor=start if start is not None else page.next_cursor,
        ready=start is None,
        expires_at=float(expires) if expires is not None else None,
        keepalive=settings.events_keepalive_seconds,
        retry_ms=settings.events_retry_ms,
        retention_days=settings.changes_retention_days,
        render=_render,
    )
    hub: EventHub = request.app.state.events
    return EventStreamResponse(plan, hub)
