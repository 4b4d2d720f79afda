"""The pre-serialised task responses render exactly what `TaskPublic` does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter

from todo_api.http.responses import task_response, tasks_response
from todo_api.schemas.tasks import TaskCompleted, TaskPublic


def _row(**changes: Any) -> dict[str, Any]:
    created = datetime(2026, 11, 27, 9, 30, 0, 123456, tzinfo=UTC)
    row: dict[str, Any] = {
        "id": 42,
        "user_id": "usr_8f2k",
        "title": "Water the plants",
        "description": None,
        "completed": False,
        "completed_at": None,
        "created_at": created,
        "updated_at": created + timedelta(hours=1),
        "priority": 2,
        "due_date": None,
        "due_at": None,
        "due_sort_at": None,
        "recurrence": None,
        "repeat_from": "due",
        "previous_occurrence_id": None,
        "remind_at": None,
        "reminder_dismissed_at": None,
        "list_id": None,
        "parent_id": None,
        "position": "s0000000000000000042",
        "version": 3,
        "tags": [],
        "next_occurrence_id": None,
    }
    row.update(changes)
    return row


ROWS = [
    _row(),
    _row(
        id=43,
        description="The ones on the balcony",
        completed=True,
        completed_at=datetime(2026, 11, 28, tzinfo=UTC),
        priority=3,
        tags=["home", "Garden"],
        due_date=date(2026, 12, 1),
        due_sort_at=datetime(2026, 11, 30, 23, tzinfo=UTC),
        recurrence="FREQ=WEEKLY",
        list_id=3,
        parent_id=7,
        previous_occurrence_id=12,
        next_occurrence_id=99,
        remind_at=datetime(2026, 12, 1, 8, tzinfo=UTC),
    ),
    _row(
        id=44,
        priority=0,
        due_at=datetime(2026, 12, 1, 17, 0, 0, 5, tzinfo=UTC),
        due_sort_at=datetime(2026, 12, 1, 17, 0, 0, 5, tzinfo=UTC),
        reminder_dismissed_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
    ),
]


def test_one_task_is_rendered_as_task_public() -> None:
    for row in ROWS:
        expected = TaskPublic.model_validate(row).model_dump_json().encode()
        response = task_response(row)
        assert response.body == expected
        assert response.headers["content-type"] == "application/json"


def test_a_page_is_rendered_as_a_list_of_task_public() -> None:
    adapter = TypeAdapter(list[TaskPublic])
    expected = adapter.dump_json([TaskPublic.model_validate(row) for row in ROWS])
    assert orjson.loads(tasks_response(ROWS).body) == orjson.loads(expected)
    assert tasks_response([]).body == b"[]"


def test_completion_is_rendered_as_task_completed() -> None:
    row = {**ROWS[1], "open_subtask_ids": [5, 6], "was_completed": False, "zone": "UTC"}
    expected = TaskCompleted.model_validate(row).model_dump_json().encode()
    assert task_response(row, completion=True).body == expected


def test_status_and_headers() -> None:
    response = task_response(ROWS[0], status_code=201, headers={"Location": "/x"})
    assert response.status_code == 201
    assert response.headers["location"] == "/x"
