"""Bulk changes: up to 100 operations applied atomically, one result each."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from todo_api.schemas.tasks import TaskCreate, TaskPublic, TaskUpdate
from todo_api.schemas.values import ObjectId

MAX_OPERATIONS = 100


class _Operation(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateOperation(_Operation):
    op: Literal["create"]
    data: TaskCreate


#: Like `If-Match` on the single routes: applied only if the task is at this version.
_IF_VERSION = Field(
    default=None,
    ge=1,
    le=2**31 - 1,
    description="Apply only if the task's `version` is this (else 412 with `current`).",
)


class UpdateOperation(_Operation):
    op: Literal["update"]
    id: ObjectId
    data: TaskUpdate
    if_version: int | None = _IF_VERSION


class CompleteOperation(_Operation):
    """Toggle, or set with `completed`."""

    op: Literal["complete"]
    id: ObjectId
    completed: StrictBool | None = None
    if_version: int | None = _IF_VERSION


class DeleteOperation(_Operation):
    op: Literal["delete"]
    id: ObjectId
    if_version: int | None = _IF_VERSION


Operation = Annotated[
    CreateOperation | UpdateOperation | CompleteOperation | DeleteOperation,
    Field(discriminator="op"),
]


class BatchRequest(_Operation):
    """Operations applied in order, all or nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "operations": [
                    {"op": "create", "data": {"title": "Pack", "tags": ["trip"]}},
                    {"op": "update", "id": 42, "data": {"priority": "high"}},
                    {"op": "complete", "id": 41},
                    {"op": "delete", "id": 40},
                ]
            }
        }
    )

    operations: list[Operation] = Field(min_length=1, max_length=MAX_OPERATIONS)


class BatchResult(BaseModel):
    """The outcome of one operation: the status it would have had on its own."""

    index: int
    op: str
    status: int
    id: int
    task: TaskPublic | None = Field(description="Null for a delete.")


class BatchResponse(BaseModel):
    """One result per operation, in order."""

    results: list[BatchResult]
