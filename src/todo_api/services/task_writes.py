"""Task writes: create, replace (PUT), update (PATCH), completion, delete, clear completed.

Round trips: a create or an update is one statement, plus one to set tags, one to check
a new parent, one more when it completes a recurring task; the profile row is upserted
and the task quota checked inside the create statement itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    SmallInteger,
    String,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import TypeEngine

from todo_api.db import RawStatement, fetch_raw
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


def _due_values(due: date | datetime | None, zone: Any) -> dict[str, Any]:
    """The three due columns for an API `due_date` value; `zone` is the profile's."""
    if due is None:
        return {"due_date": None, "due_at": None, "due_sort_at": None}
    if isinstance(due, datetime):
        return {"due_date": None, "due_at": due, "due_sort_at": due}
    return {"due_date": due, "due_at": None, "due_sort_at": start_of_day(due, zone)}


def completed_at(completed: Any) -> Any:
    """Keep `completed_at` when a task stays completed; stamp it when it becomes so."""
    return case((completed, func.coalesce(t.c.completed_at, func.now())), else_=None)


#: A toggle's values, built once (`_prebuilt_write` recognises them by identity).
_TOGGLE_VALUES: dict[str, Any] = {"completed": _TOGGLED, "completed_at": completed_at(_TOGGLED)}


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


def _typed(name: str, value: Any) -> Any:
    """A plain value as a typed bind (so NULLs and dates reach asyncpg with a type)."""
    if isinstance(value, ColumnElement):
        return value
    return literal(value, _TYPES[name]) if value is not None else null().cast(_TYPES[name])


#: The columns a create sets from its body when it has no due date.
_CREATED = (
    "title",
    "description",
    "completed",
    "priority",
    "recurrence",
    "repeat_from",
    "remind_at",
    "list_id",
    "parent_id",
)

_CREATED_KEYS = frozenset((*_CREATED, "completed_at"))


def _undated_insert() -> RawStatement:
    """`_insert` for a task without a due date, built and compiled once with every value
    as a parameter: building the statement and its cache key per request cost more CPU
    than running it. The same SQL shape as `_insert` (one statement; the quota slot in a
    CTE)."""
    slot = room(bindparam("user_id", type_=String()), "task_count", 1, bindparam("quota"))
    completed = bindparam("completed", type_=Boolean())
    columns: dict[str, Any] = {name: bindparam(name, type_=_TYPES[name]) for name in _CREATED}
    columns["completed_at"] = case((completed, func.now()), else_=null())
    columns.update(_due_values(None, slot.c.timezone))
    source = select(slot.c.user_id, *(_typed(k, v) for k, v in columns.items()))
    stmt = insert(t).from_select(["user_id", *columns], source).returning(*STORED)
    return RawStatement.compile(stmt)


_UNDATED_INSERT = _undated_insert()


async def _insert(
    session: AsyncConnection,
    user_id: str,
    values: Mapping[str, Any],
    due: date | datetime | None,
    quotas: Quotas,
) -> dict[str, Any]:
    """Insert one task after taking a slot of the task quota, in one statement."""
    if due is None and values.keys() == _CREATED_KEYS:
        params = {name: values[name] for name in _CREATED}
        rows = await fetch_raw(
            session, _UNDATED_INSERT, {**params, "user_id": user_id, "quota": quotas.tasks}
        )
        if not rows:
            raise tasks_full(quotas.tasks)
        return {**rows[0], "tags": [], "next_occurrence_id": None}
    slot = room(user_id, "task_count", 1, quotas.tasks)
    columns = {**values, **_due_values(due, slot.c.timezone)}
    names = ["user_id", *columns]
    source = select(slot.c.user_id, *(_typed(k, v) for k, v in columns.items()))
    # Only stored columns: in an INSERT's RETURNING, SQLAlchemy does not correlate the
    # TAGS/NEXT_OCCURRENCE subqueries with the new row (they would scan every task). A
    # new task has neither yet; tags are linked by the caller afterwards.
    stmt = insert(t).from_select(names, source).returning(*STORED)
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise tasks_full(quotas.tasks)
    return {**row, "tags": [], "next_occurrence_id": None}


async def create_task(
    session: AsyncConnection, user_id: str, data: TaskCreate, quotas: Quotas
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
        "completed": data.completed,
        # `_UNDATED_INSERT` derives it from `completed` the same way.
        "completed_at": func.now() if data.completed else None,
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
    session: AsyncConnection, user_id: str, task_id: int, precondition: Precondition | None
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
    session: AsyncConnection,
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
    prebuilt = _prebuilt_write(values, completion, precondition)
    if prebuilt is not None:
        params: dict[str, Any] = {"user_id": user_id, "task_id": task_id}
        if not completion:
            params.update((f"v_{name}", value) for name, value in values.items())
        rows: Sequence[Mapping[str, Any]] = await fetch_raw(session, prebuilt, params)
    else:
        where = [t.c.user_id == user_id, t.c.id == task_id]
        if precondition is not None:
            where.append(precondition.clause(t.c.version))
        stmt = _update_statement(where, values, completion, user_id)
        rows = [dict(row) for row in (await session.execute(stmt)).mappings()]
    if not rows:
        raise await refused(session, user_id, task_id, precondition)
    if not completion:
        return dict(rows[0])
    return await _completed(session, user_id, task_id, dict(rows[0]), quotas)


async def _completed(
    session: AsyncConnection, user_id: str, task_id: int, row: dict[str, Any], quotas: Quotas
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


def _update_statement(
    where: list[Any], values: Mapping[str, Any], completion: bool, user_id: Any
) -> Any:
    """The UPDATE of `_write` (with the completion's extra columns when `completion`)."""
    values = {**values, "updated_at": func.now()}
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
        .where(t.c.user_id == user_id, t.c.id == before.c.id)
        .values(**values)
        .returning(
            *COLUMNS,
            OPEN_SUBTASKS,
            before.c.was_completed,
            profile_zone(user_id).label("zone"),
        )
    )


#: UPDATE statements of `_write` built and compiled once per shape: which fields a PATCH
#: sets (each a parameter `v_<name>`), and the completion toggle.
_PREBUILT: dict[tuple[str, ...], RawStatement] = {}
_TOGGLE: tuple[str, ...] = ("<toggle>",)


def _prebuilt_write(
    values: Mapping[str, Any], completion: bool, precondition: Precondition | None
) -> RawStatement | None:
    """The prebuilt statement for this write, or None when it has no such shape: a
    precondition, a value that is an SQL expression (other than the toggle's), a column
    without a declared bind type."""
    if precondition is not None:
        return None
    if completion:
        if values is not _TOGGLE_VALUES:
            return None
        key = _TOGGLE
    else:
        if not values or any(
            name not in _TYPES or isinstance(value, ColumnElement) for name, value in values.items()
        ):
            return None
        key = tuple(values)
    stmt = _PREBUILT.get(key)
    if stmt is None:
        user_id = bindparam("user_id", type_=String())
        where = [t.c.user_id == user_id, t.c.id == bindparam("task_id", type_=BigInteger())]
        if key is _TOGGLE:
            bound: Mapping[str, Any] = _TOGGLE_VALUES
        else:
            bound = {name: bindparam(f"v_{name}", type_=_TYPES[name]) for name in key}
        stmt = RawStatement.compile(_update_statement(where, bound, key is _TOGGLE, user_id))
        _PREBUILT[key] = stmt
    return stmt


async def _next_occurrence(
    session: AsyncConnection, user_id: str, done: Mapping[str, Any], quotas: Quotas
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
    slot = room(user_id, "task_count", 1, quotas.tasks)
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
        **_due_values(due, slot.c.timezone),
    }
    source = select(slot.c.user_id, *(_typed(k, v) for k, v in columns.items()))
    created = (
        insert(t)
        .from_select(["user_id", *columns], source)
        .on_conflict_do_nothing(index_elements=[t.c.user_id, t.c.previous_occurrence_id])
        .returning(t.c.id)
        .cte("created")
    )
    tagged = copy_tags(user_id, done["id"], created)
    existing = select(t.c.id).where(
        t.c.user_id == user_id, t.c.previous_occurrence_id == done["id"]
    )
    stmt = select(
        select(created.c.id).scalar_subquery().label("created"),
        existing.scalar_subquery().label("existing"),
        exists(select(slot.c.user_id)).label("fits"),
        exists(select(tagged.c.task_id)).label("tagged"),
    )
    row = (await session.execute(stmt)).one()
    if row.created is not None:
        return int(row.created)
    if row.existing is not None:
        return int(row.existing)  # completed before, un-completed, completed again
    if not row.fits:
        raise tasks_full(quotas.tasks)
    return None


async def replace_task(
    session: AsyncConnection,
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
        "completed": data.completed,
        "completed_at": completed_at(data.completed),
    }
    return await _write(
        session, user_id, task_id, values, quotas, completion=True, precondition=precondition
    )


async def update_task(
    session: AsyncConnection,
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
        values.update(_due_values(data.due_date, profile_zone(user_id)))
    if "remind_at" in sent:
        values.update(remind_at=data.remind_at, reminder_dismissed_at=None)
    if data.completed is not None:
        values.update(completed=data.completed, completed_at=completed_at(data.completed))
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
    session: AsyncConnection,
    user_id: str,
    task_id: int,
    completed: bool | None,
    quotas: Quotas,
    precondition: Precondition | None = None,
) -> dict[str, Any]:
    """Toggle completion, or set it when `completed` is given."""
    values = (
        _TOGGLE_VALUES
        if completed is None
        else {"completed": completed, "completed_at": completed_at(completed)}
    )
    return await _write(
        session, user_id, task_id, values, quotas, completion=True, precondition=precondition
    )


async def delete_task(
    session: AsyncConnection, user_id: str, task_id: int, precondition: Precondition | None = None
) -> None:
    """Delete the task; its subtasks go with it (foreign key cascade)."""
    stmt = delete(t).where(t.c.user_id == user_id, t.c.id == task_id)
    if precondition is not None:
        stmt = stmt.where(precondition.clause(t.c.version))
    if (await session.execute(stmt.returning(t.c.id))).first() is None:
        raise await refused(session, user_id, task_id, precondition)


async def delete_completed(session: AsyncConnection, user_id: str, list_id: int | None) -> int:
    """Delete the caller's completed tasks (in one list when `list_id` is given; 0 is the
    inbox); returns how many. Their subtasks go with them."""
    stmt = delete(t).where(t.c.user_id == user_id, t.c.completed.is_(True))
    if list_id is not None:
        stmt = stmt.where(t.c.list_id.is_(None) if list_id == 0 else t.c.list_id == list_id)
    deleted = stmt.returning(t.c.id).cte("deleted")
    return int((await session.execute(select(func.count()).select_from(deleted))).scalar_one())
