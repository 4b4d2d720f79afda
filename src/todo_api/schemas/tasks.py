"""Task shapes: TaskCreate, TaskReplace, TaskUpdate, TaskCompletion, TaskPublic."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from typing_extensions import Self

from todo_api.schemas.common import Line, Text, UtcDateTime

_TITLE = Field(min_length=1, max_length=200, description="Trimmed; 1–200 characters.")
_DESCRIPTION = Field(default=None, max_length=2000, description="Up to 2000 characters.")


class _Input(BaseModel):
    # A client can never set ids, owners or timestamps: unknown fields are refused.
    # Booleans are `StrictBool`: lax parsing would take "yes", "off", 0 or 1 for one.
    model_config = ConfigDict(extra="forbid")


class TaskCreate(_Input):
    """A new task."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"title": "Buy milk", "description": "2 litres, oat"}}
    )

    title: Line = _TITLE
    description: Text | None = _DESCRIPTION
    completed: StrictBool = False


class TaskReplace(_Input):
    """PUT body: replaces title, description and completed (omitted ones take their defaults)."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"title": "Buy milk", "description": None, "completed": True}}
    )

    title: Line = _TITLE
    description: Text | None = _DESCRIPTION
    completed: StrictBool = False


class TaskUpdate(_Input):
    """PATCH body: only the fields present change."""

    model_config = ConfigDict(json_schema_extra={"example": {"completed": True}})

    title: Line | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = _DESCRIPTION
    completed: StrictBool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        for name in ("title", "completed"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"`{name}` may be omitted but not null")
        return self


class TaskCompletion(_Input):
    """Body of `/complete`: omit it (or `completed`) to toggle."""

    completed: StrictBool | None = None


class TaskPublic(BaseModel):
    """A task as the API returns it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "id": 42,
                "user_id": "usr_8f2k",
                "title": "Buy milk",
                "description": "2 litres, oat",
                "completed": False,
                "completed_at": None,
                "created_at": "2026-11-27T09:30:00Z",
                "updated_at": "2026-11-27T09:30:00Z",
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


class TaskStatus(Enum):
    all = "all"
    pending = "pending"
    completed = "completed"


class TaskSort(Enum):
    created = "created"
    title = "title"


class SortOrder(Enum):
    asc = "asc"
    desc = "desc"
