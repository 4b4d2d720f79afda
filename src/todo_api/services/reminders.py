"""Reminders: the open tasks whose `remind_at` has come, until the client dismisses them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, false, func, true, update

from todo_api.db.database import Session
from todo_api.db.statements import Row
from todo_api.models import tasks_table as t
from todo_api.services.task_writes import refused
from todo_api.services.tasks import COLUMNS, readable
from todo_api.services.versions import Precondition


def due_reminders_statement(user_id: str, until: datetime, limit: int) -> Select[Any]:
    """Open tasks with a reminder at or before `until` that was not dismissed, soonest
    first. The conditions match the partial index `ix_tasks_due_reminders`."""
    return (
        readable(user_id)
        .where(
            t.c.remind_at.is_not(None),
            t.c.reminder_dismissed_at.is_(None),
            t.c.completed == false(),
            t.c.remind_at <= until,
        )
        .order_by(t.c.remind_at, t.c.id)
        .limit(limit)
    )


async def due_reminders(session: Session, user_id: str, until: datetime, limit: int) -> list[Row]:
    """The due reminders (see `due_reminders_statement`), in one query."""
    stmt = due_reminders_statement(user_id, until, limit)
    return list((await session.execute(stmt)).mappings().all())


async def dismiss(
    session: Session, user_id: str, task_id: int, precondition: Precondition | None = None
) -> Row:
    """Dismiss the task's reminder (it stays on the task; setting `remind_at` again
    re-arms it). With `precondition`, only while the task is at one of its versions."""
    stmt = (
        update(t)
        .where(t.c.user_id == user_id, t.c.id == task_id)
        .where(precondition.clause(t.c.version) if precondition is not None else true())
        .values(
            reminder_dismissed_at=func.coalesce(t.c.reminder_dismissed_at, func.now()),
            updated_at=func.now(),
        )
        .returning(*COLUMNS)
    )
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise await refused(session, user_id, task_id, precondition)
    return row
