"""Task reads: the columns a task response needs, and get-one. Lists: `task_list.py`;
writes: `task_writes.py`.

Every statement is scoped to the caller's user id, and every read is one statement:
the tags (names) and the next occurrence's id come from correlated subqueries in the
same SELECT, never from a query per task.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Date,
    DateTime,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from todo_api.db.database import Session
from todo_api.db.statements import Row, Statement
from todo_api.errors import NotFound
from todo_api.models import profiles_table as p
from todo_api.models import tags_table as tg
from todo_api.models import task_tags_table as tt
from todo_api.models import tasks_table as t

_next = t.alias("next_task")

#: Tag names of the task in the enclosing statement, sorted case-insensitively.
TAGS = func.array(
    select(tg.c.name)
    .join(tt, and_(tt.c.user_id == tg.c.user_id, tt.c.tag_id == tg.c.id))
    .where(tt.c.user_id == t.c.user_id, tt.c.task_id == t.c.id)
    .order_by(tg.c.name_key)
    .correlate(t)
    .scalar_subquery(),
    type_=ARRAY(Text),
).label("tags")

#: The occurrence created when this one was completed (unique, so at most one).
NEXT_OCCURRENCE = (
    select(_next.c.id)
    .where(_next.c.user_id == t.c.user_id, _next.c.previous_occurrence_id == t.c.id)
    .correlate(t)
    .scalar_subquery()
    .label("next_occurrence_id")
)

#: The stored columns a task response needs (plus `due_sort_at`, the cursor's key).
STORED = (
    t.c.id,
    t.c.user_id,
    t.c.title,
    t.c.description,
    t.c.completed,
    t.c.completed_at,
    t.c.created_at,
    t.c.updated_at,
    t.c.priority,
    t.c.due_date,
    t.c.due_at,
    t.c.due_sort_at,
    t.c.recurrence,
    t.c.repeat_from,
    t.c.previous_occurrence_id,
    t.c.remind_at,
    t.c.reminder_dismissed_at,
    t.c.list_id,
    t.c.parent_id,
    t.c.position,
    t.c.version,
)
#: Everything a task response needs, for SELECT and for UPDATE ... RETURNING.
COLUMNS = (*STORED, TAGS, NEXT_OCCURRENCE)


def readable(user_id: str | BindParameter[str]) -> Select[Any]:
    """The starting point of every task query: the caller's tasks and nobody else's."""
    return select(*COLUMNS).where(t.c.user_id == user_id)


def task_not_found(task_id: int) -> NotFound:
    return NotFound(f"No task with id {task_id} exists for this user.", code="task_not_found")


def profile_zone(user_id: str | BindParameter[str]) -> Any:
    """The caller's IANA time zone as a scalar subquery (UTC before the first write)."""
    zone = select(p.c.timezone).where(p.c.user_id == user_id).scalar_subquery()
    return func.coalesce(zone, literal("UTC"))


def start_of_day(day: date | Any, zone: Any) -> Any:
    """The instant `day` begins in `zone` (DST-correct: PostgreSQL's time zone rules)."""
    value = literal(day, Date) if isinstance(day, date) else day
    return func.timezone(zone, cast(value, DateTime(timezone=False)))


_USER = bindparam("user_id", type_=Text)
_GET_TASK = Statement(readable(_USER).where(t.c.id == bindparam("task_id", type_=BigInteger)))


async def get_task(session: Session, user_id: str, task_id: int) -> Row:
    row = (await session.execute(_GET_TASK, {"user_id": user_id, "task_id": task_id})).first()
    if row is None:
        raise task_not_found(task_id)
    return row
