"""Tag shapes: TagPublic, TagUpdate."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from todo_api.schemas.values import TagName


class TagPublic(BaseModel):
    """A tag with the number of tasks carrying it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"example": {"id": 7, "name": "work", "task_count": 12, "version": 2}},
    )

    id: int = Field(description="int64")
    name: str
    task_count: int
    version: int = Field(
        description='Raised by every rename; the `ETag` is `"<version>"`. (Not raised when '
        "only `task_count` changes.)"
    )


class TagUpdate(BaseModel):
    """Rename a tag; naming it like another tag (in any case) merges the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"name": "Work"}})

    name: TagName
