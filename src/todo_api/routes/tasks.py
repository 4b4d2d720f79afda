"""Task endpoints. Mounted at `/api/{user_id}` (documented) and `/api` (short alias)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status

from todo_api.deps import ContextDep, TaskIdPath
from todo_api.http.idempotency import IdempotencyDep, IdempotentRoute
from todo_api.http.preconditions import (
    ETAG_HEADER,
    NOT_MODIFIED,
    POSTED_HEADERS,
    REPLAYED_HEADER,
    IfMatchDep,
    IfNoneMatchHeader,
    etag,
    not_modified,
)
from todo_api.http.prefer import PreferMinimalDep, deleted_responses, minimal_response
from todo_api.http.problems import error_responses
from todo_api.http.responses import task_response, tasks_response
from todo_api.routes import API_PREFIX, here, object_url, spelled
from todo_api.schemas.batch import BatchRequest, BatchResponse
from todo_api.schemas.common import MAX_ID
from todo_api.schemas.task_query import TaskListParams
from todo_api.schemas.tasks import (
    ClearableStatus,
    DeletedCount,
    TaskCompleted,
    TaskCompletion,
    TaskCreate,
    TaskMove,
    TaskPublic,
    TaskUpdate,
)
from todo_api.services import batch as batch_service
from todo_api.services import positions, task_list, task_writes
from todo_api.services import tasks as service

router = APIRouter(prefix=API_PREFIX, tags=["tasks"], route_class=IdempotentRoute)

MAX_PAGE = 200
_ONE: dict[int | str, dict[str, Any]] = {
    **error_responses(401, 403, 404, 422),
    **NOT_MODIFIED,
    200: {"headers": ETAG_HEADER},
}
#: Conditional writes: 412 when `If-Match` names another version, 428 without it when
#: REQUIRE_IF_MATCH is on.
_WRITE_ONE: dict[int | str, dict[str, Any]] = {
    **error_responses(401, 403, 404, 409, 412, 422, 428),
    200: {"headers": ETAG_HEADER},
}


@router.get(
    "/tasks",
    summary="List tasks",
    response_model=list[TaskPublic],
    responses={
        **error_responses(401, 403, 422),
        200: {
            "headers": {
                "Link": {
                    "description": 'RFC 8288 `<...>; rel="next"` when another page exists.',
                    "schema": {"type": "string"},
                }
            }
        },
    },
)
async def list_tasks(
    request: Request, ctx: ContextDep, params: Annotated[TaskListParams, Query()]
) -> Response:
    """The caller's tasks as a plain JSON array, one page at a time.

    Pagination is keyset-based: follow the `Link` header's `rel="next"` URL until it
    is absent. A cursor is bound to the sort, the filters and the user it was issued
    for. `offset`/`skip` or `page` + `page_size` page by position instead (up to
    10,000 tasks in; a task added meanwhile shifts the pages). `sort=position` is the
    manual order: meaningful among siblings (combine `list_id` and `parent_id`), and
    within a list it keeps every sibling group in order.
    """
    query = task_list.ListQuery.from_params(params)
    page = await task_list.list_tasks(ctx.session, ctx.user_id, query, ctx.codec)
    return page_response(request, page)


def page_response(request: Request, page: task_list.TaskPage) -> Response:
    """A page of tasks, with the `Link` to the next one when there is one."""
    if page.next_cursor is None:
        return tasks_response(page.rows)
    # The next page by its cursor: an offset would contradict it.
    after = here(request).remove_query_params(["offset", "skip", "page"])
    next_url = spelled(request, after.include_query_params(cursor=page.next_cursor))
    return tasks_response(page.rows, headers={"Link": f'<{next_url}>; rel="next"'})


@router.post(
    "/tasks",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses={
        **error_responses(401, 403, 409, 413, 422),
        201: {
            "headers": {
                "Location": {"description": "The new task's URL.", "schema": {"type": "string"}},
                **POSTED_HEADERS,
            }
        },
    },
    dependencies=[IdempotencyDep],
)
async def create_task(
    request: Request,
    ctx: ContextDep,
    data: TaskCreate,
) -> Response:
    """Create a task for the caller, at the end of its list (or of its parent's subtasks).
    Answers 201 with the task, its `Location` and `ETag`; 409 `quota_tasks`/`quota_tags`
    when the account is full; 422 `list_not_found`/`parent_not_found` for ids the caller
    does not own. With `Idempotency-Key`, a retry gets this same response again."""
    row = await task_writes.create_task(ctx.session, ctx.user_id, data, ctx.quotas)
    return created_response(request, row)


def created_response(request: Request, row: Mapping[str, Any]) -> Response:
    """201 with the new task, its `Location` and `ETag`."""
    location = object_url(request, "get_task", task_id=row["id"])
    headers = {"Location": location, "ETag": etag(row["version"])}
    return task_response(row, status_code=status.HTTP_201_CREATED, headers=headers)


@router.delete(
    "/tasks",
    summary="Clear completed tasks",
    response_model=DeletedCount,
    responses=error_responses(401, 403, 422),
)
async def clear_completed(
    ctx: ContextDep,
    status_filter: Annotated[
        ClearableStatus,
        Query(alias="status", description="Required, and only `completed` is accepted."),
    ],
    list_id: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Only in this list; `0`: the inbox.")
    ] = None,
) -> DeletedCount:
    """Delete every completed task (with its subtasks). `status=completed` is required so
    that a bare `DELETE /tasks` can never empty an account."""
    deleted = await task_writes.delete_completed(ctx.session, ctx.user_id, list_id)
    return DeletedCount(deleted=deleted)


@router.post(
    "/tasks/batch",
    summary="Apply up to 100 changes atomically",
    response_model=BatchResponse,
    responses={
        **error_responses(401, 403, 404, 409, 412, 413, 422, 428),
        200: {"headers": REPLAYED_HEADER},
    },
    dependencies=[IdempotencyDep],
)
async def apply_batch(
    request: Request,
    ctx: ContextDep,
    data: BatchRequest,
) -> BatchResponse:
    """Create, update, complete and delete tasks in one transaction: all or nothing.

    Each result carries the status the operation would have had on its own. When one
    fails, nothing is applied and the error (with the status of that failure) names the
    operation in `index`. `if_version` on an operation works like `If-Match` (412 with
    the task in `current`)."""
    require = ctx.settings.require_if_match
    results = await batch_service.apply_batch(ctx.session, ctx.user_id, data, ctx.quotas, require)
    return BatchResponse(results=results)


@router.get("/tasks/{task_id}", summary="Get a task", response_model=TaskPublic, responses=_ONE)
async def get_task(
    ctx: ContextDep,
    task_id: TaskIdPath,
    if_none_match: IfNoneMatchHeader = None,
) -> Response:
    """One of the caller's tasks, with its `ETag`. Another user's task id is 404, as if it
    did not exist. 304 (no body) when `If-None-Match` names the current version."""
    row = await service.get_task(ctx.session, ctx.user_id, task_id)
    unchanged = not_modified(if_none_match, row["version"])
    if unchanged is not None:
        return unchanged
    return task_response(row, headers={"ETag": etag(row["version"])})


@router.put(
    "/tasks/{task_id}",
    summary="Update a task (PUT)",
    response_model=TaskPublic,
    responses=_WRITE_ONE,
)
async def put_task(
    ctx: ContextDep,
    task_id: TaskIdPath,
    data: TaskUpdate,
    precondition: IfMatchDep,
) -> Response:
    """The same update as PATCH, for clients that send PUT (as the Phase II spec's do):
    every field optional, omitted fields keep their values, `null` clears a clearable
    one. `If-Match`: only if the task is at that version."""
    row = await task_writes.update_task(
        ctx.session, ctx.user_id, task_id, data, ctx.quotas, precondition
    )
    return task_response(row, headers={"ETag": etag(row["version"])})


@router.patch(
    "/tasks/{task_id}", summary="Update a task", response_model=TaskPublic, responses=_WRITE_ONE
)
async def update_task(
    ctx: ContextDep,
    task_id: TaskIdPath,
    data: TaskUpdate,
    precondition: IfMatchDep,
) -> Response:
    """Change only the fields sent (PUT does the same): `null` clears a clearable field.
    `tags` replaces the whole set; `list_id`/`parent_id` move the task to the end of
    that list or parent (subtasks follow). `If-Match`: only if the task is at that
    version (else 412 with the current task in `current`)."""
    row = await task_writes.update_task(
        ctx.session, ctx.user_id, task_id, data, ctx.quotas, precondition
    )
    return task_response(row, headers={"ETag": etag(row["version"])})


@router.delete(
    "/tasks/{task_id}",
    summary="Delete a task",
    response_model=TaskPublic,
    responses={**error_responses(401, 403, 404, 412, 422, 428), **deleted_responses(TaskPublic)},
)
async def delete_task(
    ctx: ContextDep, task_id: TaskIdPath, precondition: IfMatchDep, minimal: PreferMinimalDep
) -> Response:
    """Delete the task for good, with its subtasks; answers 200 with the task as it was
    (204 without a body with `Prefer: return=minimal`). `If-Match`: only if the task is
    at that version."""
    row = await task_writes.delete_task(ctx.session, ctx.user_id, task_id, precondition)
    return minimal_response() if minimal else task_response(row)


@router.patch(
    "/tasks/{task_id}/complete",
    summary="Toggle or set completion",
    response_model=TaskCompleted,
    responses=_WRITE_ONE,
)
async def complete_task(
    ctx: ContextDep,
    task_id: TaskIdPath,
    precondition: IfMatchDep,
    data: Annotated[TaskCompletion | None, Body()] = None,
) -> Response:
    """Without a body (or without `completed`) flip completion; with
    `{"completed": true|false}` set it. `completed_at` follows.

    Completing an occurrence of a recurring task creates the next one
    (`next_occurrence_id`); `open_subtask_ids` lists the subtasks still open."""
    completed = data.completed if data is not None else None
    row = await task_writes.set_completion(
        ctx.session, ctx.user_id, task_id, completed, ctx.quotas, precondition
    )
    return task_response(row, headers={"ETag": etag(row["version"])}, completion=True)


@router.post(
    "/tasks/{task_id}/move",
    summary="Reorder or move a task",
    response_model=TaskPublic,
    responses={**_WRITE_ONE, 200: {"headers": POSTED_HEADERS}},
    dependencies=[IdempotencyDep],
)
async def move_task(
    response: Response,
    ctx: ContextDep,
    task_id: TaskIdPath,
    data: TaskMove,
    precondition: IfMatchDep,
) -> TaskPublic:
    """Place the task `before` or `after` a sibling, and/or in another list (`list_id`,
    null: the inbox) or under another parent (`parent_id`, null: top level). Without an
    anchor it goes to the end. Only the moved task's position changes; subtasks follow
    it to another list."""
    row = await positions.move_task(ctx.session, ctx.user_id, task_id, data, precondition)
    response.headers["ETag"] = etag(row["version"])
    return TaskPublic.model_validate(row)
