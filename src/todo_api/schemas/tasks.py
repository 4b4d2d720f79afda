"""Task shapes: TaskCreate, TaskUpdate, TaskCompletion, TaskMove, TaskPublic,
TaskCompleted, and the list endpoint's enums."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from todo_api.schemas.common import Line, Spelled, Text, UtcDateTime, spellings
from todo_api.schemas.values import (
    DueValue,
    ObjectId,
    Priority,
    RecurrenceRule,
    ReminderTime,
    RepeatFrom,
    TagList,
)

_TITLE = Field(min_length=1, max_length=200, description="Trimmed; 1–200 characters.")
_DESCRIPTION = Field(default=None, max_length=2000, description="Up to 2000 characters.")
_TAGS = Field(description="Tag names: trimmed, 1–50 characters, at most 20, case-insensitive.")
_DUE = Field(
    default=None,
    description="`YYYY-MM-DD` (all-day), an RFC 3339 date-time with offset, or a local "
    "date-time (`2026-12-01T17:00`, in the profile's zone); null: no due date.",
)
_RECURRENCE = Field(default=None, description="RRULE; needs a due date. Null stops the series.")
_LIST = Field(default=None, description="The list (project); null: the inbox.")
_PARENT = Field(default=None, description="Parent task (same user and list); null: top level.")
_REMIND = Field(
    default=None,
    description="When to remind (a local date-time is read in the profile's zone); "
    "null: no reminder.",
)


class _Input(BaseModel):
    # A client can never set ids, owners or timestamps: unknown fields are refused.
    # Booleans are `StrictBool`: lax parsing would take "yes", "off", 0 or 1 for one.
    model_config = ConfigDict(extra="forbid")


class TaskCreate(_Input):
    """A new task."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "title": "Water the plants",
                "description": "The ones on the balcony",
                "priority": "medium",
                "tags": ["home"],
                "due_date": "2026-12-01",
                "recurrence": "FREQ=WEEKLY;BYDAY=MO,TH",
                "remind_at": "2026-12-01T08:00:00Z",
                "list_id": 3,
            }
        }
    )

    title: Line = _TITLE
    description: Text | None = _DESCRIPTION
    completed: StrictBool = False
    priority: Priority = Priority.none
    tags: TagList = Field(default_factory=list, description=_TAGS.description)
    due_date: DueValue | None = _DUE
    recurrence: RecurrenceRule | None = _RECURRENCE
    repeat_from: RepeatFrom = RepeatFrom.due
    remind_at: ReminderTime | None = _REMIND
    list_id: ObjectId | None = _LIST
    parent_id: ObjectId | None = _PARENT

    @model_validator(mode="after")
    def _recurrence_needs_due(self) -> Self:
        if self.recurrence is not None and self.due_date is None:
            raise ValueError("a recurring task needs a `due_date`")
        return self


class TaskUpdate(_Input):
    """PATCH and PUT body: every field optional; only the fields present change, `null`
    clears a clearable one (`description`, `due_date`, `recurrence`, `remind_at`,
    `list_id`, `parent_id`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"priority": "high", "tags": ["work", "urgent"], "due_date": None}
        }
    )

    title: Line | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = _DESCRIPTION
    completed: StrictBool | None = None
    priority: Priority | None = None
    tags: TagList | None = Field(default=None, description=_TAGS.description)
    due_date: DueValue | None = _DUE
    recurrence: RecurrenceRule | None = _RECURRENCE
    repeat_from: RepeatFrom | None = None
    remind_at: ReminderTime | None = _REMIND
    list_id: ObjectId | None = Field(
        default=None, description="Moves the task (and its subtasks) to the end of that list."
    )
    parent_id: ObjectId | None = Field(
        default=None, description="Moves the task under that parent (null: top level)."
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        for name in ("title", "completed", "priority", "tags", "repeat_from"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"`{name}` may be omitted but not null")
        return self


class TaskCompletion(_Input):
    """Body of `/complete`: omit it (or `completed`) to toggle."""

    completed: StrictBool | None = None


class TaskMove(_Input):
    """Body of `/move`: where the task goes among its siblings, and in which list/parent.

    `before`/`after` name a sibling (same list and parent); without them the task goes
    to the end. `list_id: null` is the inbox, `parent_id: null` the top level.
    """

    model_config = ConfigDict(json_schema_extra={"example": {"after": 41, "list_id": 3}})

    before: ObjectId | None = None
    after: ObjectId | None = None
    list_id: ObjectId | None = None
    parent_id: ObjectId | None = None

    @model_validator(mode="after")
    def _one_anchor(self) -> Self:
        if self.before is not None and self.after is not None:
            raise ValueError("give `before` or `after`, not both")
        return self


def _from_row(data: Any) -> Any:
    """A database row (with `due_date`/`due_at` and the priority rank) as API fields."""
    if not isinstance(data, Mapping) or "due_at" not in data:
        return data
    fields = dict(data)
    due_at = fields.pop("due_at")
    if due_at is not None:
        fields["due_date"] = due_at
    fields["priority"] = Priority.from_rank(fields["priority"])
    return fields


class TaskPublic(BaseModel):
    """A task as the API returns it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "id": 42,
                "user_id": "usr_8f2k",
                "title": "Water the plants",
                "description": "The ones on the balcony",
                "completed": False,
                "completed_at": None,
                "created_at": "2026-11-27T09:30:00Z",
                "updated_at": "2026-11-27T09:30:00Z",
                "priority": "medium",
                "tags": ["home"],
                "due_date": "2026-12-01",
                "recurrence": "FREQ=WEEKLY;BYDAY=MO,TH",
                "repeat_from": "due",
                "previous_occurrence_id": None,
                "next_occurrence_id": None,
                "remind_at": "2026-12-01T08:00:00Z",
                "reminder_dismissed_at": None,
                "list_id": 3,
                "parent_id": None,
                "position": "s0000000000000000042",
                "version": 3,
            }
        },
    )

    id: int = Field(description="int64")
    user_id: str
    title: str
    description: str | None
    completed: bool
    completed_at: UtcDateTime | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    priority: Priority
    tags: list[str] = Field(description="Sorted case-insensitively.")
    due_date: DueValue | None = Field(
        description="`YYYY-MM-DD` for an all-day task, else an instant in UTC with `Z`."
    )
    recurrence: str | None
    repeat_from: RepeatFrom
    previous_occurrence_id: int | None = Field(description="The occurrence this one follows.")
    next_occurrence_id: int | None = Field(
        description="Set once this occurrence is completed: the task that continues the series."
    )
    remind_at: UtcDateTime | None
    reminder_dismissed_at: UtcDateTime | None
    list_id: int | None = Field(description="Null: the inbox.")
    parent_id: int | None
    position: str = Field(
        description="Manual order among siblings: compare bytewise (never by locale)."
    )
    version: int = Field(
        description='Raised by every change; the `ETag` is `"<version>"`. Send it back in '
        "`If-Match` to make a write fail (412) if the task changed meanwhile."
    )

    @model_validator(mode="before")
    @classmethod
    def _read_row(cls, data: Any) -> Any:
        return _from_row(data)


class TaskCompleted(TaskPublic):
    """The task after `/complete`, with the subtasks still open below it."""

    open_subtask_ids: list[int] = Field(
        default_factory=list, description="Subtasks (at any depth) that are not completed."
    )


class DeletedCount(BaseModel):
    """How many tasks a bulk delete removed (their subtasks went with them)."""

    model_config = ConfigDict(json_schema_extra={"example": {"deleted": 12}})

    deleted: int


class TaskStatus(Spelled):
    all = "all"
    pending = "pending"
    completed = "completed"


class ClearableStatus(Enum):
    completed = "completed"


class TaskSort(Spelled):
    created = "created"
    updated = "updated"
    title = "title"
    due_date = "due_date"
    priority = "priority"
    position = "position"


class SortOrder(Spelled):
    asc = "asc"
    desc = "desc"


class TagMode(Spelled):
    any = "any"
    all = "all"


spellings(
    "TaskStatus",
    {"incomplete": "pending", "active": "pending", "open": "pending", "done": "completed"},
)
spellings("TaskSort", {"created_at": "created", "updated_at": "updated", "due": "due_date"})
spellings("SortOrder", {"ascending": "asc", "descending": "desc"})


#: Newest first for timestamps, high first for priority, ascending otherwise.
DEFAULT_ORDER = {
    TaskSort.created: SortOrder.desc,
    TaskSort.updated: SortOrder.desc,
    TaskSort.title: SortOrder.asc,
    TaskSort.due_date: SortOrder.asc,
    TaskSort.priority: SortOrder.desc,
    TaskSort.position: SortOrder.asc,
}
