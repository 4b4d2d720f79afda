"""Database errors that stand for a client mistake, as the `AppError` each one means.

Constraint names are stable (see the naming convention in `models.py`). A violated
composite foreign key means "that id does not exist for this user", whether it belongs
to nobody or to someone else: the message never says which, nor echoes the id.
"""

from __future__ import annotations

import asyncpg

from todo_api.errors import AppError, Conflict, NotFound, Unprocessable

_ON_WRITE: dict[str, tuple[type[AppError], str, str]] = {
    "fk_tasks_user_id_list_id_lists": (
        Unprocessable,
        "list_not_found",
        "The list does not exist for this user.",
    ),
    "fk_tasks_user_id_parent_id_tasks": (
        Unprocessable,
        "parent_not_found",
        "The parent task does not exist for this user.",
    ),
    "fk_task_tags_user_id_task_id_tasks": (
        NotFound,
        "task_not_found",
        "The task does not exist for this user.",
    ),
    "fk_task_tags_user_id_tag_id_tags": (
        NotFound,
        "tag_not_found",
        "The tag does not exist for this user.",
    ),
    "ck_tasks_recurrence_due": (
        Unprocessable,
        "recurrence_needs_due",
        "A recurring task needs a due date; clear `recurrence` first.",
    ),
    "ck_tasks_parent_not_self": (
        Unprocessable,
        "parent_cycle",
        "A task cannot be its own parent.",
    ),
    "uq_tasks_user_id_list_id_position": (
        Conflict,
        "position_conflict",
        "Another change reordered this list at the same time; retry.",
    ),
    "uq_tags_user_id_name_key": (
        Conflict,
        "tag_conflict",
        "Another change created the same tag at the same time; retry.",
    ),
}
#: The range of dates (`todo_api.date_range`), by constraint: the field it guards. Most
#: values are refused by validation; a local date-time is resolved in the profile's zone
#: by the database, so only there can its last hours at either end be told apart.
_RANGE_FIELDS = {
    "ck_tasks_due_date_range": "due_date",
    "ck_tasks_due_at_range": "due_date",
    "ck_tasks_remind_at_range": "remind_at",
}
#: Violations reported when the referenced row is deleted while rows still point at it.
_ON_DELETE: dict[str, tuple[type[AppError], str, str]] = {
    "fk_tasks_user_id_list_id_lists": (
        Conflict,
        "list_not_empty",
        "The list still has tasks: delete them or move them elsewhere first.",
    ),
}
_INVALID_PARAMETER = "22023"
#: deadlock_detected, serialization_failure: the database aborted one of two concurrent
#: transactions; lock_not_available: a lock wait outlasted the `lock_timeout` an
#: idempotency-key claim sets for its transaction. The client's retry will succeed.
_RETRYABLE = {"40P01", "40001", "55P03"}


def database_problem(error: BaseException) -> AppError | None:
    """The clean client error a database error stands for, or None when it is a bug."""
    cause = error
    if not isinstance(cause, asyncpg.PostgresError):
        return None
    message = str(getattr(cause, "message", "") or "")
    if getattr(cause, "sqlstate", None) in _RETRYABLE:
        return Conflict(
            "A concurrent change to the same data got in the way; retry the request.",
            code="concurrent_update",
        )
    if getattr(cause, "sqlstate", None) == _INVALID_PARAMETER and "time zone" in message:
        return Unprocessable(
            "The profile's time zone is not known to the database server.",
            code="timezone_unsupported",
        )
    constraint = getattr(cause, "constraint_name", None)
    if not isinstance(constraint, str):
        return None
    if constraint in _RANGE_FIELDS:
        field = _RANGE_FIELDS[constraint]
        return Unprocessable(
            f"`{field}` must be in the years 1900 to 2999 once the time zone is applied.",
            code="date_out_of_range",
            extra={
                "errors": [
                    {
                        "loc": ["body", field],
                        "msg": "must be in the years 1900 to 2999 (UTC)",
                        "type": "date_out_of_range",
                    }
                ]
            },
        )
    table = _ON_DELETE if message.startswith("update or delete") else _ON_WRITE
    known = table.get(constraint)
    if known is None:
        return None
    kind, code, detail = known
    return kind(detail, code=code)
