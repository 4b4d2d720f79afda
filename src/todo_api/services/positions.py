"""Manual order and hierarchy: moving a task among its siblings, to another list or under
another parent (its subtasks follow).

Positions are fractional keys (`fractional.py`), unique per list (`NULLS NOT DISTINCT`,
the inbox being list NULL) and compared bytewise. A move computes a key strictly
between the two neighbouring keys of the target list, so it writes only the moved task
and never renumbers the list. Sibling order is the order of the list's keys restricted to
the siblings, so neighbours are looked up over the whole list.

Concurrency: a move locks the task rows it involves (the task and its anchor), then the
caller's profile row (`lock_owner`), and only then reads the neighbours, in a later
statement and therefore a fresh snapshot under READ COMMITTED. Locking the two
neighbour rows alone would not be enough: a concurrent move can slide a third task
between them after our read, and both moves would compute the same key; the profile
lock serialises a user's moves instead. New tasks take keys from a sequence
(`models.POSITION_DEFAULT`) that sort after every existing key and never repeat, so
creating tasks needs no lock. The unique constraint stays as a last line of defence
(a violation is a clean 409).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, text, update

from todo_api.db.database import Session
from todo_api.db.statements import Row
from todo_api.errors import Unprocessable
from todo_api.models import POSITION_DEFAULT
from todo_api.models import profiles_table as p
from todo_api.models import tasks_table as t
from todo_api.schemas.tasks import TaskMove, TaskPublic
from todo_api.services.fractional import key_between, keys_between
from todo_api.services.tasks import COLUMNS, readable, task_not_found
from todo_api.services.versions import Precondition, stale

#: Deepest level a subtask may sit at (a top-level task is level 0).
MAX_DEPTH = 4
#: Past this length a key is respaced with its whole list (only after hundreds of moves
#: into the same gap; keeps index entries small).
MAX_KEY_LENGTH = 64


async def lock_owner(session: Session, user_id: str) -> None:
    """Serialise this user's structural changes (moves, re-parenting) until commit."""
    await session.execute(select(p.c.user_id).where(p.c.user_id == user_id).with_for_update())


def _in_list(list_id: int | None) -> Any:
    return t.c.list_id.is_(None) if list_id is None else t.c.list_id == list_id


@dataclass(frozen=True)
class Placement:
    """Where a task ends up: list, parent and position (None: the next sequence key)."""

    list_id: int | None
    parent_id: int | None
    position: str | None


def _not_found(field: str, task_id: int) -> Unprocessable:
    return Unprocessable(
        f"`{field}`: no task with id {task_id} exists for this user.", code=f"{field}_not_found"
    )


async def check_parent(
    session: Session, user_id: str, parent_id: int, task_id: int | None = None
) -> int | None:
    """Validate `parent_id` as the parent of `task_id` (None: a new task); return its list.

    Refuses a parent that is the task itself or one of its subtasks (a cycle), and one
    so deep that the task's subtree would sink below `MAX_DEPTH`.
    """
    row = (
        await session.execute(
            text(
                """
                WITH RECURSIVE chain(id, parent_id, list_id, level) AS (
                    SELECT id, parent_id, list_id, 0 FROM tasks
                    WHERE user_id = :user_id AND id = :parent_id
                    UNION ALL
                    SELECT t.id, t.parent_id, chain.list_id, chain.level + 1
                    FROM tasks t JOIN chain ON t.user_id = :user_id AND t.id = chain.parent_id
                    WHERE chain.level < :limit
                ),
                subtree(id, level) AS (
                    SELECT id, 0 FROM tasks WHERE user_id = :user_id AND id = :task_id
                    UNION ALL
                    SELECT t.id, subtree.level + 1
                    FROM tasks t JOIN subtree ON t.user_id = :user_id AND t.parent_id = subtree.id
                    WHERE subtree.level < :limit
                )
                SELECT (SELECT list_id FROM chain WHERE level = 0) AS list_id,
                       EXISTS (SELECT FROM chain) AS found,
                       (SELECT max(level) FROM chain) AS parent_depth,
                       (SELECT coalesce(max(level), 0) FROM subtree) AS height,
                       EXISTS (SELECT FROM chain WHERE id = :task_id) AS cycle
                """
            ),
            {
                "user_id": user_id,
                "parent_id": parent_id,
                "task_id": task_id,
                "limit": MAX_DEPTH + 1,
            },
        )
    ).one()
    if not row["found"]:
        raise _not_found("parent", parent_id)
    if row["cycle"]:
        raise Unprocessable(
            "A task cannot be moved under itself or one of its subtasks.", code="parent_cycle"
        )
    if row["parent_depth"] + 1 + row["height"] > MAX_DEPTH:
        raise Unprocessable(
            f"Subtasks may be nested at most {MAX_DEPTH} levels deep.", code="depth_exceeded"
        )
    list_id: int | None = row["list_id"]
    return list_id


async def _neighbour(
    session: Session, user_id: str, list_id: int | None, key: str, below: bool, skip: int
) -> str | None:
    column = t.c.position
    stmt = select(column).where(t.c.user_id == user_id, _in_list(list_id), t.c.id != skip)
    if below:
        stmt = stmt.where(column < key).order_by(column.desc())
    else:
        stmt = stmt.where(column > key).order_by(column.asc())
    value: str | None = (await session.execute(stmt.limit(1))).scalar_one_or_none()
    return value


async def _respace(session: Session, user_id: str, list_id: int | None) -> None:
    """Give every task of the list a short key, keeping their order (rare: see above)."""
    scope = and_(t.c.user_id == user_id, _in_list(list_id))
    ids = list(
        (await session.execute(select(t.c.id).where(scope).order_by(t.c.position))).scalars()
    )
    # Two steps, so no intermediate state collides with the unique constraint: `~` is
    # not a key digit, so the parked keys clash with neither old nor new ones.
    await session.execute(update(t).where(scope).values(position=t.c.position + "~"))
    await session.execute(
        text(
            "UPDATE tasks SET position = fresh.position "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:keys AS text[])) AS fresh(id, position) "
            "WHERE tasks.user_id = :user_id AND tasks.id = fresh.id"
        ),
        {"ids": ids, "keys": keys_between(None, None, len(ids)), "user_id": user_id},
    )


async def _position(
    session: Session,
    user_id: str,
    list_id: int | None,
    anchor: dict[str, Any],
    data: TaskMove,
) -> str | None:
    """A key next to `anchor` in `list_id`, or None for "the end" (a sequence key)."""
    task_id = anchor["moving"]
    for _attempt in (1, 2):
        if data.before is not None:
            high: str | None = anchor["position"]
            low = await _neighbour(session, user_id, list_id, anchor["position"], True, task_id)
        else:
            low = anchor["position"]
            high = await _neighbour(session, user_id, list_id, anchor["position"], False, task_id)
        if high is None:
            return None
        key = key_between(low, high)
        if len(key) <= MAX_KEY_LENGTH:
            return key
        await _respace(session, user_id, list_id)
        anchor = {
            **anchor,
            "position": (
                await session.execute(
                    select(t.c.position).where(t.c.user_id == user_id, t.c.id == anchor["id"])
                )
            ).scalar_one(),
        }
    return key


async def _lock_rows(session: Session, user_id: str, ids: set[int]) -> dict[int, Row]:
    """The tasks a move involves, locked in id order, with their latest committed values."""
    stmt = (
        select(t.c.id, t.c.list_id, t.c.parent_id, t.c.position, t.c.version)
        .where(t.c.user_id == user_id, t.c.id.in_(sorted(ids)))
        .order_by(t.c.id)
        .with_for_update()
    )
    return {row["id"]: row for row in (await session.execute(stmt)).mappings()}


async def _place(
    session: Session,
    user_id: str,
    task: Row,
    anchor_row: Row | None,
    data: TaskMove,
) -> Placement:
    sent = data.model_fields_set
    anchor_id = data.before if data.before is not None else data.after
    anchor = None
    if anchor_id is not None:
        if anchor_id == task["id"]:
            raise Unprocessable("A task cannot be placed next to itself.", code="anchor_is_task")
        if anchor_row is None:
            raise _not_found("before" if data.before is not None else "after", anchor_id)
        anchor = {**anchor_row, "moving": task["id"]}

    if "parent_id" in sent:
        parent_id = data.parent_id
    elif anchor is not None:
        parent_id = anchor["parent_id"]
    elif "list_id" in sent and data.list_id != task["list_id"]:
        parent_id = None
    else:
        parent_id = task["parent_id"]

    if parent_id is not None:
        if parent_id != task["parent_id"] or "parent_id" in sent:
            list_id = await check_parent(session, user_id, parent_id, task["id"])
        else:
            list_id = task["list_id"]
        if "list_id" in sent and data.list_id != list_id:
            raise Unprocessable(
                "A subtask lives in its parent's list; move the parent instead.",
                code="parent_in_other_list",
            )
    elif "list_id" in sent:
        list_id = data.list_id
    elif anchor is not None:
        list_id = anchor["list_id"]
    else:
        list_id = task["list_id"]

    if anchor is None:
        return Placement(list_id, parent_id, None)
    if (anchor["list_id"], anchor["parent_id"]) != (list_id, parent_id):
        raise Unprocessable(
            "`before`/`after` must name a sibling in the target list and parent.",
            code="anchor_not_sibling",
        )
    return Placement(list_id, parent_id, await _position(session, user_id, list_id, anchor, data))


async def move_task(
    session: Session,
    user_id: str,
    task_id: int,
    data: TaskMove,
    precondition: Precondition | None = None,
) -> Row:
    """Place the task as `data` says; subtasks follow it to another list."""
    anchor_id = data.before if data.before is not None else data.after
    rows = await _lock_rows(session, user_id, {task_id} | ({anchor_id} if anchor_id else set()))
    task = rows.get(task_id)
    if task is None:
        raise task_not_found(task_id)
    if precondition is not None and not precondition.matches(task["version"]):
        # The row is locked: the version read above is the one the move would replace.
        current = (await session.execute(readable(user_id).where(t.c.id == task_id))).mappings()
        row = current.one()
        raise stale(TaskPublic.model_validate(row).model_dump(mode="json"), row["version"], "task")
    # Task rows first, then the owner: the order in which deletes and completions (whose
    # triggers update the profile row) take their locks, so the two cannot deadlock.
    await lock_owner(session, user_id)
    anchor = rows.get(anchor_id) if anchor_id is not None and anchor_id != task_id else None
    placement = await _place(session, user_id, task, anchor, data)
    stmt = (
        update(t)
        .where(t.c.user_id == user_id, t.c.id == task_id)
        .values(
            list_id=placement.list_id,
            parent_id=placement.parent_id,
            position=placement.position if placement.position is not None else POSITION_DEFAULT,
            updated_at=func.now(),
        )
        .returning(*COLUMNS)
    )
    row = (await session.execute(stmt)).mappings().one()
    if placement.list_id != task["list_id"]:
        # After the task itself, so that they sort after it in their new list.
        await _move_subtasks(session, user_id, task_id, placement.list_id)
    return row


async def _move_subtasks(session: Session, user_id: str, task_id: int, list_id: int | None) -> None:
    """Move every subtask (any depth) to `list_id`, after that list's tasks, in order."""
    await session.execute(
        text(
            f"""
            WITH RECURSIVE subtree(id) AS (
                SELECT id FROM tasks WHERE user_id = :user_id AND parent_id = :task_id
                UNION ALL
                SELECT t.id FROM tasks t
                JOIN subtree ON t.user_id = :user_id AND t.parent_id = subtree.id
            ),
            ordered AS MATERIALIZED (
                -- One sequence value per task, drawn in the old order.
                SELECT t.id, {POSITION_DEFAULT.text} AS position
                FROM (SELECT tasks.id FROM tasks JOIN subtree USING (id)
                      WHERE tasks.user_id = :user_id ORDER BY tasks.position) AS t
            )
            UPDATE tasks SET list_id = :list_id, position = ordered.position, updated_at = now()
            FROM ordered WHERE tasks.user_id = :user_id AND tasks.id = ordered.id
            """  # noqa: S608 (only a constant is interpolated)
        ),
        {"user_id": user_id, "task_id": task_id, "list_id": list_id},
    )
