"""Tags: setting a task's tags in one statement, and the tag list, rename and delete.

A tag name is unique per user without regard to case (`tags.name_key`); the first
spelling used is kept as the name until the tag is renamed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert

from todo_api.db.database import Session
from todo_api.db.statements import Row, Statement
from todo_api.errors import NotFound
from todo_api.models import tags_table as tg
from todo_api.models import task_tags_table as tt
from todo_api.models import tasks_table as t
from todo_api.schemas.tags import TagPublic
from todo_api.schemas.values import tag_key
from todo_api.services.quotas import tags_full
from todo_api.services.versions import Precondition, stale

#: Names the reason the change feed records for the next statements of the transaction.
_REASON = Statement(text("SELECT set_config('app.change_reason', :reason, true)"))

# Upserts the missing tags (within the quota), links the wanted ones, unlinks the rest
# and returns the names: one round trip whatever the number of tags. The profile row is
# locked first (`room`) so concurrent requests cannot both take the last free tag slot.
_SET_TAGS = Statement(
    text(
        """
    WITH wanted AS (
        SELECT DISTINCT ON (w.name_key) w.name, w.name_key
        FROM unnest(:names, :keys) AS w(name, name_key)
    ),
    existing AS (
        SELECT id, name, name_key FROM tags
        WHERE user_id = :user_id AND name_key = ANY(:keys)
    ),
    missing AS (
        SELECT name, name_key FROM wanted
        WHERE name_key NOT IN (SELECT name_key FROM existing)
    ),
    room AS (
        UPDATE profiles SET tag_count = tag_count
        WHERE user_id = :user_id
          AND tag_count + (SELECT count(*) FROM missing) <= :tag_limit
        RETURNING user_id
    ),
    created AS (
        INSERT INTO tags (user_id, name, name_key)
        SELECT :user_id, name, name_key FROM missing WHERE EXISTS (SELECT FROM room)
        ON CONFLICT (user_id, name_key) DO UPDATE SET name = tags.name
        RETURNING id, name, name_key
    ),
    chosen AS (
        SELECT id, name, name_key FROM existing
        UNION ALL
        SELECT id, name, name_key FROM created
    ),
    unlinked AS (
        DELETE FROM task_tags
        WHERE user_id = :user_id AND task_id = ANY(:task_ids)
          AND tag_id NOT IN (SELECT id FROM chosen)
          AND EXISTS (SELECT FROM room)
    ),
    linked AS (
        INSERT INTO task_tags (user_id, task_id, tag_id)
        SELECT :user_id, task.id, chosen.id
        FROM unnest(:task_ids) AS task(id) CROSS JOIN chosen
        WHERE EXISTS (SELECT FROM room)
        ON CONFLICT DO NOTHING
    )
    SELECT EXISTS (SELECT FROM room) AS fits,
           array(SELECT name FROM chosen ORDER BY name_key) AS names
    """
    ).bindparams(
        bindparam("names", type_=ARRAY(Text)),
        bindparam("keys", type_=ARRAY(Text)),
        bindparam("task_ids", type_=ARRAY(BigInteger)),
        bindparam("user_id", type_=Text),
        bindparam("tag_limit", type_=Integer),
    )
)


async def set_tags(
    session: Session, user_id: str, task_ids: list[int], names: list[str], tag_limit: int
) -> list[str]:
    """Give the tasks exactly these tags (creating missing ones); returns the sorted names.

    The tasks must exist and be the caller's (they were just written in this transaction).
    """
    row = (
        await session.execute(
            _SET_TAGS,
            {
                "names": names,
                "keys": [tag_key(name) for name in names],
                "task_ids": task_ids,
                "user_id": user_id,
                "tag_limit": tag_limit,
            },
        )
    ).one()
    if not row["fits"]:
        raise tags_full(tag_limit)
    return list(row["names"])


def copy_tags(user_id: Any, from_task: Any, to_tasks: Any) -> Any:
    """A CTE giving each task in `to_tasks` (a CTE with an `id`) the tags of `from_task`."""
    source = (
        select(type_coerce(user_id, Text), to_tasks.c.id, tt.c.tag_id)
        .select_from(to_tasks.join(tt, true()))
        .where(tt.c.user_id == user_id, tt.c.task_id == from_task)
    )
    return (
        insert(tt)
        .from_select(["user_id", "task_id", "tag_id"], source)
        .returning(tt.c.task_id)
        .cte("tagged")
    )


def tag_not_found(tag_id: int) -> NotFound:
    return NotFound(f"No tag with id {tag_id} exists for this user.", code="tag_not_found")


def with_count() -> Any:
    count = (
        select(func.count())
        .where(tt.c.user_id == tg.c.user_id, tt.c.tag_id == tg.c.id)
        .correlate(tg)
        .scalar_subquery()
    )
    return select(tg.c.id, tg.c.name, count.label("task_count"), tg.c.version)


async def list_tags(session: Session, user_id: str) -> list[Row]:
    """Every tag of the caller with the number of tasks carrying it, by name."""
    stmt = with_count().where(tg.c.user_id == user_id).order_by(tg.c.name_key, tg.c.id)
    return list((await session.execute(stmt)).mappings().all())


async def get_tag(session: Session, user_id: str, tag_id: int) -> Row:
    stmt = with_count().where(tg.c.user_id == user_id, tg.c.id == tag_id)
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise tag_not_found(tag_id)
    return row


async def _refused(
    session: Session, user_id: str, tag_id: int, precondition: Precondition | None
) -> Exception:
    """404, or 412 with the current tag, for a write that matched no row."""
    if precondition is None:
        return tag_not_found(tag_id)
    row = await get_tag(session, user_id, tag_id)
    return stale(TagPublic.model_validate(row).model_dump(mode="json"), row["version"], "tag")


async def _touch_tasks(session: Session, user_id: str, *tag_ids: int) -> None:
    """Give every task carrying the tag a new version (and a change-feed entry): their
    `tags` are about to read differently. Task rows before the tag row: the lock order
    of task writes, which lock the task and then (setting tags) tag rows."""
    await session.execute(
        update(t)
        .where(
            t.c.user_id == user_id,
            t.c.id.in_(
                select(tt.c.task_id).where(tt.c.user_id == user_id, tt.c.tag_id.in_(tag_ids))
            ),
        )
        .values(version=t.c.version)  # the version trigger raises it
    )


async def rename_tag(
    session: Session,
    user_id: str,
    tag_id: int,
    name: str,
    precondition: Precondition | None = None,
) -> Row:
    """Rename a tag; when another tag already has that name, merge into it.

    A merge moves every link to the surviving tag (tasks carrying both keep one) and
    deletes the renamed tag. Returns the surviving tag. `precondition` applies to the
    renamed tag, and is checked by the statement that changes (or deletes) it.
    """
    key = tag_key(name)
    source = (
        await session.execute(
            select(tg.c.id, tg.c.name_key).where(tg.c.user_id == user_id, tg.c.id == tag_id)
        )
    ).first()
    if source is None:
        raise tag_not_found(tag_id)
    target = (
        await session.execute(
            select(tg.c.id).where(tg.c.user_id == user_id, tg.c.name_key == key, tg.c.id != tag_id)
        )
    ).scalar_one_or_none()
    # A merge renames the surviving tag too (to the spelling asked for).
    await _touch_tasks(session, user_id, tag_id, *([target] if target is not None else []))
    this_tag = [tg.c.user_id == user_id, tg.c.id == tag_id]
    if precondition is not None:
        this_tag.append(precondition.clause(tg.c.version))
    if target is None:
        renamed = await session.execute(
            update(tg).where(*this_tag).values(name=name, name_key=key).returning(tg.c.id)
        )
        if renamed.first() is None:
            raise await _refused(session, user_id, tag_id, precondition)
        return await get_tag(session, user_id, tag_id)
    await session.execute(
        text(
            """
            INSERT INTO task_tags (user_id, task_id, tag_id)
            SELECT user_id, task_id, :target FROM task_tags
            WHERE user_id = :user_id AND tag_id = :source
            ON CONFLICT DO NOTHING
            """
        ),
        {"user_id": user_id, "source": tag_id, "target": target},
    )
    # The change feed reports the merged tag's deletion as `merged`.
    await session.execute(_REASON, {"reason": "merged"})
    deleted = await session.execute(delete(tg).where(*this_tag).returning(tg.c.id))
    if deleted.first() is None:
        raise await _refused(session, user_id, tag_id, precondition)
    # The surviving tag takes the spelling the client asked for.
    await session.execute(_REASON, {"reason": ""})
    await session.execute(
        update(tg).where(tg.c.user_id == user_id, tg.c.id == target).values(name=name)
    )
    return await get_tag(session, user_id, target)


async def delete_tag(
    session: Session, user_id: str, tag_id: int, precondition: Precondition | None = None
) -> Row:
    """Delete a tag; the tasks that carried it simply lose it (and get a new version).
    Returns the tag as it was (the SELECT reads the snapshot the DELETE started from)."""
    await _touch_tasks(session, user_id, tag_id)
    stmt = delete(tg).where(tg.c.user_id == user_id, tg.c.id == tag_id)
    if precondition is not None:
        stmt = stmt.where(precondition.clause(tg.c.version))
    gone = stmt.returning(tg.c.id).cte("gone")
    current = with_count().where(tg.c.user_id == user_id, tg.c.id.in_(select(gone.c.id)))
    deleted = (await session.execute(current)).first()
    if deleted is None:
        raise await _refused(session, user_id, tag_id, precondition)
    return deleted
