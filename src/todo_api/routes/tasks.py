"""Task endpoints. Mounted at `/api/{user_id}` (documented) and `/api` (short alias)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Request, Response, status

from todo_api.deps import CursorCodecDep, PrincipalDep, SessionDep, TaskIdPath
from todo_api.errors import error_responses
from todo_api.schemas.tasks import (
    SortOrder,
    TaskCompletion,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)
from todo_api.services import tasks as service

router = APIRouter(tags=["tasks"])

MAX_PAGE = 200
_ONE = error_responses(401, 403, 404, 422)


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
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    codec: CursorCodecDep,
    status_filter: Annotated[
        TaskStatus, Query(alias="status", description="Which tasks to include.")
    ] = TaskStatus.all,
    sort: Annotated[TaskSort, Query(description="Sort key; `id` breaks ties.")] = TaskSort.created,
    order: Annotated[
        SortOrder | None,
        Query(description="Default: `desc` for `created` (newest first), `asc` for `title`."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size (max 200).")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=1024, description='From the previous page\'s `Link: rel="next"`.'),
    ] = None,
) -> list[TaskPublic]:
    """The caller's tasks as a plain JSON array, one page at a time.

    Pagination is keyset-based: follow the `Link` header's `rel="next"` URL until it
    is absent. A cursor is bound to the sort and filters it was issued for.
    """
    effective_order = order or (SortOrder.desc if sort is TaskSort.created else SortOrder.asc)
    page = await service.list_tasks(
        session,
        principal.user_id,
        service.ListQuery(status_filter, sort, effective_order, limit, cursor),
        codec,
    )
    if page.next_cursor is not None:
        # `request.url` carries the decoded path: encode it again so that any user id
        # (a space, `%`, `>`, non-Latin-1 letters) still makes a valid header.
        here = request.url.replace(path=quote(request.scope["path"]))
        next_url = here.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return [TaskPublic.model_validate(row) for row in page.rows]


@router.post(
    "/tasks",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses={
        **error_responses(401, 403, 413, 422),
        201: {
            "headers": {
                "Location": {"description": "The new task's URL.", "schema": {"type": "string"}}
            }
        },
    },
)
async def create_task(
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    data: TaskCreate,
) -> TaskPublic:
    """Create a task for the caller. Answers 201 with the task and its `Location`."""
    row = await service.create_task(session, principal.user_id, data)
    # Path parameters arrive decoded; encode them again so any user id makes a valid URL.
    params = {name: quote(value, safe="") for name, value in request.path_params.items()}
    location = request.url_for("get_task", task_id=row["id"], **params)
    response.headers["Location"] = str(location)
    return TaskPublic.model_validate(row)


@router.get("/tasks/{task_id}", summary="Get a task", response_model=TaskPublic, responses=_ONE)
async def get_task(principal: PrincipalDep, session: SessionDep, task_id: TaskIdPath) -> TaskPublic:
    """One of the caller's tasks. Another user's task id is 404, as if it did not exist."""
    return TaskPublic.model_validate(await service.get_task(session, principal.user_id, task_id))


@router.put("/tasks/{task_id}", summary="Replace a task", response_model=TaskPublic, responses=_ONE)
async def replace_task(
    principal: PrincipalDep, session: SessionDep, task_id: TaskIdPath, data: TaskReplace
) -> TaskPublic:
    """Replace `title`, `description` and `completed`; omitted ones take their defaults."""
    row = await service.replace_task(session, principal.user_id, task_id, data)
    return TaskPublic.model_validate(row)


@router.patch(
    "/tasks/{task_id}", summary="Update a task", response_model=TaskPublic, responses=_ONE
)
async def update_task(
    principal: PrincipalDep, session: SessionDep, task_id: TaskIdPath, data: TaskUpdate
) -> TaskPublic:
    """Change only the fields sent."""
    row = await service.update_task(session, principal.user_id, task_id, data)
    return TaskPublic.model_validate(row)


@router.delete(
    "/tasks/{task_id}",
    summary="Delete a task",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_task(principal: PrincipalDep, session: SessionDep, task_id: TaskIdPath) -> None:
    """Delete the task for good."""
    await service.delete_task(session, principal.user_id, task_id)


@router.patch(
    "/tasks/{task_id}/complete",
    summary="Toggle or set completion",
    response_model=TaskPublic,
    responses=_ONE,
)
async def complete_task(
    principal: PrincipalDep,
    session: SessionDep,
    task_id: TaskIdPath,
    data: Annotated[TaskCompletion | None, Body()] = None,
) -> TaskPublic:
    """Without a body (or without `completed`) flip completion; with
    `{"completed": true|false}` set it. `completed_at` follows."""
    completed = data.completed if data is not None else None
    row = await service.set_completion(session, principal.user_id, task_id, completed)
    return TaskPublic.model_validate(row)
