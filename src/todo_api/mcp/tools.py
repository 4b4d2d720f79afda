"""The tools: each one a REST operation's service call, with its arguments model, its
result model and its hints for the agent.

A tool runs in the caller's transaction (`deps.Context`, as a route does) and returns
the JSON REST would answer, plus a one-line summary for the model to read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import orjson
from pydantic import BaseModel

from todo_api.deps import Context
from todo_api.http.preconditions import require
from todo_api.http.responses import completed_dict, task_dict
from todo_api.mcp.arguments import (
    AddTaskArguments,
    CompleteTaskArguments,
    DeleteTaskArguments,
    Lists,
    ListTasksArguments,
    NoArguments,
    Tags,
    TaskArguments,
    TaskPage,
    UpdateTaskArguments,
)
from todo_api.schemas.lists import ListPublic
from todo_api.schemas.tags import TagPublic
from todo_api.schemas.tasks import TaskCompleted, TaskPublic
from todo_api.services import lists, tags, task_list, task_writes, tasks
from todo_api.services.versions import Precondition


@dataclass(frozen=True)
class Outcome:
    """What a tool produced: the structured result and a short text for the model."""

    data: dict[str, Any]
    text: str


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    result: type[BaseModel]
    hints: types.ToolAnnotations
    run: Callable[[Context, Any], Awaitable[Outcome]]
    #: Whether a call is a text search (planned for its values, as REST does).
    searches: Callable[[Any], bool] = lambda _: False

    def describe(self) -> types.Tool:
        """The tool as `tools/list` shows it."""
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.arguments.model_json_schema(),
            output_schema=self.result.model_json_schema(mode="serialization"),
            annotations=self.hints,
        )


def _json(value: Any) -> Any:
    # The bytes REST sends (UTC timestamps with `Z`), read back as JSON values.
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_UTC_Z))


def _task(row: Any, text: str) -> Outcome:
    task: dict[str, Any] = _json(task_dict(row))
    return Outcome(task, text.format(id=task["id"], title=task["title"]))


def _precondition(ctx: Context, version: int | None) -> Precondition | None:
    precondition = Precondition.from_version(version)
    require(ctx.settings, precondition)
    return precondition


async def _add_task(ctx: Context, args: AddTaskArguments) -> Outcome:
    row = await task_writes.create_task(ctx.session, ctx.user_id, args, ctx.quotas)
    return _task(row, 'Created task {id}: "{title}".')


async def _list_tasks(ctx: Context, args: ListTasksArguments) -> Outcome:
    query = task_list.ListQuery.from_params(args)
    page = await task_list.list_tasks(ctx.session, ctx.user_id, query, ctx.codec)
    found = [task_dict(row) for row in page.rows]
    text = f"{len(found)} task(s)."
    if page.next_cursor is not None:
        text += " More: call again with `cursor` set to `next_cursor`."
    return Outcome(_json({"tasks": found, "next_cursor": page.next_cursor}), text)


async def _get_task(ctx: Context, args: TaskArguments) -> Outcome:
    row = await tasks.get_task(ctx.session, ctx.user_id, args.task_id)
    return _task(row, 'Task {id}: "{title}".')


async def _update_task(ctx: Context, args: UpdateTaskArguments) -> Outcome:
    precondition = _precondition(ctx, args.if_version)
    row = await task_writes.update_task(
        ctx.session, ctx.user_id, args.task_id, args, ctx.quotas, precondition
    )
    return _task(row, 'Updated task {id}: "{title}".')


async def _complete_task(ctx: Context, args: CompleteTaskArguments) -> Outcome:
    precondition = _precondition(ctx, args.if_version)
    row = await task_writes.set_completion(
        ctx.session, ctx.user_id, args.task_id, args.completed, ctx.quotas, precondition
    )
    task: dict[str, Any] = _json(completed_dict(row))
    state = "completed" if task["completed"] else "reopened"
    return Outcome(task, f'Task {task["id"]} {state}: "{task["title"]}".')


async def _delete_task(ctx: Context, args: DeleteTaskArguments) -> Outcome:
    precondition = _precondition(ctx, args.if_version)
    row = await task_writes.delete_task(ctx.session, ctx.user_id, args.task_id, precondition)
    return _task(row, 'Deleted task {id}: "{title}" (and its subtasks).')


async def _list_lists(ctx: Context, _: NoArguments) -> Outcome:
    rows = await lists.list_lists(ctx.session, ctx.user_id)
    found = [ListPublic.model_validate(row).model_dump(mode="json") for row in rows]
    return Outcome({"lists": found}, f"{len(found)} list(s).")


async def _list_tags(ctx: Context, _: NoArguments) -> Outcome:
    rows = await tags.list_tags(ctx.session, ctx.user_id)
    found = [TagPublic.model_validate(row).model_dump(mode="json") for row in rows]
    return Outcome({"tags": found}, f"{len(found)} tag(s).")


def _hints(*, read_only: bool, destructive: bool = False, idempotent: bool = False) -> Any:
    return types.ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent or read_only,
        open_world_hint=False,
    )


def _searching(args: ListTasksArguments) -> bool:
    return bool(args.q or args.search)


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "add_task",
            "Add a task",
            "Create a task for the signed-in user (title required; optional description, "
            "priority, tags, due date, recurrence, reminder, list, parent). Returns the task.",
            AddTaskArguments,
            TaskPublic,
            _hints(read_only=False),
            _add_task,
        ),
        Tool(
            "list_tasks",
            "List tasks",
            "The signed-in user's tasks, one page at a time: filter by status, priority, "
            "tags, list, parent or due dates, search text with `q`, sort with `sort` and "
            "`order`. Pass `next_cursor` back as `cursor` for the next page.",
            ListTasksArguments,
            TaskPage,
            _hints(read_only=True),
            _list_tasks,
            _searching,
        ),
        Tool(
            "get_task",
            "Get a task",
            "One task of the signed-in user by id.",
            TaskArguments,
            TaskPublic,
            _hints(read_only=True),
            _get_task,
        ),
        Tool(
            "update_task",
            "Update a task",
            "Change some fields of a task: only the fields given change; null clears "
            "description, due_date, recurrence, remind_at, list_id or parent_id; `tags` "
            "replaces the whole set.",
            UpdateTaskArguments,
            TaskPublic,
            _hints(read_only=False, destructive=True, idempotent=True),
            _update_task,
        ),
        Tool(
            "complete_task",
            "Complete a task",
            "Mark a task done (`completed: true`) or not done (`completed: false`); "
            "without `completed`, flip it. Completing a recurring task creates the next one.",
            CompleteTaskArguments,
            TaskCompleted,
            _hints(read_only=False),
            _complete_task,
        ),
        Tool(
            "delete_task",
            "Delete a task",
            "Delete a task for good, with its subtasks. Returns the task as it was.",
            DeleteTaskArguments,
            TaskPublic,
            _hints(read_only=False, destructive=True, idempotent=True),
            _delete_task,
        ),
        Tool(
            "list_lists",
            "List the lists",
            "The signed-in user's lists (projects), oldest first. Tasks without a list "
            "are in the inbox (`list_id: 0` in list_tasks).",
            NoArguments,
            Lists,
            _hints(read_only=True),
            _list_lists,
        ),
        Tool(
            "list_tags",
            "List the tags",
            "The signed-in user's tags, with how many tasks carry each.",
            NoArguments,
            Tags,
            _hints(read_only=True),
            _list_tags,
        ),
    )
}
