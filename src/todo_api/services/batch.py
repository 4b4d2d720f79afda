"""Bulk changes: every operation through the same service function as its single route,
in the request's one transaction, so the batch is all or nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from todo_api.db.constraints import database_problem
from todo_api.db.database import Session
from todo_api.errors import AppError, PreconditionRequired
from todo_api.schemas.batch import (
    BatchRequest,
    BatchResult,
    CompleteOperation,
    CreateOperation,
    DeleteOperation,
    Operation,
    UpdateOperation,
)
from todo_api.schemas.tasks import TaskPublic
from todo_api.services import task_writes
from todo_api.services.quotas import Quotas
from todo_api.services.versions import Precondition


async def _apply(
    session: Session,
    user_id: str,
    operation: Operation,
    quotas: Quotas,
    require_version: bool,
) -> tuple[int, int, Mapping[str, Any] | None]:
    if isinstance(operation, CreateOperation):
        row = await task_writes.create_task(session, user_id, operation.data, quotas)
        return 201, int(row["id"]), row
    precondition = Precondition.from_version(operation.if_version)
    if precondition is None and require_version:
        raise PreconditionRequired(
            "This server requires `if_version` on every operation but `create`."
        )
    if isinstance(operation, UpdateOperation):
        row = await task_writes.update_task(
            session, user_id, operation.id, operation.data, quotas, precondition
        )
        return 200, operation.id, row
    if isinstance(operation, CompleteOperation):
        row = await task_writes.set_completion(
            session, user_id, operation.id, operation.completed, quotas, precondition
        )
        return 200, operation.id, row
    assert isinstance(operation, DeleteOperation)
    await task_writes.delete_task(session, user_id, operation.id, precondition)
    return 204, operation.id, None


async def apply_batch(
    session: Session,
    user_id: str,
    batch: BatchRequest,
    quotas: Quotas,
    require_version: bool = False,
) -> list[BatchResult]:
    """Apply the operations in order. The first failure is raised with its `index` (the
    whole batch is then rolled back by the request's transaction); a stale `if_version`
    is a 412 whose `current` is the task as it is now."""
    results = []
    for index, operation in enumerate(batch.operations):
        try:
            status, task_id, row = await _apply(
                session, user_id, operation, quotas, require_version
            )
        except AppError as error:
            error.extra["index"] = index
            error.detail = f"Operation {index}: {error.detail}"
            raise
        except asyncpg.PostgresError as error:
            problem = database_problem(error)
            if problem is None:
                raise
            problem.extra["index"] = index
            problem.detail = f"Operation {index}: {problem.detail}"
            raise problem from error
        task = TaskPublic.model_validate(row) if row is not None else None
        results.append(
            BatchResult(index=index, op=operation.op, status=status, id=task_id, task=task)
        )
    return results
