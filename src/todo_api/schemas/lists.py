"""List (project) shapes: ListCreate, ListUpdate, ListPublic."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from todo_api.schemas.common import Line, UtcDateTime

_NAME = Field(min_length=1, max_length=100, description="Trimmed; 1–100 characters.")


class ListCreate(BaseModel):
    """A new list."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"name": "Garden"}})

    name: Line = _NAME


class ListUpdate(BaseModel):
    """PATCH body: rename the list."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"name": "Garden & balcony"}}
    )

    name: Line = _NAME


class ListPublic(BaseModel):
    """A list as the API returns it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "id": 3,
                "name": "Garden",
                "created_at": "2026-11-27T09:30:00Z",
                "updated_at": "2026-11-27T09:30:00Z",
                "version": 1,
            }
        },
    )

    id: int = Field(description="int64")
    name: str
    created_at: UtcDateTime
    updated_at: UtcDateTime
    version: int = Field(description='Raised by every change; the `ETag` is `"<version>"`.')


class ListTasksOnDelete(Enum):
    """What happens to a list's tasks when it is deleted."""

    refuse = "refuse"
    delete = "delete"
    move = "move"
