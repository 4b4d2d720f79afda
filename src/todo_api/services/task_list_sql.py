"""The list statement: one SELECT per `ListShape` (the sort and which filters are
present), every value a bound parameter; `task_list.py` fills them in and pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Integer,
    Select,
    SmallInteger,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    false,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from todo_api.models import tags_table as tg
from todo_api.models import task_tags_table as tt
from todo_api.models import tasks_table as t
from todo_api.schemas.tasks import TaskSort, TaskStatus
from todo_api.services.tasks import profile_zone, readable, start_of_day


@dataclass(frozen=True)
class ListShape:
    """What decides the structure of a list statement (its values are parameters)."""

    status: TaskStatus
    sort: TaskSort
    descending: bool
    search: bool = False
    priorities: bool = False
    tags: bool = False
    every_tag: bool = False
    list_id: str | None = None
    parent_id: str | None = None
    due_after: str | None = None
    due_before: str | None = None
    has_due: bool | None = None
    overdue: bool | None = None
    #: None: first page; "null": after an undated task (`due_date` sort); "key".
    cursor: str | None = None
    #: Offset paging: every step before the last reads `window` (offset + limit) rows.
    offset: bool = False


SORT_COLUMNS = {
    TaskSort.created: t.c.created_at,
    TaskSort.updated: t.c.updated_at,
    TaskSort.title: t.c.title,
    TaskSort.due_date: t.c.due_sort_at,
    TaskSort.priority: t.c.priority,
    TaskSort.position: t.c.position,
}


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (backslash is the escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: The caller's id in every list statement.
_USER = bindparam("user_id", type_=Text)


def _overdue() -> Any:
    """Open, due in the past; an all-day task only once its day has ended in the
    profile's time zone. Never NULL, so it can be negated."""
    now = bindparam("now", type_=DateTime(timezone=True))
    today = cast(func.timezone(profile_zone(_USER), now), Date)
    return and_(
        t.c.completed == false(),
        t.c.due_sort_at.is_not(None),
        t.c.due_sort_at < now,
        or_(t.c.due_date.is_(None), t.c.due_date < today),
    )


def _due_bound(name: str, kind: str, zone: Any) -> Any:
    """The bound parameter `name`: an instant, a local date-time (in the profile's zone),
    or a date meaning its start."""
    if kind == "instant":
        return bindparam(name, type_=DateTime(timezone=True))
    if kind == "local":
        local = bindparam(name, type_=DateTime(timezone=False))
        return select(func.timezone(zone, local)).scalar_subquery()
    value = bindparam(name, type_=Date)
    # One scalar subquery, so the bound reaches the planner as a single parameter. Left
    # as `timezone(coalesce((SELECT ...), 'UTC'), ...)` the comparison is not leakproof,
    # and under row-level security it may then only filter rows after the policy, never
    # bound an index range scan: a heavy user's "due this week" read every dated task.
    return select(start_of_day(value, zone)).scalar_subquery()


def _tagged(shape: ListShape) -> Select[Any]:
    """The ids of every task carrying the filter's tags (any of them, or all)."""
    tagged = (
        select(tt.c.task_id)
        .join(tg, and_(tg.c.user_id == tt.c.user_id, tg.c.id == tt.c.tag_id))
        .where(tt.c.user_id == _USER, tg.c.name_key == any_(_TAG_KEYS))
    )
    if shape.every_tag:
        tagged = tagged.group_by(tt.c.task_id).having(func.count() == _TAG_COUNT)
    return tagged


_TAG_KEYS = bindparam("tag_keys", type_=ARRAY(Text))
_TAG_COUNT = bindparam("tag_count", type_=Integer)
_LIMIT = bindparam("limit", type_=Integer)
_OFFSET = bindparam("offset", type_=Integer)
_WINDOW = bindparam("window", type_=Integer)


def apply_filters(stmt: Select[Any], shape: ListShape, *, tags: bool = True) -> Select[Any]:
    """`stmt` restricted to the tasks the filters select (`tags=False`: all but tags)."""
    if shape.status is TaskStatus.pending:
        stmt = stmt.where(t.c.completed == false())
    elif shape.status is TaskStatus.completed:
        stmt = stmt.where(t.c.completed == true())
    if shape.search:
        pattern = bindparam("pattern", type_=Text)
        stmt = stmt.where(
            or_(t.c.title.ilike(pattern, escape="\\"), t.c.description.ilike(pattern, escape="\\"))
        )
    if shape.priorities:
        ranks = bindparam("priorities", type_=ARRAY(SmallInteger))
        stmt = stmt.where(t.c.priority == any_(ranks))
    if shape.tags and tags:
        stmt = stmt.where(t.c.id.in_(_tagged(shape)))
    if shape.list_id is not None:
        stmt = stmt.where(
            t.c.list_id.is_(None)
            if shape.list_id == "none"
            else t.c.list_id == bindparam("list_id", type_=BigInteger)
        )
    if shape.parent_id is not None:
        stmt = stmt.where(
            t.c.parent_id.is_(None)
            if shape.parent_id == "none"
            else t.c.parent_id == bindparam("parent_id", type_=BigInteger)
        )
    if shape.due_after is not None:
        bound = _due_bound("due_after", shape.due_after, profile_zone(_USER))
        stmt = stmt.where(t.c.due_sort_at >= bound)
    if shape.due_before is not None:
        bound = _due_bound("due_before", shape.due_before, profile_zone(_USER))
        stmt = stmt.where(t.c.due_sort_at < bound)
    if shape.has_due is not None:
        has = t.c.due_sort_at.is_not(None)
        stmt = stmt.where(has if shape.has_due else t.c.due_sort_at.is_(None))
    if shape.overdue is not None:
        overdue = _overdue()
        stmt = stmt.where(overdue if shape.overdue else not_(overdue))
    return stmt


def _ordered(stmt: Select[Any], column: Any, descending: bool, limit: Any) -> Select[Any]:
    keys = [column] if column is t.c.id else [column, t.c.id]
    return stmt.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit)


def _after(column: Any, descending: bool) -> Any:
    """After the cursor's row: its sort value and id are the parameters."""
    value = bindparam("after_value", type_=column.type)
    key, bound = tuple_(column, t.c.id), tuple_(value, _AFTER_ID)
    return key < bound if descending else key > bound


_AFTER_ID = bindparam("after_id", type_=BigInteger)


def _page_statement(stmt: Select[Any], shape: ListShape, limit: Any) -> Select[Any]:
    column = SORT_COLUMNS[shape.sort]
    descending = shape.descending
    if shape.sort is not TaskSort.due_date:
        if shape.cursor is not None:
            stmt = stmt.where(_after(column, descending))
        return _ordered(stmt, column, descending, limit)
    # NULLs last in both directions: the dated tasks in order, then the undated ones by
    # id. Two index range scans instead of one OR that no index can serve.
    undated = stmt.where(column.is_(None))
    if shape.cursor == "null":
        undated = undated.where(t.c.id < _AFTER_ID if descending else t.c.id > _AFTER_ID)
        return _ordered(undated, t.c.id, descending, limit)
    dated = stmt.where(column.is_not(None))
    if shape.cursor is not None:
        dated = dated.where(_after(column, descending))
    both = union_all(
        _ordered(dated, column, descending, limit), _ordered(undated, t.c.id, descending, limit)
    ).subquery("page")
    last = both.c.due_sort_at.is_(None)
    if descending:
        direction = (both.c.due_sort_at.desc(), both.c.id.desc())
    else:
        direction = (both.c.due_sort_at.asc(), both.c.id.asc())
    return select(both).order_by(last, *direction).limit(limit)


#: How many tasks, in page order, a tag-filtered page examines one by one before it
#: falls back to collecting every task that carries the tags (see `_tag_candidates`).
TAG_WALK = 1000


def _leading(stmt: Select[Any], shape: ListShape, limit: int) -> Select[Any]:
    """The first `limit` tasks of the page order, within a run that no later task
    precedes: the whole order, or for `due_date` the dated tasks (all before the
    undated ones) unless the cursor is already past them."""
    column = SORT_COLUMNS[shape.sort]
    if shape.sort is not TaskSort.due_date or shape.cursor == "null":
        return _page_statement(stmt, shape, limit)
    dated = stmt.where(column.is_not(None))
    if shape.cursor is not None:
        dated = dated.where(_after(column, shape.descending))
    return _ordered(dated, column, shape.descending, limit)


def _tag_candidates(stmt: Select[Any], shape: ListShape) -> Any:
    """Ids among which the tag-filtered page lies: the page itself, or every tagged task.

    There are two ways to find such a page. Collecting every task with the tags, then
    sorting, costs a task lookup per tagged task: fine for a rare tag, tens of
    milliseconds for a tag on thousands of a heavy user's tasks. Walking the tasks in
    page order, checking each one's tags, stops once the page is full: fine for a
    common tag, a walk through every task for a rare one. The planner cannot choose (it
    never knows how many tasks a tag has), so the statement does: it walks at most
    `TAG_WALK` tasks (in page order, after the cursor) and, when that fills the page,
    those are the page; otherwise it collects, exactly as before the walk.
    """
    column = SORT_COLUMNS[shape.sort]
    size = _WINDOW if shape.offset else _LIMIT
    prefix = _leading(stmt.with_only_columns(t.c.id, column), shape, TAG_WALK).subquery("prefix")
    tag_ids = func.array(
        select(tg.c.id)
        .where(tg.c.user_id == _USER, tg.c.name_key == any_(_TAG_KEYS))
        .scalar_subquery()
    )
    carried = (
        select(func.count())
        .select_from(tt)
        .where(tt.c.user_id == _USER, tt.c.task_id == prefix.c.id, tt.c.tag_id == any_(tag_ids))
        .scalar_subquery()
    )
    # Fewer links to the tags than the page holds: a walk could not fill it, and
    # collecting costs less than a page. No walk then (a small user, or a rare tag).
    links = (
        select(tt.c.task_id)
        .join(tg, and_(tg.c.user_id == tt.c.user_id, tg.c.id == tt.c.tag_id))
        .where(tt.c.user_id == _USER, tg.c.name_key == any_(_TAG_KEYS))
        .limit(size)
        .subquery("links")
    )
    enough = select(func.count()).select_from(links).scalar_subquery()
    order = (prefix.c[column.name], prefix.c.id)
    walked = (
        select(prefix.c.id)
        .where(enough == size)
        .where(carried == _TAG_COUNT if shape.every_tag else carried > 0)
        .order_by(*(k.desc() if shape.descending else k.asc() for k in order))
        .limit(size)
        .cte("walked")
    )
    found = select(func.count()).select_from(walked).scalar_subquery()
    # A short walk's tasks are among the collected ones: no need to leave them out.
    return union_all(select(walked.c.id), _tagged(shape).where(found < size))


def list_statement(shape: ListShape) -> Select[Any]:
    """The one SELECT behind a page (`limit + 1` rows, after the cursor's key when there
    is one), every value a parameter (`list_parameters`). Also what `bench/explain.py`
    explains."""
    stmt = apply_filters(readable(_USER), shape, tags=False)
    if shape.tags:
        stmt = stmt.where(t.c.id.in_(_tag_candidates(stmt, shape)))
    if not shape.offset:
        return _page_statement(stmt, shape, _LIMIT)
    # Every step reads the window up to the page's end; the last one skips the offset.
    return _page_statement(stmt, shape, _WINDOW).limit(_LIMIT).offset(_OFFSET)
