"""Task reads: the columns a task response needs, get-one and the list query.

Every statement is scoped to the caller's user id, and every read is one statement:
the tags (names) and the next occurrence's id come from correlated subqueries in the
same SELECT, never from a query per task. Writes live in `task_writes.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    Date,
    DateTime,
    Integer,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from todo_api.db import RawStatement, Reader, fetch_raw
from todo_api.errors import NotFound, Unprocessable
from todo_api.models import profiles_table as p
from todo_api.models import tags_table as tg
from todo_api.models import task_tags_table as tt
from todo_api.models import tasks_table as t
from todo_api.schemas.tasks import SortOrder, TagMode, TaskSort, TaskStatus
from todo_api.schemas.values import Priority, tag_key
from todo_api.services import clock

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


def profile_zone(user_id: str) -> Any:
    """The caller's IANA time zone as a scalar subquery (UTC before the first write)."""
    zone = select(p.c.timezone).where(p.c.user_id == user_id).scalar_subquery()
    return func.coalesce(zone, literal("UTC"))


def start_of_day(day: date, zone: Any) -> Any:
    """The instant `day` begins in `zone` (DST-correct: PostgreSQL's time zone rules)."""
    return func.timezone(zone, cast(literal(day, Date), DateTime(timezone=False)))


def _due_bound(value: date | datetime, zone: Any) -> Any:
    if isinstance(value, datetime):
        return literal(value, DateTime(timezone=True))
    # One scalar subquery, so the bound reaches the planner as a single parameter. Left
    # as `timezone(coalesce((SELECT ...), 'UTC'), ...)` the comparison is not leakproof,
    # and under row-level security it may then only filter rows after the policy, never
    # bound an index range scan: a heavy user's "due this week" read every dated task.
    return select(start_of_day(value, zone)).scalar_subquery()


@dataclass(frozen=True)
class TaskFilters:
    """The list endpoint's filters besides `status`. `list_id=0` is the inbox and
    `parent_id=0` the top level. Due bounds are half-open: `[due_after, due_before)`."""

    q: str | None = None
    priorities: tuple[Priority, ...] = ()
    tags: tuple[str, ...] = ()
    tag_mode: TagMode = TagMode.any
    list_id: int | None = None
    parent_id: int | None = None
    due_before: date | datetime | None = None
    due_after: date | datetime | None = None
    overdue: bool | None = None
    has_due: bool | None = None

    def binding(self) -> list[Any]:
        """Every filter, normalised: a cursor is only valid for exactly these."""
        return [
            self.q,
            sorted(priority.value for priority in self.priorities),
            sorted({tag_key(name) for name in self.tags}),
            self.tag_mode.value,
            self.list_id,
            self.parent_id,
            _bound_text(self.due_before),
            _bound_text(self.due_after),
            self.overdue,
            self.has_due,
        ]


def _bound_text(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class ListQuery:
    """What the list endpoint was asked for."""

    status: TaskStatus
    sort: TaskSort
    order: SortOrder
    limit: int
    cursor: str | None
    filters: TaskFilters = field(default_factory=TaskFilters)


@dataclass(frozen=True)
class TaskPage:
    rows: Sequence[Mapping[str, Any]]
    next_cursor: str | None


class CursorCodec:
    """Opaque keyset cursors, signed so that a tampered one is refused.

    A cursor names the last row of a page by its sort key and id, and records the sort
    and filters it was made for: reusing it with other parameters is an error. The MAC
    also covers the user id, so a cursor issued to one user is invalid for another.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, user_id: str, payload: bytes) -> bytes:
        message = user_id.encode("utf-8", "surrogatepass") + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:12]

    def encode(self, user_id: str, binding: list[Any], key: list[Any]) -> str:
        payload = orjson.dumps([binding, key])
        token = base64.urlsafe_b64encode(payload + self._mac(user_id, payload)).rstrip(b"=")
        return token.decode()

    def decode(self, user_id: str, cursor: str, binding: list[Any]) -> list[Any]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise _bad_cursor() from None
        payload, mac = raw[:-12], raw[-12:]
        if len(raw) <= 12 or not hmac.compare_digest(mac, self._mac(user_id, payload)):
            raise _bad_cursor()
        stored_binding, key = orjson.loads(payload)
        if stored_binding != binding:
            raise Unprocessable(
                "This cursor was issued for a different sort or filter; "
                "start again from the first page.",
                code="cursor_mismatch",
            )
        if not isinstance(key, list) or len(key) != 2 or not isinstance(key[1], int):
            raise _bad_cursor()
        return key


def _bad_cursor() -> Unprocessable:
    return Unprocessable("The cursor is not one this server issued.", code="cursor_invalid")


_SORT_COLUMNS = {
    TaskSort.created: t.c.created_at,
    TaskSort.updated: t.c.updated_at,
    TaskSort.title: t.c.title,
    TaskSort.due_date: t.c.due_sort_at,
    TaskSort.priority: t.c.priority,
    TaskSort.position: t.c.position,
}
_TIME_SORTS = {TaskSort.created, TaskSort.updated, TaskSort.due_date}


def _cursor_value(sort: TaskSort, row: Mapping[str, Any]) -> Any:
    value = row[_SORT_COLUMNS[sort].name]
    return value.isoformat() if isinstance(value, datetime) else value


def _parse_cursor_value(sort: TaskSort, value: Any) -> Any:
    if value is None and sort is TaskSort.due_date:
        return None
    if sort in _TIME_SORTS:
        if not isinstance(value, str):
            raise _bad_cursor()
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise _bad_cursor() from None
    expected = int if sort is TaskSort.priority else str
    if not isinstance(value, expected) or isinstance(value, bool):
        raise _bad_cursor()
    return value


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (backslash is the escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _overdue(user_id: str) -> Any:
    """Open, due in the past; an all-day task only once its day has ended in the
    profile's time zone. Never NULL, so it can be negated."""
    now = literal(clock.now(), DateTime(timezone=True))
    today = cast(func.timezone(profile_zone(user_id), now), Date)
    return and_(
        t.c.completed == false(),
        t.c.due_sort_at.is_not(None),
        t.c.due_sort_at < now,
        or_(t.c.due_date.is_(None), t.c.due_date < today),
    )


def _tag_keys(filters: TaskFilters) -> list[str]:
    return sorted({tag_key(name) for name in filters.tags})


def _tagged(user_id: str, filters: TaskFilters) -> Select[Any]:
    """The ids of every task carrying the filter's tags (any of them, or all)."""
    keys = _tag_keys(filters)
    tagged = (
        select(tt.c.task_id)
        .join(tg, and_(tg.c.user_id == tt.c.user_id, tg.c.id == tt.c.tag_id))
        .where(tt.c.user_id == user_id, tg.c.name_key.in_(keys))
    )
    if filters.tag_mode is TagMode.all and len(keys) > 1:
        tagged = tagged.group_by(tt.c.task_id).having(func.count() == len(keys))
    return tagged


def apply_filters(
    stmt: Select[Any], user_id: str, status: TaskStatus, filters: TaskFilters
) -> Select[Any]:
    """`stmt` restricted to the tasks the filters select."""
    if status is TaskStatus.pending:
        stmt = stmt.where(t.c.completed == false())
    elif status is TaskStatus.completed:
        stmt = stmt.where(t.c.completed == true())
    if filters.q is not None:
        pattern = f"%{escape_like(filters.q)}%"
        stmt = stmt.where(
            or_(t.c.title.ilike(pattern, escape="\\"), t.c.description.ilike(pattern, escape="\\"))
        )
    if filters.priorities:
        stmt = stmt.where(t.c.priority.in_(sorted({p.rank for p in filters.priorities})))
    if filters.tags:
        stmt = stmt.where(t.c.id.in_(_tagged(user_id, filters)))
    if filters.list_id is not None:
        stmt = stmt.where(
            t.c.list_id.is_(None) if filters.list_id == 0 else t.c.list_id == filters.list_id
        )
    if filters.parent_id is not None:
        stmt = stmt.where(
            t.c.parent_id.is_(None)
            if filters.parent_id == 0
            else t.c.parent_id == filters.parent_id
        )
    if filters.due_after is not None:
        stmt = stmt.where(t.c.due_sort_at >= _due_bound(filters.due_after, profile_zone(user_id)))
    if filters.due_before is not None:
        stmt = stmt.where(t.c.due_sort_at < _due_bound(filters.due_before, profile_zone(user_id)))
    if filters.has_due is not None:
        has = t.c.due_sort_at.is_not(None)
        stmt = stmt.where(has if filters.has_due else t.c.due_sort_at.is_(None))
    if filters.overdue is not None:
        overdue = _overdue(user_id)
        stmt = stmt.where(overdue if filters.overdue else not_(overdue))
    return stmt


def _ordered(
    stmt: Select[Any], column: Any, descending: bool, limit: int | BindParameter[int]
) -> Select[Any]:
    keys = [column] if column is t.c.id else [column, t.c.id]
    return stmt.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit)


def _after(column: Any, value: Any, task_id: int, descending: bool) -> Any:
    key, bound = tuple_(column, t.c.id), tuple_(value, task_id)
    return key < bound if descending else key > bound


def _page_statement(
    stmt: Select[Any],
    sort: TaskSort,
    descending: bool,
    limit: int | BindParameter[int],
    key: list[Any] | None,
) -> Select[Any]:
    column = _SORT_COLUMNS[sort]
    if sort is not TaskSort.due_date:
        if key is not None:
            stmt = stmt.where(_after(column, key[0], key[1], descending))
        return _ordered(stmt, column, descending, limit)
    # NULLs last in both directions: the dated tasks in order, then the undated ones by
    # id. Two index range scans instead of one OR that no index can serve.
    undated = stmt.where(column.is_(None))
    if key is not None and key[0] is None:
        undated = undated.where(t.c.id < key[1] if descending else t.c.id > key[1])
        return _ordered(undated, t.c.id, descending, limit)
    dated = stmt.where(column.is_not(None))
    if key is not None:
        dated = dated.where(_after(column, key[0], key[1], descending))
    both = union_all(
        _ordered(dated, column, descending, limit), _ordered(undated, t.c.id, descending, limit)
    ).subquery("page")
    last = both.c.due_sort_at.is_(None)
    direction = (
        (both.c.due_sort_at.desc(), both.c.id.desc())
        if descending
        else (
            both.c.due_sort_at.asc(),
            both.c.id.asc(),
        )
    )
    return select(both).order_by(last, *direction).limit(limit)


#: How many tasks, in page order, a tag-filtered page examines one by one before it
#: falls back to collecting every task that carries the tags (see `_tag_candidates`).
TAG_WALK = 1000


def _leading(
    stmt: Select[Any], sort: TaskSort, descending: bool, limit: int, key: list[Any] | None
) -> Select[Any]:
    """The first `limit` tasks of the page order, within a run that no later task
    precedes: the whole order, or for `due_date` the dated tasks (all before the
    undated ones) unless the cursor is already past them."""
    column = _SORT_COLUMNS[sort]
    if sort is not TaskSort.due_date or (key is not None and key[0] is None):
        return _page_statement(stmt, sort, descending, limit, key)
    dated = stmt.where(column.is_not(None))
    if key is not None:
        dated = dated.where(_after(column, key[0], key[1], descending))
    return _ordered(dated, column, descending, limit)


def _tag_candidates(
    stmt: Select[Any],
    user_id: str,
    query: ListQuery,
    key: list[Any] | None,
) -> Any:
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
    sort, descending, limit = query.sort, query.order is SortOrder.desc, query.limit + 1
    keys = _tag_keys(query.filters)
    column = _SORT_COLUMNS[sort]
    prefix = _leading(
        stmt.with_only_columns(t.c.id, column), sort, descending, TAG_WALK, key
    ).subquery("prefix")
    tag_ids = func.array(
        select(tg.c.id).where(tg.c.user_id == user_id, tg.c.name_key.in_(keys)).scalar_subquery()
    )
    carried = (
        select(func.count())
        .select_from(tt)
        .where(tt.c.user_id == user_id, tt.c.task_id == prefix.c.id, tt.c.tag_id == any_(tag_ids))
        .scalar_subquery()
    )
    # Fewer links to the tags than the page holds: a walk could not fill it, and
    # collecting costs less than a page. No walk then (a small user, or a rare tag).
    links = (
        select(tt.c.task_id)
        .join(tg, and_(tg.c.user_id == tt.c.user_id, tg.c.id == tt.c.tag_id))
        .where(tt.c.user_id == user_id, tg.c.name_key.in_(keys))
        .limit(limit)
        .subquery("links")
    )
    enough = select(func.count()).select_from(links).scalar_subquery()
    every = query.filters.tag_mode is TagMode.all and len(keys) > 1
    order = (prefix.c[column.name], prefix.c.id)
    walked = (
        select(prefix.c.id)
        .where(enough == limit)
        .where(carried == len(keys) if every else carried > 0)
        .order_by(*(k.desc() if descending else k.asc() for k in order))
        .limit(limit)
        .cte("walked")
    )
    found = select(func.count()).select_from(walked).scalar_subquery()
    # A short walk's tasks are among the collected ones: no need to leave them out.
    return union_all(select(walked.c.id), _tagged(user_id, query.filters).where(found < limit))


def list_statement(user_id: str, query: ListQuery, key: list[Any] | None = None) -> Select[Any]:
    """The one SELECT behind a page (`limit + 1` rows; `key`: the cursor's sort key and
    id). Also what `bench/explain.py` explains."""
    descending = query.order is SortOrder.desc
    if not query.filters.tags:
        stmt = apply_filters(readable(user_id), user_id, query.status, query.filters)
        return _page_statement(stmt, query.sort, descending, query.limit + 1, key)
    untagged = replace(query.filters, tags=())
    stmt = apply_filters(readable(user_id), user_id, query.status, untagged)
    candidates = _tag_candidates(stmt, user_id, query, key)
    return _page_statement(
        stmt.where(t.c.id.in_(candidates)), query.sort, descending, query.limit + 1, key
    )


_NO_FILTERS = TaskFilters()


@cache
def _first_page(status: TaskStatus, sort: TaskSort, order: SortOrder) -> RawStatement:
    """A first page without filters besides `status`, built and compiled once per sort
    and order with the user id and the limit as parameters: the same SQL as
    `list_statement`, run on the driver (see `RawStatement`)."""
    # Without filters `apply_filters` never reads the user id.
    stmt = apply_filters(readable(bindparam("user_id")), "", status, _NO_FILTERS)
    limit = bindparam("limit", type_=Integer)
    return RawStatement.compile(_page_statement(stmt, sort, order is SortOrder.desc, limit, None))


def is_plain_first_page(query: ListQuery) -> bool:
    """Whether `list_tasks` runs a prebuilt statement (on the driver) for `query`."""
    # `due_date` repeats its limit in a UNION: one shared parameter would change its SQL.
    return (
        query.cursor is None
        and query.filters == _NO_FILTERS
        and query.sort is not TaskSort.due_date
    )


async def list_tasks(
    session: Reader, user_id: str, query: ListQuery, codec: CursorCodec
) -> TaskPage:
    """One page of the caller's tasks, keyset-paginated with `id` as the tie-break."""
    binding = [query.sort.value, query.order.value, query.status.value, *query.filters.binding()]
    if is_plain_first_page(query):
        stmt = _first_page(query.status, query.sort, query.order)
        params = {"user_id": user_id, "limit": query.limit + 1}
        rows: Sequence[Mapping[str, Any]] = await fetch_raw(session, stmt, params)
    else:
        key = None
        if query.cursor is not None:
            key = codec.decode(user_id, query.cursor, binding)
            key = [_parse_cursor_value(query.sort, key[0]), key[1]]
        rows = (await session.execute(list_statement(user_id, query, key))).mappings().all()

    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        next_cursor = codec.encode(user_id, binding, [_cursor_value(query.sort, last), last["id"]])
    return TaskPage(rows=rows, next_cursor=next_cursor)


#: Built once: building the statement and its cache key per request cost more CPU than
#: executing it (the cache key of a module-level statement is memoised).
#: Compiled once and run on the driver (see `RawStatement`): SQLAlchemy's execution
#: path cost about a fifth of the request's CPU.
_GET_TASK = RawStatement.compile(
    readable(bindparam("user_id")).where(t.c.id == bindparam("task_id"))
)


async def get_task(session: Reader, user_id: str, task_id: int) -> dict[str, Any]:
    params = {"user_id": user_id, "task_id": task_id}
    rows = await fetch_raw(session, _GET_TASK, params)
    if not rows:
        raise task_not_found(task_id)
    return dict(rows[0])
