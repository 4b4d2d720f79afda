"""Reminder endpoints. Mounted at `/api/{user_id}` (documented) and `/api` (alias)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from todo_api.deps import ContextDep, TaskIdPath
from todo_api.http.idempotency import IdempotencyDep, IdempotentRoute
from todo_api.http.preconditions import POSTED_HEADERS, IfMatchDep, etag
from todo_api.http.problems import error_responses
from todo_api.routes import API_PREFIX
from todo_api.schemas.tasks import TaskPublic
from todo_api.schemas.values import Instant
from todo_api.services import clock
from todo_api.services import reminders as service

router = APIRouter(prefix=API_PREFIX, tags=["reminders"], route_class=IdempotentRoute)


@router.get(
    "/reminders",
    summary="Due reminders",
    response_model=list[TaskPublic],
    responses=error_responses(401, 403, 422),
)
async def due_reminders(
    ctx: ContextDep,
    until: Annotated[
        Instant | None,
        Query(
            description="RFC 3339 with offset, in the years 1900 to 2999; default: now. "
            "Reminders at or before it."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many (max 200).")] = 50,
) -> list[TaskPublic]:
    """Open tasks whose `remind_at` has come and whose reminder was not dismissed,
    soonest first: poll this to raise notifications, then dismiss each one."""
    moment: datetime = until if until is not None else clock.now()
    rows = await service.due_reminders(ctx.session, ctx.user_id, moment, limit)
    return [TaskPublic.model_validate(row) for row in rows]


@router.post(
    "/reminders/{task_id}/dismiss",
    summary="Dismiss a reminder",
    response_model=TaskPublic,
    responses={
        **error_responses(401, 403, 404, 409, 412, 422, 428),
        200: {"headers": POSTED_HEADERS},
    },
    dependencies=[IdempotencyDep],
)
async def dismiss_reminder(
    response: Response, ctx: ContextDep, task_id: TaskIdPath, precondition: IfMatchDep
) -> TaskPublic:
    """Stop reminding about this task (until `remind_at` is set again). `If-Match`
    applies as on every other write (required with `REQUIRE_IF_MATCH`)."""
    row = await service.dismiss(ctx.session, ctx.user_id, task_id, precondition)
    response.headers["ETag"] = etag(row["version"])
    return TaskPublic.model_validate(row)
