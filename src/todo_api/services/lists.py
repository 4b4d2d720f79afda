"""Lists (projects): CRUD. A task belongs to one list or to none (the inbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert

from todo_api.db.database import Session
from todo_api.db.statements import Row, Statement
from todo_api.errors import Conflict, NotFound, Unprocessable
from todo_api.models import POSITION_DEFAULT
from todo_api.models import lists_table as lst
from todo_api.models import tasks_table as t
from todo_api.schemas.lists import ListCreate, ListPublic, ListTasksOnDelete, ListUpdate
from todo_api.services.positions import lock_owner
from todo_api.services.quotas import Quotas, lists_full, room
from todo_api.services.versions import Precondition, stale

LIST_COLUMNS = (lst.c.id, lst.c.name, lst.c.created_at, lst.c.updated_at, lst.c.version)


#: Names the reason the change feed records for the next statements of the transaction.
_REASON = Statement(text("SELECT set_config('app.change_reason', :reason, true)"))


def list_not_found(list_id: int) -> NotFound:
    return NotFound(f"No list with id {list_id} exists for this user.", code="list_not_found")


async def list_lists(session: Session, user_id: str) -> list[Row]:
    """The caller's lists, oldest first."""
    stmt = (
        select(*LIST_COLUMNS).where(lst.c.user_id == user_id).order_by(lst.c.created_at, lst.c.id)
    )
    return list((await session.execute(stmt)).mappings().all())


async def get_list(session: Session, user_id: str, list_id: int) -> Row:
    stmt = select(*LIST_COLUMNS).where(lst.c.user_id == user_id, lst.c.id == list_id)
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise list_not_found(list_id)
    return row


async def create_list(session: Session, user_id: str, data: ListCreate, quotas: Quotas) -> Row:
    """Create a list (and the profile, on a first write) unless the quota is reached."""
    slot = room(user_id, "list_count", 1, quotas.lists)
    stmt = (
        insert(lst)
        .from_select(
            ["user_id", "name"], select(slot.c.user_id, literal(data.name, lst.c.name.type))
        )
        .returning(*LIST_COLUMNS)
    )
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise lists_full(quotas.lists)
    return row


async def _refused(
    session: Session, user_id: str, list_id: int, precondition: Precondition | None
) -> Exception:
    """404, or 412 with the current list, for a write that matched no row."""
    if precondition is None:
        return list_not_found(list_id)
    row = await get_list(session, user_id, list_id)
    return stale(ListPublic.model_validate(row).model_dump(mode="json"), row["version"], "list")


async def update_list(
    session: Session,
    user_id: str,
    list_id: int,
    data: ListUpdate,
    precondition: Precondition | None = None,
) -> Row:
    stmt = (
        update(lst)
        .where(lst.c.user_id == user_id, lst.c.id == list_id)
        .values(name=data.name, updated_at=func.now())
        .returning(*LIST_COLUMNS)
    )
    if precondition is not None:
        stmt = stmt.where(precondition.clause(lst.c.version))
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise await _refused(session, user_id, list_id, precondition)
    return row


async def delete_list(
    session: Session,
    user_id: str,
    list_id: int,
    on_tasks: ListTasksOnDelete,
    move_to: int | None,
    precondition: Precondition | None = None,
) -> Row:
    """Delete a list; returns it as it was. With tasks in it: refused (409) unless
    `on_tasks` says to delete them (with their subtasks) or to move them to `move_to`
    (None: the inbox).

    The precondition is checked by the final DELETE; when it fails, the tasks deleted or
    moved before it are restored with the rest of the transaction."""
    if on_tasks is ListTasksOnDelete.move:
        if move_to == list_id:
            raise Unprocessable("Move the tasks to another list.", code="move_to_same_list")
        await _move_tasks(session, user_id, list_id, move_to)
    elif on_tasks is ListTasksOnDelete.delete:
        # The change feed reports these deletions as `list_deleted` (migration 0003).
        await session.execute(_REASON, {"reason": "list_deleted"})
        await session.execute(delete(t).where(t.c.user_id == user_id, t.c.list_id == list_id))
        await session.execute(_REASON, {"reason": ""})
    stmt = delete(lst).where(lst.c.user_id == user_id, lst.c.id == list_id)
    if precondition is not None:
        stmt = stmt.where(precondition.clause(lst.c.version))
    if on_tasks is ListTasksOnDelete.refuse:
        # The foreign key also refuses (a task added concurrently): same 409.
        has_tasks = exists().where(t.c.user_id == user_id, t.c.list_id == list_id)
        deleted = await _deleted(session, user_id, stmt.where(~has_tasks))
        if deleted is None:
            current = await get_list(session, user_id, list_id)
            if precondition is not None and not precondition.matches(current["version"]):
                raise await _refused(session, user_id, list_id, precondition)
            raise Conflict(
                "The list still has tasks: pass `tasks=delete` or `tasks=move`.",
                code="list_not_empty",
            )
        return deleted
    deleted = await _deleted(session, user_id, stmt)
    if deleted is None:
        raise await _refused(session, user_id, list_id, precondition)
    return deleted


async def _deleted(session: Session, user_id: str, stmt: Any) -> Row | None:
    """Run the DELETE `stmt` of one list; the list as it was, or None when none matched
    (the SELECT reads the snapshot the DELETE started from)."""
    gone = stmt.returning(lst.c.id).cte("gone")
    deleted = select(*LIST_COLUMNS).where(lst.c.user_id == user_id, lst.c.id.in_(select(gone.c.id)))
    return (await session.execute(deleted)).first()


async def _move_tasks(session: Session, user_id: str, list_id: int, move_to: int | None) -> None:
    """Move every task of `list_id` to the end of `move_to`, keeping their order."""
    await get_list(session, user_id, list_id)
    # Task rows, then the owner: the lock order of every other write (see positions.py).
    await session.execute(
        select(t.c.id)
        .where(t.c.user_id == user_id, t.c.list_id == list_id)
        .order_by(t.c.id)
        .with_for_update()
    )
    await lock_owner(session, user_id)
    if move_to is not None:
        target = select(lst.c.id).where(lst.c.user_id == user_id, lst.c.id == move_to)
        if (await session.execute(target)).first() is None:
            raise Unprocessable(
                f"`move_to`: no list with id {move_to} exists for this user.",
                code="list_not_found",
            )
    # Fresh sequence keys, assigned in the old order, sort after every task of the target.
    await session.execute(
        text(
            f"""
            WITH ordered AS MATERIALIZED (
                -- One sequence value per task, drawn in the old order.
                SELECT id, {POSITION_DEFAULT.text} AS position
                FROM (SELECT id FROM tasks WHERE user_id = :user_id AND list_id = :list_id
                      ORDER BY position) AS old_order
            )
            UPDATE tasks SET list_id = :move_to, position = ordered.position, updated_at = now()
            FROM ordered
            WHERE tasks.user_id = :user_id AND tasks.id = ordered.id
            """  # noqa: S608 (only a constant is interpolated)
        ),
        {"user_id": user_id, "list_id": list_id, "move_to": move_to},
    )
