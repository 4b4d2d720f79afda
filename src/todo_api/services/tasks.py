"""Task rules and queries. Every statement is scoped to the caller's user id."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, and_, case, delete, false, func, insert, select, true, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from todo_api.errors import NotFound, Unprocessable
from todo_api.models import tasks_table as t
from todo_api.schemas.tasks import (
    SortOrder,
    TaskCreate,
    TaskReplace,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)
from todo_api.services.profiles import ensure_profile

#: The columns a task response needs, in one place.
_COLUMNS = (
    t.c.id,
    t.c.user_id,
    t.c.title,
    t.c.description,
    t.c.completed,
    t.c.completed_at,
    t.c.created_at,
    t.c.updated_at,
)


def readable(user_id: str) -> Select[Any]:
    """The starting point of every task query: the caller's tasks and nobody else's."""
    return select(*_COLUMNS).where(t.c.user_id == user_id)


def task_not_found(task_id: int) -> NotFound:
    return NotFound(f"No task with id {task_id} exists for this user.", code="task_not_found")


@dataclass(frozen=True)
class ListQuery:
    """What the list endpoint was asked for."""

    status: TaskStatus
    sort: TaskSort
    order: SortOrder
    limit: int
    cursor: str | None


@dataclass(frozen=True)
class TaskPage:
    rows: Sequence[RowMapping]
    next_cursor: str | None


class CursorCodec:
    """Opaque keyset cursors, signed so that a tampered one is refused.

    A cursor names the last row of a page by its sort key and id, and records the
    sort and filters it was made for: reusing it with other parameters is an error.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:12]

    def encode(self, binding: list[str], key: list[Any]) -> str:
        payload = orjson.dumps([binding, key])
        token = base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=")
        return token.decode()

    def decode(self, cursor: str, binding: list[str]) -> list[Any]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise _bad_cursor() from None
        payload, mac = raw[:-12], raw[-12:]
        if len(raw) <= 12 or not hmac.compare_digest(mac, self._mac(payload)):
            raise _bad_cursor()
        stored_binding, key = orjson.loads(payload)
        if stored_binding != binding:
            raise Unprocessable(
                "This cursor was issued for a different sort or filter; "
                "start again from the first page.",
                code="cursor_mismatch",
            )
        if not isinstance(key, list):
            raise _bad_cursor()
        return key


def _bad_cursor() -> Unprocessable:
    return Unprocessable("The cursor is not one this server issued.", code="cursor_invalid")


def _sort_column(sort: TaskSort) -> Any:
    return t.c.created_at if sort is TaskSort.created else t.c.title


def _cursor_value(sort: TaskSort, row: RowMapping) -> Any:
    if sort is TaskSort.created:
        value: datetime = row["created_at"]
        return value.isoformat()
    return row["title"]


def _parse_cursor_value(sort: TaskSort, value: Any) -> Any:
    if not isinstance(value, str):
        raise _bad_cursor()
    if sort is TaskSort.created:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise _bad_cursor() from None
    return value


async def list_tasks(
    session: AsyncSession, user_id: str, query: ListQuery, codec: CursorCodec
) -> TaskPage:
    """One page of the caller's tasks, keyset-paginated with `id` as the tie-break."""
    column = _sort_column(query.sort)
    descending = query.order is SortOrder.desc
    binding = [query.sort.value, query.order.value, query.status.value]

    stmt = readable(user_id)
    if query.status is TaskStatus.pending:
        stmt = stmt.where(t.c.completed == false())
    elif query.status is TaskStatus.completed:
        stmt = stmt.where(t.c.completed == true())
    if query.cursor is not None:
        key = codec.decode(query.cursor, binding)
        if len(key) != 2 or not isinstance(key[1], int):
            raise _bad_cursor()
        after = tuple_(column, t.c.id)
        bound = tuple_(_parse_cursor_value(query.sort, key[0]), key[1])
        stmt = stmt.where(after < bound if descending else after > bound)
    if descending:
        stmt = stmt.order_by(column.desc(), t.c.id.desc())
    else:
        stmt = stmt.order_by(column.asc(), t.c.id.asc())
    rows = (await session.execute(stmt.limit(query.limit + 1))).mappings().all()

    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        next_cursor = codec.encode(binding, [_cursor_value(query.sort, last), last["id"]])
    return TaskPage(rows=rows, next_cursor=next_cursor)


async def get_task(session: AsyncSession, user_id: str, task_id: int) -> RowMapping:
    stmt = readable(user_id).where(t.c.id == task_id)
    row: RowMapping | None = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise task_not_found(task_id)
    return row


async def create_task(session: AsyncSession, user_id: str, data: TaskCreate) -> RowMapping:
    await ensure_profile(session, user_id)
    stmt = (
        insert(t)
        .values(
            user_id=user_id,
            title=data.title,
            description=data.description,
            completed=data.completed,
            completed_at=func.now() if data.completed else None,
        )
        .returning(*_COLUMNS)
    )
    return (await session.execute(stmt)).mappings().one()


def _completed_at(completed: Any) -> Any:
    """Keep `completed_at` when a task stays completed; stamp it when it becomes so."""
    return case((completed, func.coalesce(t.c.completed_at, func.now())), else_=None)


async def _update(
    session: AsyncSession, user_id: str, task_id: int, values: dict[str, Any]
) -> RowMapping:
    stmt = (
        update(t)
        .where(and_(t.c.user_id == user_id, t.c.id == task_id))
        .values(**values, updated_at=func.now())
        .returning(*_COLUMNS)
    )
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise task_not_found(task_id)
    return row


async def replace_task(
    session: AsyncSession, user_id: str, task_id: int, data: TaskReplace
) -> RowMapping:
    """PUT: the Phase II fields take the given values (or their defaults)."""
    return await _update(
        session,
        user_id,
        task_id,
        {
            "title": data.title,
            "description": data.description,
            "completed": data.completed,
            "completed_at": _completed_at(data.completed),
        },
    )


async def update_task(
    session: AsyncSession, user_id: str, task_id: int, data: TaskUpdate
) -> RowMapping:
    """PATCH: only the fields the client sent change."""
    sent = data.model_dump(exclude_unset=True)
    if not sent:
        return await get_task(session, user_id, task_id)
    if "completed" in sent:
        sent["completed_at"] = _completed_at(sent["completed"])
    return await _update(session, user_id, task_id, sent)


async def set_completion(
    session: AsyncSession, user_id: str, task_id: int, completed: bool | None
) -> RowMapping:
    """Toggle completion, or set it when `completed` is given."""
    target: Any = ~t.c.completed if completed is None else completed
    return await _update(
        session,
        user_id,
        task_id,
        {"completed": target, "completed_at": _completed_at(target)},
    )


async def delete_task(session: AsyncSession, user_id: str, task_id: int) -> None:
    stmt = delete(t).where(and_(t.c.user_id == user_id, t.c.id == task_id)).returning(t.c.id)
    if (await session.execute(stmt)).first() is None:
        raise task_not_found(task_id)
