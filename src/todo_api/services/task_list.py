"""The task list: filters, sorts and keyset pages.

A page is one SELECT (`task_list_sql.list_statement`), built and compiled once per
`ListShape` (the sort and which filters are present) with every value a parameter
(`list_parameters`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from todo_api.db.database import Session
from todo_api.db.statements import cached
from todo_api.schemas.task_query import TaskListParams
from todo_api.schemas.tasks import SortOrder, TagMode, TaskSort, TaskStatus
from todo_api.schemas.values import Priority, tag_key
from todo_api.services import clock
from todo_api.services.cursors import CursorCodec, bad_cursor
from todo_api.services.task_list_sql import SORT_COLUMNS, ListShape, escape_like, list_statement


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
    #: Tasks to skip before the page (offset paging; never with a cursor).
    offset: int = 0

    @classmethod
    def from_params(cls, params: TaskListParams) -> ListQuery:
        """The query the list parameters (in any of their spellings) stand for."""
        asked = params.canonical()
        filters = TaskFilters(
            q=asked.q,
            priorities=tuple(params.priority or ()),
            tags=tuple(params.tag or ()),
            tag_mode=params.tag_mode,
            list_id=params.list_id,
            parent_id=params.parent_id,
            due_before=params.due_before,
            due_after=params.due_after,
            overdue=params.overdue,
            has_due=params.has_due,
        )
        return cls(
            asked.status, asked.sort, asked.order, asked.limit, asked.cursor, filters, asked.offset
        )


@dataclass(frozen=True)
class TaskPage:
    rows: Sequence[Mapping[str, Any]]
    next_cursor: str | None


_TIME_SORTS = {TaskSort.created, TaskSort.updated, TaskSort.due_date}


def _cursor_value(sort: TaskSort, row: Mapping[str, Any]) -> Any:
    value = row[SORT_COLUMNS[sort].name]
    return value.isoformat() if isinstance(value, datetime) else value


def _parse_cursor_value(sort: TaskSort, value: Any) -> Any:
    if value is None and sort is TaskSort.due_date:
        return None
    if sort in _TIME_SORTS:
        if not isinstance(value, str):
            raise bad_cursor()
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise bad_cursor() from None
    expected = int if sort is TaskSort.priority else str
    if not isinstance(value, expected) or isinstance(value, bool):
        raise bad_cursor()
    return value


def _tag_keys(filters: TaskFilters) -> list[str]:
    return sorted({tag_key(name) for name in filters.tags})


def _kind(value: date | datetime | None) -> str | None:
    """How a due bound shapes the statement: absent, a date, an instant, or local."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return "date"
    return "instant" if value.tzinfo is not None else "local"


def _id_filter(value: int | None) -> str | None:
    """How an id filter shapes the statement: absent, `0` (none), or an id."""
    return None if value is None else ("none" if value == 0 else "id")


def shape_of(query: ListQuery, key: list[Any] | None) -> ListShape:
    """The shape of the statement behind a page of `query` (after `key`, if any)."""
    f = query.filters
    cursor = None if key is None else ("null" if key[0] is None else "key")
    return ListShape(
        status=query.status,
        sort=query.sort,
        descending=query.order is SortOrder.desc,
        search=f.q is not None,
        priorities=bool(f.priorities),
        tags=bool(f.tags),
        every_tag=f.tag_mode is TagMode.all and len(_tag_keys(f)) > 1,
        list_id=_id_filter(f.list_id),
        parent_id=_id_filter(f.parent_id),
        due_after=_kind(f.due_after),
        due_before=_kind(f.due_before),
        has_due=f.has_due,
        overdue=f.overdue,
        cursor=cursor,
        offset=query.offset > 0,
    )


def list_parameters(user_id: str, query: ListQuery, key: list[Any] | None = None) -> dict[str, Any]:
    """The values of the list statement's parameters."""
    f = query.filters
    params: dict[str, Any] = {"user_id": user_id, "limit": query.limit + 1}
    if query.offset:
        params["offset"] = query.offset
        params["window"] = query.offset + query.limit + 1
    if f.q is not None:
        params["pattern"] = f"%{escape_like(f.q)}%"
    if f.priorities:
        params["priorities"] = sorted({p.rank for p in f.priorities})
    if f.tags:
        keys = _tag_keys(f)
        params["tag_keys"] = keys
        params["tag_count"] = len(keys)
    if f.list_id:
        params["list_id"] = f.list_id
    if f.parent_id:
        params["parent_id"] = f.parent_id
    if f.due_after is not None:
        params["due_after"] = f.due_after
    if f.due_before is not None:
        params["due_before"] = f.due_before
    if f.overdue is not None:
        params["now"] = clock.now()
    if key is not None:
        if key[0] is not None:
            params["after_value"] = key[0]
        params["after_id"] = key[1]
    return params


async def list_tasks(
    session: Session, user_id: str, query: ListQuery, codec: CursorCodec
) -> TaskPage:
    """One page of the caller's tasks, keyset-paginated with `id` as the tie-break."""
    binding = [query.sort.value, query.order.value, query.status.value, *query.filters.binding()]
    key = None
    if query.cursor is not None:
        key = codec.decode(user_id, query.cursor, binding)
        key = [_parse_cursor_value(query.sort, key[0]), key[1]]
    stmt = cached(list_statement, shape_of(query, key))
    rows = (await session.execute(stmt, list_parameters(user_id, query, key))).rows
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        next_cursor = codec.encode(user_id, binding, [_cursor_value(query.sort, last), last["id"]])
    return TaskPage(rows=rows, next_cursor=next_cursor)
