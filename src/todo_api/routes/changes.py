"""The change feed. Mounted at `/api/{user_id}` (documented) and `/api` (alias)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from todo_api.deps import ContextDep, ContextRoute
from todo_api.http.problems import error_responses
from todo_api.routes import API_PREFIX
from todo_api.schemas.changes import Change, ChangeFeed
from todo_api.schemas.lists import ListPublic
from todo_api.schemas.tags import TagPublic
from todo_api.schemas.tasks import TaskPublic
from todo_api.services import changes as service

router = APIRouter(prefix=API_PREFIX, tags=["changes"], route_class=ContextRoute)

_PUBLIC: dict[str, type[TaskPublic | ListPublic | TagPublic]] = {
    "task": TaskPublic,
    "list": ListPublic,
    "tag": TagPublic,
}


@router.get(
    "/changes",
    summary="Changes since a cursor",
    response_model=ChangeFeed,
    responses=error_responses(401, 403, 410, 422),
)
async def read_changes(
    request: Request,
    ctx: ContextDep,
    since: Annotated[
        str | None,
        Query(
            max_length=1024,
            description="The `next` of the previous call. Omitted: no changes, just a "
            "cursor for now (then list everything once).",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="Changes read per call (max 1000).")
    ] = 500,
) -> ChangeFeed:
    """Every task, list and tag created, changed or deleted since `since`, oldest change
    first, each object once with its current state (deletions as tombstones with a
    `reason`), and the cursor to continue from. Call again while `has_more`.

    Start with a call without `since` (its `next` is "now"), then list the objects;
    then follow the feed. 410 `cursor_expired` when the cursor is older than the history
    kept (`CHANGES_RETENTION_DAYS`, 30 by default) or the account was erased since:
    list everything again and restart from a fresh cursor."""
    settings = ctx.settings
    page = await service.read_feed(
        ctx.session, ctx.user_id, since, limit, ctx.codec, settings.changes_retention_days
    )
    items = []
    for entry, row in page.changes:
        obj = _PUBLIC[entry.kind].model_validate(row) if row is not None else None
        version = row["version"] if row is not None else entry.version
        items.append(
            Change.model_validate(
                {
                    "kind": entry.kind,
                    "id": entry.object_id,
                    "op": entry.op,
                    "reason": entry.reason,
                    "version": version,
                    "object": obj,
                }
            )
        )
    return ChangeFeed(changes=items, next=page.next_cursor, has_more=page.has_more)
