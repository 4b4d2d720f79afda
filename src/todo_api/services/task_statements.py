"""The statements behind task writes, built once per shape with every value a parameter.

A write's shape is the columns it sets and how: from a parameter `v_<name>`, or derived
(`Derived`) from the other new values. `task_writes.py` decides what to write; this
module turns that into SQL, compiled once per shape (`db.statements.cached`).
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

from todo_api.models import tasks_table as t
from todo_api.services.quotas import room
from todo_api.services.tags import copy_tags
from todo_api.services.tasks import COLUMNS, STORED, profile_zone, start_of_day
from todo_api.services.versions import Precondition

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
    #: The parameter `v_<name>` is a wall-clock time (a naive datetime: the client sent
    #: no offset), in the profile's zone. PostgreSQL resolves it: a time in a DST gap
    #: moves forward by the gap, an ambiguous one takes standard time.
    local = "local"


def _how(value: Any) -> Derived | None:
    if isinstance(value, Derived):
        return value
    if isinstance(value, datetime) and value.tzinfo is None:
        return Derived.local
    return None


def due_values(due: date | datetime | None) -> dict[str, Any]:
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
TOGGLE_VALUES: dict[str, Any] = {
    "completed": Derived.toggled,
    "completed_at": Derived.completed_at,
}


def completion_values(completed: bool) -> dict[str, Any]:
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
Shape = tuple[tuple[str, "Derived | None"], ...]


def shape_of(values: Mapping[str, Any]) -> Shape:
    return tuple((name, _how(value)) for name, value in values.items())


def parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"v_{name}": v for name, v in values.items() if not isinstance(v, Derived)}


def _column_sql(shape: Shape, zone: Any, *, inserting: bool = False) -> dict[str, Any]:
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
        elif derived is Derived.local:
            columns[name] = func.timezone(zone, bindparam(f"v_{name}", type_=DateTime()))
        else:
            columns[name] = start_of_day(bindparam("v_due_date", type_=Date()), zone)
    return columns


_USER = bindparam("user_id", type_=String())
_TASK = bindparam("task_id", type_=BigInteger())
_VERSIONS = bindparam("versions", type_=ARRAY(Integer()))


def version_check(precondition: Precondition | None) -> str | None:
    """How an `If-Match` shapes a statement: none, any version (`*`), or listed ones."""
    if precondition is None:
        return None
    return "any" if precondition.any_version else "listed"


def version_parameters(precondition: Precondition | None) -> dict[str, Any]:
    if precondition is None or precondition.any_version:
        return {}
    return {"versions": list(precondition.versions)}


def _this_task(check: str | None) -> list[Any]:
    """The WHERE of a write to one task, with its `If-Match` check."""
    where = [t.c.user_id == _USER, t.c.id == _TASK]
    if check == "listed":
        where.append(t.c.version == any_(_VERSIONS))
    return where


def insert_statement(shape: Shape) -> Any:
    """One task's INSERT, after taking a slot of the task quota, in one statement.

    Only stored columns come back: in an INSERT's RETURNING, SQLAlchemy does not
    correlate the TAGS/NEXT_OCCURRENCE subqueries with the new row (they would scan
    every task). A new task has neither yet; tags are linked by the caller afterwards."""
    slot = room(_USER, "task_count", 1, bindparam("quota", type_=Integer()))
    columns = _column_sql(shape, slot.c.timezone, inserting=True)
    source = select(slot.c.user_id, *columns.values())
    return insert(t).from_select(["user_id", *columns], source).returning(*STORED)


def update_statement(shape: Shape, completion: bool, check: str | None) -> Any:
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


def successor_statement(shape: Shape) -> Any:
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


def delete_statement(check: str | None) -> Any:
    """Delete one task, returning it as it was: the SELECT reads the snapshot the DELETE
    started from (a data-modifying CTE's effects are not visible to its statement)."""
    gone = delete(t).where(*_this_task(check)).returning(t.c.id).cte("gone")
    return select(*COLUMNS).where(t.c.user_id == _USER, t.c.id.in_(select(gone.c.id)))
