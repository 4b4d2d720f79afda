"""Per-user quotas on tasks, lists and tags, checked without counting rows.

`profiles.task_count`/`list_count`/`tag_count` are kept exact by statement-level
triggers (migration 0002). A write that adds rows first takes the caller's profile row
in the same statement — inserting it on the user's first write — and only proceeds when
the counter leaves room: `room(...)` below. The row lock it takes also serialises a
user's concurrent writes at that point, so two requests cannot both take the last slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.expression import ColumnElement

from todo_api.errors import Conflict
from todo_api.models import profiles_table as p


@dataclass
class Quotas:
    """The limits in force (settings `MAX_TASKS_PER_USER`, ...)."""

    tasks: int = 10_000
    lists: int = 200
    tags: int = 500


def room(user_id: Any, counter: str, adding: Any, limit: Any) -> Any:
    """A CTE yielding the caller's profile (`timezone`, counters) only when `adding` more
    rows fit under `limit`; it creates the profile on the first write. `user_id` and
    `limit` may be bind parameters (for statements built once)."""
    column = p.c[counter]
    stmt = insert(p).values(user_id=user_id)
    return (
        stmt.on_conflict_do_update(
            index_elements=[p.c.user_id],
            set_={counter: column},
            where=column + adding
            <= (limit if isinstance(limit, ColumnElement) else literal(limit)),
        )
        .returning(p.c.user_id, p.c.timezone, p.c.task_count, p.c.list_count, p.c.tag_count)
        .cte(f"room_{counter}")
    )


def tasks_full(limit: int) -> Conflict:
    return Conflict(
        f"This account already has the maximum of {limit} tasks; delete some first.",
        code="quota_tasks",
    )


def lists_full(limit: int) -> Conflict:
    return Conflict(
        f"This account already has the maximum of {limit} lists; delete one first.",
        code="quota_lists",
    )


def tags_full(limit: int) -> Conflict:
    return Conflict(
        f"This account already has the maximum of {limit} tags; delete or merge some first.",
        code="quota_tags",
    )
