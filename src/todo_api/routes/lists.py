"""List (project) endpoints. Mounted at `/api/{user_id}` (documented) and `/api` (alias)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from todo_api.deps import ContextDep, ListIdPath
from todo_api.http.idempotency import IdempotencyDep, IdempotentRoute
from todo_api.http.preconditions import (
    ETAG_HEADER,
    NOT_MODIFIED,
    POSTED_HEADERS,
    IfMatchDep,
    IfNoneMatchHeader,
    etag,
    not_modified,
)
from todo_api.http.prefer import PreferMinimalDep, deleted_responses, minimal_response
from todo_api.http.problems import error_responses
from todo_api.routes import API_PREFIX, object_url
from todo_api.schemas.common import MAX_ID
from todo_api.schemas.lists import ListCreate, ListPublic, ListTasksOnDelete, ListUpdate
from todo_api.services import lists as service

router = APIRouter(prefix=API_PREFIX, tags=["lists"], route_class=IdempotentRoute)


@router.get(
    "/lists",
    summary="List the lists",
    response_model=list[ListPublic],
    responses=error_responses(401, 403),
)
async def list_lists(ctx: ContextDep) -> list[ListPublic]:
    """Every list of the caller, oldest first (at most `MAX_LISTS_PER_USER`, so no paging).
    Tasks without a list are in the inbox (`GET /tasks?list_id=0`)."""
    rows = await service.list_lists(ctx.session, ctx.user_id)
    return [ListPublic.model_validate(row) for row in rows]


@router.post(
    "/lists",
    summary="Create a list",
    status_code=status.HTTP_201_CREATED,
    response_model=ListPublic,
    responses={
        **error_responses(401, 403, 409, 413, 422),
        201: {
            "headers": {
                "Location": {"description": "The new list's URL.", "schema": {"type": "string"}},
                **POSTED_HEADERS,
            }
        },
    },
    dependencies=[IdempotencyDep],
)
async def create_list(
    request: Request,
    response: Response,
    ctx: ContextDep,
    data: ListCreate,
) -> ListPublic:
    """Create a list. 409 `quota_lists` when the account has the maximum already."""
    row = await service.create_list(ctx.session, ctx.user_id, data, ctx.quotas)
    response.headers["Location"] = object_url(request, "get_list", list_id=row["id"])
    response.headers["ETag"] = etag(row["version"])
    return ListPublic.model_validate(row)


@router.get(
    "/lists/{list_id}",
    summary="Get a list",
    response_model=ListPublic,
    responses={
        **error_responses(401, 403, 404, 422),
        **NOT_MODIFIED,
        200: {"headers": ETAG_HEADER},
    },
)
async def get_list(
    response: Response,
    ctx: ContextDep,
    list_id: ListIdPath,
    if_none_match: IfNoneMatchHeader = None,
) -> Any:
    """One of the caller's lists, with its `ETag`; another user's list id is 404. 304
    when `If-None-Match` names the current version."""
    row = await service.get_list(ctx.session, ctx.user_id, list_id)
    unchanged = not_modified(if_none_match, row["version"])
    if unchanged is not None:
        return unchanged
    response.headers["ETag"] = etag(row["version"])
    return ListPublic.model_validate(row)


@router.patch(
    "/lists/{list_id}",
    summary="Rename a list",
    response_model=ListPublic,
    responses={**error_responses(401, 403, 404, 412, 422, 428), 200: {"headers": ETAG_HEADER}},
)
async def update_list(
    response: Response,
    ctx: ContextDep,
    list_id: ListIdPath,
    data: ListUpdate,
    precondition: IfMatchDep,
) -> ListPublic:
    """Rename the list. `If-Match`: only if the list is at that version."""
    row = await service.update_list(ctx.session, ctx.user_id, list_id, data, precondition)
    response.headers["ETag"] = etag(row["version"])
    return ListPublic.model_validate(row)


@router.delete(
    "/lists/{list_id}",
    summary="Delete a list",
    response_model=ListPublic,
    responses={
        **error_responses(401, 403, 404, 409, 412, 422, 428),
        **deleted_responses(ListPublic),
    },
)
async def delete_list(
    ctx: ContextDep,
    list_id: ListIdPath,
    precondition: IfMatchDep,
    minimal: PreferMinimalDep,
    tasks: Annotated[
        ListTasksOnDelete,
        Query(
            description="With tasks in the list: `refuse` (409 `list_not_empty`), `delete` "
            "them (and their subtasks), or `move` them to `move_to`."
        ),
    ] = ListTasksOnDelete.refuse,
    move_to: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_ID,
            description="With `tasks=move`: the list to move them to (omitted: the inbox).",
        ),
    ] = None,
) -> Response | ListPublic:
    """Delete the list. An empty list just goes; a list with tasks needs `tasks=delete`
    or `tasks=move` (moved tasks keep their order, after the target's tasks). Answers
    200 with the list as it was (204 with `Prefer: return=minimal`)."""
    row = await service.delete_list(ctx.session, ctx.user_id, list_id, tasks, move_to, precondition)
    return minimal_response() if minimal else ListPublic.model_validate(row)
