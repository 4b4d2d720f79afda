"""The benchmark's floor runs exactly the API's SQL (bench/floor.py, issue 7)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from todo_api.schemas.tasks import SortOrder, TaskSort, TaskStatus
from todo_api.services import task_writes
from todo_api.services import tasks as service


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    path = Path(__file__).parent.parent / "bench" / "floor.py"
    spec = importlib.util.spec_from_file_location("bench_floor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reads_are_the_apis_statements(floor: ModuleType) -> None:
    assert service._GET_TASK.sql == floor.GET_SQL
    for (status, sort, order), sql in floor.LIST_SQL.items():
        api = service._first_page(TaskStatus(status), TaskSort(sort), SortOrder(order))
        assert sql == api.sql, (status, sort, order)


def test_writes_are_the_apis_statements(floor: ModuleType) -> None:
    assert task_writes._UNDATED_INSERT.sql == floor.INSERT_SQL
    prebuilt = task_writes._prebuilt_write(task_writes._TOGGLE_VALUES, True, None)
    assert prebuilt is not None and prebuilt.sql == floor.TOGGLE_SQL
    title_only = task_writes._prebuilt_write({"title": "x"}, False, None)
    assert title_only is not None
    assert title_only.sql == (
        "UPDATE tasks SET title=$1::VARCHAR, updated_at=now() "
        "WHERE tasks.user_id = $2::VARCHAR AND tasks.id = $3::BIGINT "
        f"RETURNING {floor._COLUMNS}"
    )
