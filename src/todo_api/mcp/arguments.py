"""Tool arguments and results: the REST request and response models, reused.

Each tool's input schema is its arguments model's JSON schema, so the tools accept what
the REST API accepts, in the same spellings, with the same limits and messages. An
argument naming a task by id is `task_id`; `if_version` is `If-Match` for one version.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from todo_api.schemas.lists import ListPublic
from todo_api.schemas.tags import TagPublic
from todo_api.schemas.task_query import TaskListParams
from todo_api.schemas.tasks import TaskCompletion, TaskCreate, TaskPublic, TaskUpdate
from todo_api.schemas.values import ObjectId

TaskId = Annotated[ObjectId, Field(description="The task's id (int64).")]
IfVersion = Annotated[
    StrictInt | None,
    Field(
        default=None,
        ge=1,
        description="Apply only if the task is still at this `version` (else "
        "`version_mismatch`). Required when the server runs with REQUIRE_IF_MATCH.",
    ),
]

_FORBID = ConfigDict(extra="forbid")


class NoArguments(BaseModel):
    """This tool takes no arguments."""

    model_config = _FORBID


class AddTaskArguments(TaskCreate):
    """A new task, exactly as `POST /api/{user_id}/tasks` takes it."""


class ListTasksArguments(TaskListParams):
    """Filters, search, sort and paging of `GET /api/{user_id}/tasks`, in the same
    spellings. To page, pass the previous result's `next_cursor` as `cursor`."""

    model_config = _FORBID

    cursor: str | None = Field(
        default=None,
        max_length=1024,
        description="The previous result's `next_cursor`, for the next page (same other "
        "arguments).",
    )


class TaskArguments(BaseModel):
    """One of the caller's tasks."""

    model_config = _FORBID

    task_id: TaskId


class UpdateTaskArguments(TaskUpdate):
    """The task and the fields to change (`PATCH /api/{user_id}/tasks/{id}`): only the
    fields given change; `null` clears a clearable one."""

    task_id: TaskId
    if_version: IfVersion = None


class CompleteTaskArguments(TaskCompletion):
    """`completed: true|false` sets completion; without it, completion flips."""

    task_id: TaskId
    if_version: IfVersion = None


class DeleteTaskArguments(TaskArguments):
    """The task to delete, with its subtasks."""

    if_version: IfVersion = None


class TaskPage(BaseModel):
    """One page of tasks, and the cursor of the next page (null on the last one)."""

    tasks: list[TaskPublic]
    next_cursor: str | None


class Lists(BaseModel):
    """Every list of the caller, oldest first."""

    lists: list[ListPublic]


class Tags(BaseModel):
    """Every tag of the caller, with how many tasks carry it."""

    tags: list[TagPublic]
