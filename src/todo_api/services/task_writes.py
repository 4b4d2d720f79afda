"""Task writes: create, replace (PUT), update (PATCH), completion, delete, clear completed.

Round trips: a create or an update is one statement, plus one to set tags, one to check
a new parent, one more when it completes a recurring task; the profile row is upserted
and the task quota checked inside the create statement itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Integer,
    SmallInteger,
    String,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.types import TypeEngine

from todo_api.db.database import Session
from todo_api.db.statements import cached
from todo_api.errors import Unprocessable
from todo_api.models import tasks_table as t
from todo_api.schemas.tasks import TaskCreate, TaskMove, TaskPublic, TaskReplace, TaskUpdate
from todo_api.services import clock, recurrence
from todo_api.services.positions import check_parent, move_task
from todo_api.services.quotas import Quotas, room, tasks_full
from todo_api.services.tags import copy_tags, set_tags
from todo_api.services.tasks import (
    COLUMNS,
    STORED,
    get_task,
    profile_zone,
    start_of_day,
    task_not_found,
)
from todo_api.services.versions import Precondition, stale

#: The toggle's new `completed`.
_TOGGLED: Any = ~t.c.completed

#: Open subtasks (any depth) of the task in the enclosing UPDATE, for `/complete`.
OPEN_SUBTASKS = literal_column(
    """array(
        WITH RECURSIVE below(id, completed) AS (
            SELECT c.id, c.completed FROM tasks AS c
            WHERE c.user_id = tasks.user_id AND c.parent_id = tasks.id
            UNION ALL
            SELECT c.id, c.completed FROM tasks AS c
            JOIN below ON c.user_id = tasks.user_id AND c.parent_id = below.id
        )
        SELECT id FROM below WHERE NOT completed ORDER BY id
    )""",
    type_=ARRAY(BigInteger),
).label("open_subtask_ids")


class Derived(enum.Enum):
    """A column whose new value is an expression of the others' (not a parameter)."""

    #: `completed_at`: kept while the task stays completed, stamped when it becomes so.
    completed_at = "completed_at"
    #: `completed`: the opposite of what it was (the completion toggle).
    toggled = "toggled"
    #: `due_sort_at`: the instant the new `due_date` begins in the profile's zone.
    day_start = "day_start"


def _due_values(due: date | datetime | None) -> dict[str, Any]:
    """The three due columns for an API `due_date` value."""
    if due is None:
        return {"due_date": None, "due_at": None, "due_sort_at": None}
    if isinstance(due, datetime):
        return {"due_date": None, "due_at": due, "due_sort_at": due}
    return {"due_date": due, "due_at": None, "due_sort_at": Derived.day_start}


def completed_at(completed: Any) -> Any:
    """Keep `completed_at` when a task stays completed; stamp it when it becomes so."""
    return case((completed, func.coalesce(t.c.completed_at, func.now())), else_=None)


#: A toggle's values.
_TOGGLE_VALUES: dict[str, Any] = {
    "completed": Derived.toggled,
    "completed_at": Derived.completed_at,
}


def _completion(completed: bool) -> dict[str, Any]:
    return {"completed": completed, "completed_at": Derived.completed_at}


_TYPES: dict[str, TypeEngine[Any]] = {
    "title": String(200),
    "description": String(2000),
    "completed": Boolean(),
    "completed_at": DateTime(timezone=True),
    "priority": SmallInteger(),
    "due_date": Date(),
    "due_at": DateTime(timezone=True),
    "due_sort_at": DateTime(timezone=True),
    "recurrence": String(500),
    "repeat_from": String(10),
    "remind_at": DateTime(timezone=True),
    "list_id": BigInteger(),
    "parent_id": BigInteger(),
    "previous_occurrence_id": BigInteger(),
    "reminder_dismissed_at": DateTime(timezone=True),
}

#: A write's shape: each column it sets, with how (`None`: from the parameter `v_<name>`).
_Shape = tuple[tuple[str, "Derived | None"], ...]


def _shape(values: Mapping[str, Any]) -> _Shape:
    return tuple(
        (name, value if isinstance(value, Derived) else None) for name, value in values.items()
    )


def _parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"v_{name}": v for name, v in values.items() if not isinstance(v, Derived)}


def _column_sql(shape: _Shape, zone: Any, *, inserting: bool = False) -> dict[str, Any]:
    """The SQL each column of `shape` takes (`zone`: the profile's time zone; a new row
    has no `completed_at` to keep)."""
    names = dict(shape)
    new_completed: Any = (
        ~t.c.completed
        if names.get("completed") is Derived.toggled
        else bindparam("v_completed", type_=Boolean())
    )
    columns: dict[str, Any] = {}
    for name, derived in shape:
        if derived is None:
            columns[name] = bindparam(f"v_{name}", type_=_TYPES[name])
        elif derived is Derived.toggled:
            columns[name] = new_completed
        elif derived is Derived.completed_at:
            if inserting:
                columns[name] = case((new_completed, func.now()), else_=null())
            else:
                columns[name] = completed_at(new_completed)
        else:
            columns[name] = start_of_day(bindparam("v_due_date", type_=Date()), zone)
    return columns


_USER = bindparam("user_id", type_=String())
_TASK = bindparam("task_id", type_=BigInteger())
_VERSIONS = bindparam("versions", type_=ARRAY(Integer()))


def _version_check(precondition: Precondition | None) -> str | None:
    """How an `If-Match` shapes a statement: none, any version (`*`), or listed ones."""
    if precondition is None:
        return None
    return "any" if precondition.any_version else "listed"


def _version_parameters(precondition: Precondition | None) -> dict[str, Any]:
    if precondition is None or precondition.any_version:
        return {}
    return {"versions": list(precondition.versions)}


def _this_task(check: str | None) -> list[Any]:
    """The WHERE of a write to one task, with its `If-Match` check."""
    where = [t.c.user_id == _USER, t.c.id == _TASK]
    if check == "listed":
        where.append(t.c.version == any_(_VERSIONS))
    return where


def _insert_statement(shape: _Shape) -> Any:
    """One task's INSERT, after taking a slot of the task quota, in one statement.

    Only stored columns come back: in an INSERT's RETURNING, SQLAlchemy does not
    correlate the TAGS/NEXT_OCCURRENCE subqueries with the new row (they would scan
    every task). A new task has neither yet; tags are linked by the caller afterwards."""
    slot = room(_USER, "task_count", 1, bindparam("quota", type_=Integer()))
    columns = _column_sql(shape, slot.c.timezone, inserting=True)
    source = select(slot.c.user_id, *columns.values())
    return insert(t).from_select(["user_id", *columns], source).returning(*STORED)


async def _insert(
    session: Session,
    user_id: str,
    values: Mapping[str, Any],
    due: date | datetime | None,
    quotas: Quotas,
) -> dict[str, Any]:
    """Insert one task (see `_insert_statement`)."""
    columns = {**values, **_due_values(due)}
    stmt = cached(_insert_statement, _shape(columns))
    params = {**_parameters(columns), "user_id": user_id, "quota": quotas.tasks}
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
        **_completion(data.completed),
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
    check = _version_check(precondition)
    stmt = cached(_update_statement, _shape(values), completion, check)
    params = {
        **_parameters(values),
        **_version_parameters(precondition),
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


def _update_statement(shape: _Shape, completion: bool, check: str | None) -> Any:
    """The UPDATE of `_write` (with the completion's extra columns when `completion`)."""
    values = {**_column_sql(shape, profile_zone(_USER)), "updated_at": func.now()}
    where = _this_task(check)
    if not completion:
        return update(t).where(*where).values(**values).returning(*COLUMNS)
    # The row lock in the sub-select returns the latest committed `completed`, so of two
    # concurrent completions only one sees the transition.
    before = (
        select(t.c.id, t.c.completed.label("was_completed"))
        .where(*where)
        .with_for_update()
        .subquery("before")
    )
    return (
        update(t)
        .where(t.c.user_id == _USER, t.c.id == before.c.id)
        .values(**values)
        .returning(
            *COLUMNS,
            OPEN_SUBTASKS,
            before.c.was_completed,
            profile_zone(_USER).label("zone"),
        )
    )


def _successor_statement(shape: _Shape) -> Any:
    """Insert the next occurrence of task `done_id` (with its tags) unless it exists, in
    one statement that also reports an existing successor and whether the quota fit."""
    slot = room(_USER, "task_count", 1, bindparam("quota", type_=Integer()))
    columns = _column_sql(shape, slot.c.timezone, inserting=True)
    done_id = bindparam("done_id", type_=BigInteger())
    source = select(slot.c.user_id, *columns.values())
    created = (
        insert(t)
        .from_select(["user_id", *columns], source)
        .on_conflict_do_nothing(index_elements=[t.c.user_id, t.c.previous_occurrence_id])
        .returning(t.c.id)
        .cte("created")
    )
    tagged = copy_tags(_USER, done_id, created)
    existing = select(t.c.id).where(t.c.user_id == _USER, t.c.previous_occurrence_id == done_id)
    return select(
        select(created.c.id).scalar_subquery().label("created"),
        existing.scalar_subquery().label("existing"),
        exists(select(slot.c.user_id)).label("fits"),
        exists(select(tagged.c.task_id)).label("tagged"),
    )


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
        **_due_values(due),
    }
    stmt = cached(_successor_statement, _shape(columns))
    params = {
        **_parameters(columns),
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


async def replace_task(
    session: Session,
    user_id: str,
    task_id: int,
    data: TaskReplace,
    quotas: Quotas,
    precondition: Precondition | None = None,
) -> dict[str, Any]:
    """PUT: the Phase II fields take the given values (or their defaults); the others
    keep theirs."""
    values = {
        "title": data.title,
        "description": data.description,
        **_completion(data.completed),
    }
    return await _write(
        session, user_id, task_id, values, quotas, completion=True, precondition=precondition
    )


async def update_task(
    session: Session,
    user_id: str,
    task_id: int,
    data: TaskUpdate,
    quotas: Quotas,
    precondition: Precondition | None = None,
) -> dict[str, Any]:
    """PATCH: only the fields the client sent change."""
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
        values.update(_due_values(data.due_date))
    if "remind_at" in sent:
        values.update(remind_at=data.remind_at, reminder_dismissed_at=None)
    if data.completed is not None:
        values.update(_completion(data.completed))
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
    values = _TOGGLE_VALUES if completed is None else _completion(completed)
    return await _write(
        session, user_id, task_id, values, quotas, completion=True, precondition=precondition
    )


async def delete_task(
    session: Session, user_id: str, task_id: int, precondition: Precondition | None = None
) -> None:
    """Delete the task; its subtasks go with it (foreign key cascade)."""
    stmt = cached(_delete_statement, _version_check(precondition))
    params = {**_version_parameters(precondition), "user_id": user_id, "task_id": task_id}
    if (await session.execute(stmt, params)).first() is None:
        raise await refused(session, user_id, task_id, precondition)


def _delete_statement(check: str | None) -> Any:
    return delete(t).where(*_this_task(check)).returning(t.c.id)


async def delete_completed(session: Session, user_id: str, list_id: int | None) -> int:
    """Delete the caller's completed tasks (in one list when `list_id` is given; 0 is the
    inbox); returns how many. Their subtasks go with them."""
    stmt = delete(t).where(t.c.user_id == user_id, t.c.completed.is_(True))
    if list_id is not None:
        stmt = stmt.where(t.c.list_id.is_(None) if list_id == 0 else t.c.list_id == list_id)
    deleted = stmt.returning(t.c.id).cte("deleted")
    return int((await session.execute(select(func.count()).select_from(deleted))).scalar_one())
