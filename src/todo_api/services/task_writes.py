"""Task writes: create, replace (PUT), update (PATCH), completion, delete, clear completed.

Round trips: a create or an update is one statement, plus one to set tags, one to check
a new parent, one more when it completes a recurring task; the profile row is upserted
and the task quota checked inside the create statement itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    delete,
    func,
    select,
)

from todo_api.db.database import Session
from todo_api.db.statements import Row, cached
from todo_api.errors import Unprocessable
from todo_api.models import tasks_table as t
from todo_api.schemas.tasks import TaskCreate, TaskMove, TaskPublic, TaskUpdate
from todo_api.services import clock, recurrence
from todo_api.services.positions import check_parent, move_task
from todo_api.services.quotas import Quotas, tasks_full
from todo_api.services.tags import set_tags
from todo_api.services.task_statements import (
    TOGGLE_VALUES,
    completion_values,
    delete_statement,
    due_values,
    insert_statement,
    parameters,
    shape_of,
    successor_statement,
    update_statement,
    version_check,
    version_parameters,
)
from todo_api.services.tasks import (
    get_task,
    task_not_found,
)
from todo_api.services.versions import Precondition, stale


async def _insert(
    session: Session,
    user_id: str,
    values: Mapping[str, Any],
    due: date | datetime | None,
    quotas: Quotas,
) -> dict[str, Any]:
    """Insert one task (see `insert_statement`)."""
    columns = {**values, **due_values(due)}
    stmt = cached(insert_statement, shape_of(columns))
    params = {**parameters(columns), "user_id": user_id, "quota": quotas.tasks}
    row = (await session.execute(stmt, params)).first()
    if row is None:
        raise tasks_full(quotas.tasks)
    return {**row, "tags": [], "next_occurrence_id": None}


async def create_task(
    session: Session, user_id: str, data: TaskCreate, quotas: Quotas
) -> dict[str, Any]:
    """Create a task at the end of its list (or under its parent)."""
    list_id = data.list_id
    if data.parent_id is not None:
        parent_list = await check_parent(session, user_id, data.parent_id)
        if "list_id" in data.model_fields_set and data.list_id != parent_list:
            raise Unprocessable(
                "A subtask lives in its parent's list.", code="parent_in_other_list"
            )
        list_id = parent_list
    values = {
        "title": data.title,
        "description": data.description,
        **completion_values(data.completed),
        "priority": data.priority.rank,
        "recurrence": data.recurrence,
        "repeat_from": data.repeat_from.value,
        "remind_at": data.remind_at,
        "list_id": list_id,
        "parent_id": data.parent_id,
    }
    row = await _insert(session, user_id, values, data.due_date, quotas)
    if data.tags:
        row["tags"] = await set_tags(session, user_id, [row["id"]], data.tags, quotas.tags)
    return row


async def refused(
    session: Session, user_id: str, task_id: int, precondition: Precondition | None
) -> Exception:
    """Why a write matched no row: 404, or 412 with the current task (a read that only
    this failure path pays for)."""
    if precondition is None:
        return task_not_found(task_id)
    row = await get_task(session, user_id, task_id)  # raises 404 when it does not exist
    return stale(TaskPublic.model_validate(row).model_dump(mode="json"), row["version"], "task")


def check_current(row: Any, precondition: Precondition | None) -> None:
    """For writes that change nothing: the precondition still applies."""
    if precondition is not None and not precondition.matches(row["version"]):
        current = TaskPublic.model_validate(row).model_dump(mode="json")
        raise stale(current, row["version"], "task")


async def _write(
    session: Session,
    user_id: str,
    task_id: int,
    values: dict[str, Any],
    quotas: Quotas,
    *,
    completion: bool = False,
    precondition: Precondition | None = None,
) -> dict[str, Any]:
    """UPDATE one task; when `completion`, also report whether this completed it and, for
    a recurring task, create the next occurrence (the one place that does).

    The `If-Match` check is in the UPDATE's WHERE: of concurrent writers naming the same
    version, the first takes the row lock and raises the version (trigger); the others
    re-check the WHERE against the committed row after the lock and match nothing."""
    check = version_check(precondition)
    stmt = cached(update_statement, shape_of(values), completion, check)
    params = {
        **parameters(values),
        **version_parameters(precondition),
        "user_id": user_id,
        "task_id": task_id,
    }
    rows = (await session.execute(stmt, params)).rows
    if not rows:
        raise await refused(session, user_id, task_id, precondition)
    if not completion:
        return dict(rows[0])
    return await _completed(session, user_id, task_id, dict(rows[0]), quotas)


async def _completed(
    session: Session, user_id: str, task_id: int, row: dict[str, Any], quotas: Quotas
) -> dict[str, Any]:
    """After a completion's UPDATE: the next occurrence of a recurring task."""
    if row["completed"] and row["recurrence"] is not None:
        if not row["was_completed"]:
            row["next_occurrence_id"] = await _next_occurrence(session, user_id, row, quotas)
        elif row["next_occurrence_id"] is None:
            # We waited for a concurrent completion: the successor it created is newer
            # than this statement's snapshot. A fresh statement sees it.
            successor = select(t.c.id).where(
                t.c.user_id == user_id, t.c.previous_occurrence_id == task_id
            )
            row["next_occurrence_id"] = (await session.execute(successor)).scalar_one_or_none()
    return row


async def _next_occurrence(
    session: Session, user_id: str, done: Mapping[str, Any], quotas: Quotas
) -> int | None:
    """Create the occurrence after `done` (idempotent: at most one per task)."""
    following = recurrence.next_occurrence(
        done["recurrence"],
        due_date=done["due_date"],
        due_at=done["due_at"],
        zone_name=done["zone"],
        repeat_from=done["repeat_from"],
        completed_at=clock.now(),
        remind_at=done["remind_at"],
    )
    if following is None:
        return None
    due = following.due_date if following.due_date is not None else following.due_at
    columns = {
        "title": done["title"],
        "description": done["description"],
        "priority": done["priority"],
        "recurrence": following.recurrence,
        "repeat_from": done["repeat_from"],
        "remind_at": following.remind_at,
        "list_id": done["list_id"],
        "parent_id": done["parent_id"],
        "previous_occurrence_id": done["id"],
        **due_values(due),
    }
    stmt = cached(successor_statement, shape_of(columns))
    params = {
        **parameters(columns),
        "user_id": user_id,
        "quota": quotas.tasks,
        "done_id": done["id"],
    }
    row = (await session.execute(stmt, params)).one()
    if row["created"] is not None:
        return int(row["created"])
    if row["existing"] is not None:
        return int(row["existing"])  # completed before, un-completed, completed again
    if not row["fits"]:
        raise tasks_full(quotas.tasks)
    return None


async def update_task(
    session: Session,
    user_id: str,
    task_id: int,
    data: TaskUpdate,
    quotas: Quotas,
    precondition: Precondition | None = None,
) -> dict[str, Any]:
    """PATCH and PUT: only the fields the client sent change."""
    sent = data.model_fields_set
    placement = {name: getattr(data, name) for name in ("list_id", "parent_id") if name in sent}
    if placement:
        # The move checks the precondition under the task's row lock and raises the
        # version itself, so the UPDATE below must not check it again.
        await move_task(session, user_id, task_id, TaskMove.model_validate(placement), precondition)
        precondition = None
    values: dict[str, Any] = {}
    for name in ("title", "description", "recurrence"):
        if name in sent:
            values[name] = getattr(data, name)
    if data.priority is not None:
        values["priority"] = data.priority.rank
    if data.repeat_from is not None:
        values["repeat_from"] = data.repeat_from.value
    if "due_date" in sent:
        values.update(due_values(data.due_date))
    if "remind_at" in sent:
        values.update(remind_at=data.remind_at, reminder_dismissed_at=None)
    if data.completed is not None:
        values.update(completion_values(data.completed))
    if not values and data.tags is None:
        current = await get_task(session, user_id, task_id)
        check_current(current, precondition)
        return dict(current)
    row = await _write(
        session,
        user_id,
        task_id,
        values,
        quotas,
        completion=data.completed is not None,
        precondition=precondition,
    )
    if data.tags is not None:
        row["tags"] = await set_tags(session, user_id, [task_id], data.tags, quotas.tags)
    return row


async def set_completion(
    session: Session,
    user_id: str,
    task_id: int,
    completed: bool | None,
    quotas: Quotas,
    precondition: Precondition | None = None,
) -> dict[str, Any]:
    """Toggle completion, or set it when `completed` is given."""
    values = TOGGLE_VALUES if completed is None else completion_values(completed)
    return await _write(
        session, user_id, task_id, values, quotas, completion=True, precondition=precondition
    )


async def delete_task(
    session: Session, user_id: str, task_id: int, precondition: Precondition | None = None
) -> Row:
    """Delete the task (its subtasks go with it: foreign key cascade); returns it as it
    was."""
    stmt = cached(delete_statement, version_check(precondition))
    params = {**version_parameters(precondition), "user_id": user_id, "task_id": task_id}
    row = (await session.execute(stmt, params)).first()
    if row is None:
        raise await refused(session, user_id, task_id, precondition)
    return row


async def delete_completed(session: Session, user_id: str, list_id: int | None) -> int:
    """Delete the caller's completed tasks (in one list when `list_id` is given; 0 is the
    inbox); returns how many. Their subtasks go with them."""
    stmt = delete(t).where(t.c.user_id == user_id, t.c.completed.is_(True))
    if list_id is not None:
        stmt = stmt.where(t.c.list_id.is_(None) if list_id == 0 else t.c.list_id == list_id)
    deleted = stmt.returning(t.c.id).cte("deleted")
    return int((await session.execute(select(func.count()).select_from(deleted))).scalar_one())
