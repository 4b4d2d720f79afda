"""The task list's query parameters, in the spellings real clients send.

Every spelling maps to one canonical query (`ListRequest`), which is what cursors are
bound to: `sort=-created_at`, `sort_by=created_at&sort_order=desc` and
`sort=created&order=desc` are the same request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from todo_api.schemas.common import MAX_ID, Line
from todo_api.schemas.tasks import DEFAULT_ORDER, SortOrder, TagMode, TaskSort, TaskStatus
from todo_api.schemas.values import DueValue, Priority, TagName

MAX_PAGE = 200
DEFAULT_PAGE = 50
#: Offset paging reaches this far (`offset`, `skip`, `page`); cursors go anywhere.
MAX_OFFSET = 10_000

_SORT_TEXT = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


def _sort_of(text: str) -> tuple[TaskSort, SortOrder | None]:
    """`created_at`, `-created_at` (descending), `due`, ... as a sort and maybe an order."""
    descending = text.startswith("-")
    try:
        sort = TaskSort(text.removeprefix("-").removeprefix("+"))
    except ValueError:
        names = ", ".join(member.value for member in TaskSort)
        raise ValueError(f"must be one of {names} (or created_at, updated_at, due)") from None
    return sort, SortOrder.desc if descending else None


class TaskListParams(BaseModel):
    """Query parameters of `GET /tasks`. Unknown names are ignored, and named in the
    `Ignored-Query-Params` response header."""

    model_config = ConfigDict(extra="ignore")

    status: TaskStatus | None = Field(
        default=None,
        description="`all` (default), `pending` (also `incomplete`, `active`, `open`) or "
        "`completed` (also `done`); any case.",
    )
    completed: bool | None = Field(
        default=None, description="`true`: `status=completed`; `false`: `status=pending`."
    )
    sort: _SORT_TEXT | None = Field(
        default=None,
        description="`created` (default), `updated`, `title`, `due_date`, `priority`, "
        "`position`; also `created_at`, `updated_at`, `due`; a leading `-` sorts "
        "descending. `id` breaks ties.",
        examples=["-created_at"],
    )
    sort_by: _SORT_TEXT | None = Field(default=None, description="Another name for `sort`.")
    order: SortOrder | None = Field(
        default=None,
        description="Default: `desc` for `created`, `updated` and `priority` (newest, "
        "highest first), `asc` otherwise. NULL due dates always come last.",
    )
    sort_order: SortOrder | None = Field(default=None, description="Another name for `order`.")
    limit: int | None = Field(
        default=None, ge=1, le=MAX_PAGE, description=f"Page size (default {DEFAULT_PAGE}, max 200)."
    )
    cursor: str | None = Field(
        default=None,
        max_length=1024,
        description='From the previous page\'s `Link: rel="next"` (the recommended way to page).',
    )
    offset: int | None = Field(
        default=None, ge=0, le=MAX_OFFSET, description="Skip this many tasks (max 10,000)."
    )
    skip: int | None = Field(
        default=None, ge=0, le=MAX_OFFSET, description="Another name for `offset`."
    )
    page: int | None = Field(
        default=None,
        ge=1,
        description="Page number from 1, with `page_size` (or `per_page`, or `limit`).",
    )
    page_size: int | None = Field(
        default=None, ge=1, le=MAX_PAGE, description="Page size for `page`."
    )
    per_page: int | None = Field(
        default=None, ge=1, le=MAX_PAGE, description="Another name for `page_size`."
    )
    q: Line | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Case-insensitive substring of the title or the description.",
        examples=["milk"],
    )
    search: Line | None = Field(
        default=None, min_length=1, max_length=200, description="Another name for `q`."
    )
    priority: list[Priority] | None = Field(
        default=None, description="Repeatable: any of these priorities (any case)."
    )
    tag: list[TagName] | None = Field(
        default=None, max_length=20, description="Repeatable (`tag=a&tag=b`); see `tag_mode`."
    )
    tag_mode: TagMode = Field(
        default=TagMode.any, description="`any`: at least one of the tags; `all`: every one."
    )
    list_id: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="Tasks of this list; `0`: the inbox."
    )
    parent_id: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="Subtasks of this task; `0`: top-level tasks."
    )
    due_after: DueValue | None = Field(
        default=None, description="Due at or after (a date means its start in the profile's zone)."
    )
    due_before: DueValue | None = Field(
        default=None,
        description="Due strictly before (a date means its start in the profile's zone).",
    )
    overdue: bool | None = Field(
        default=None,
        description="Open and past due; an all-day task once its day has ended in the "
        "profile's time zone.",
    )
    has_due: bool | None = Field(default=None, description="With (or without) a due date.")

    @model_validator(mode="after")
    def _one_spelling_each(self) -> TaskListParams:
        pairs = (
            ("sort", "sort_by"),
            ("order", "sort_order"),
            ("q", "search"),
            ("offset", "skip"),
            ("page_size", "per_page"),
        )
        for first, second in pairs:
            one, other = getattr(self, first), getattr(self, second)
            if one is not None and other is not None and one != other:
                raise ValueError(f"`{first}` and `{second}` say different things; send one")
        if self.sort is not None:
            _sort_of(self.sort)
        if self.sort_by is not None:
            _sort_of(self.sort_by)
        paged = self.page is not None or self.offset is not None or self.skip is not None
        if paged and self.cursor is not None:
            raise ValueError("send either a `cursor` or an offset (`offset`, `skip`, `page`)")
        if self.page is not None and (self.offset is not None or self.skip is not None):
            raise ValueError("send either `page` or `offset`")
        size = self.page_size or self.per_page or self.limit or DEFAULT_PAGE
        if self.page is not None and (self.page - 1) * size > MAX_OFFSET:
            raise ValueError(f"`page` reaches past {MAX_OFFSET} tasks; page with the cursor")
        if self.status is not None and self.completed is not None:
            expected = TaskStatus.completed if self.completed else TaskStatus.pending
            if self.status is not expected and self.status is not TaskStatus.all:
                raise ValueError("`status` and `completed` say different things; send one")
        return self

    def canonical(self) -> ListRequest:
        """The one request every spelling of this one stands for."""
        status = self.status or TaskStatus.all
        if self.completed is not None and status is TaskStatus.all:
            status = TaskStatus.completed if self.completed else TaskStatus.pending
        sort, order = _sort_of(self.sort or self.sort_by or TaskSort.created.value)
        order = self.order or self.sort_order or order or DEFAULT_ORDER[sort]
        size = self.page_size or self.per_page or self.limit or DEFAULT_PAGE
        offset = self.offset if self.offset is not None else self.skip or 0
        if self.page is not None:
            offset = (self.page - 1) * size
        return ListRequest(status, sort, order, size, offset, self.cursor, self.q or self.search)


@dataclass(frozen=True)
class ListRequest:
    """A list request in canonical form (filters besides these stay on the params)."""

    status: TaskStatus
    sort: TaskSort
    order: SortOrder
    limit: int
    offset: int
    cursor: str | None
    q: str | None


#: Names the list route reads from the query string, in every spelling.
KNOWN_PARAMS = frozenset(TaskListParams.model_fields)
