"""Change feed shapes: ChangeKind, ChangeOp, Change, ChangeFeed."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from todo_api.schemas.lists import ListPublic
from todo_api.schemas.tags import TagPublic
from todo_api.schemas.tasks import TaskPublic


class ChangeKind(Enum):
    task = "task"
    list = "list"
    tag = "tag"


class ChangeOp(Enum):
    upsert = "upsert"
    delete = "delete"


class Change(BaseModel):
    """One changed object, at its latest change within the page."""

    kind: ChangeKind
    id: int = Field(description="The object's id (int64).")
    op: ChangeOp = Field(
        description="`upsert`: created or changed, `object` is its current state; "
        "`delete`: gone, `object` is null. Completing a task is an upsert."
    )
    reason: str = Field(
        description="Why: `created`, `updated`, `recurrence` (next occurrence of a "
        "recurring task), `deleted`, `parent_deleted` (subtask of a deleted task), "
        "`list_deleted` (deleted with its list), `merged` (tag merged into another)."
    )
    version: int = Field(description="The object's version (for a delete: its last one).")
    object: TaskPublic | ListPublic | TagPublic | None = Field(
        description="The current object for an upsert (as `GET` returns it); null for a delete."
    )


class ChangeFeed(BaseModel):
    """A page of the change feed."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "changes": [
                    {
                        "kind": "task",
                        "id": 41,
                        "op": "delete",
                        "reason": "deleted",
                        "version": 4,
                        "object": None,
                    }
                ],
                "next": "WyJjaGFuZ2VzIl0...",
                "has_more": False,
            }
        }
    )

    changes: list[Change]
    next: str = Field(description="Pass as `since` on the next call (opaque).")
    has_more: bool = Field(description="More changes are waiting: call again right away.")
