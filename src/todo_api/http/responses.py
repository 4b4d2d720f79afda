"""Task responses serialised once, straight from database rows to JSON bytes.

A route that returns `TaskPublic.model_validate(row)` pays for a Pydantic model per
task, a Python call per timestamp (`_utc_z`) and then FastAPI's own serialisation of the
result; on a 20-task page that is a large share of the request's CPU. These helpers
produce the same JSON document in one `orjson.dumps` call (`OPT_UTC_Z` writes the UTC
timestamps asyncpg returns with `Z`, as `UtcDateTime` does). A route keeps
`response_model=TaskPublic` (or `list[TaskPublic]`) in its decorator, so the OpenAPI
schema is unchanged, and returns the `Response` these build: FastAPI sends a returned
`Response` as is. `tests/test_responses.py` holds the output to `TaskPublic`'s.

Rows must come from the task statements of `services/tasks.py` (the stored columns,
`tags`, `next_occurrence_id`; `due_at` and the priority rank as stored).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.responses import Response

from todo_api.schemas.values import Priority

_OPTIONS = orjson.OPT_UTC_Z
#: Priority names by stored rank.
_PRIORITIES = tuple(Priority.from_rank(rank).value for rank in range(4))


def task_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A task row as `TaskPublic` renders it, fields in the same order."""
    due_at = row["due_at"]
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "title": row["title"],
        "description": row["description"],
        "completed": row["completed"],
        "completed_at": row["completed_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "priority": _PRIORITIES[row["priority"]],
        "tags": row["tags"],
        "due_date": due_at if due_at is not None else row["due_date"],
        "recurrence": row["recurrence"],
        "repeat_from": row["repeat_from"],
        "previous_occurrence_id": row["previous_occurrence_id"],
        "next_occurrence_id": row["next_occurrence_id"],
        "remind_at": row["remind_at"],
        "reminder_dismissed_at": row["reminder_dismissed_at"],
        "list_id": row["list_id"],
        "parent_id": row["parent_id"],
        "position": row["position"],
        "version": row["version"],
    }


def completed_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row of `/complete` as `TaskCompleted` renders it."""
    task = task_dict(row)
    task["open_subtask_ids"] = list(row.get("open_subtask_ids") or ())
    return task


class JSONBytesResponse(Response):
    """A response whose body is already JSON bytes (no second serialisation)."""

    media_type = "application/json"


def task_response(
    row: Mapping[Any, Any],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    completion: bool = False,
) -> Response:
    """One task (`TaskPublic`, or `TaskCompleted` when `completion`)."""
    body = completed_dict(row) if completion else task_dict(row)
    return JSONBytesResponse(orjson.dumps(body, option=_OPTIONS), status_code, headers)


def tasks_response(
    rows: Iterable[Mapping[Any, Any]], *, headers: Mapping[str, str] | None = None
) -> Response:
    """A page of tasks: a plain JSON array (`list[TaskPublic]`)."""
    body = orjson.dumps([task_dict(row) for row in rows], option=_OPTIONS)
    return JSONBytesResponse(body, 200, headers)
