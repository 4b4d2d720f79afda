"""Helpers shared by the route tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import User
from todo_api.http.problems import STATUS_TITLES
from todo_api.services import clock


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code, carrying the request
    id, and its validation errors (if any) never echo the input."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] == STATUS_TITLES[status]
    assert body["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 422 and code in {
        "validation_failed",
        "json_invalid",
        "date_out_of_range",
        "recurrence_invalid",
        "timezone_unsupported",
    }:
        assert body["errors"]
    for item in body.get("errors") or []:
        assert set(item) == {"loc", "msg", "type"}
    return body


def same_problem(first: httpx.Response, second: httpx.Response) -> None:
    """Two answers that must be indistinguishable (another user's id vs a missing one)."""
    assert first.status_code == second.status_code, (first.text, second.text)
    strip = ("request_id", "detail")
    assert {k: v for k, v in first.json().items() if k not in strip} == {
        k: v for k, v in second.json().items() if k not in strip
    }


def ids(tasks: list[dict[str, Any]]) -> list[int]:
    return [task["id"] for task in tasks]


async def create(user: User, title: str = "A task", **fields: Any) -> dict[str, Any]:
    return await user.create_task(title, **fields)


async def create_list(user: User, name: str = "A list") -> dict[str, Any]:
    response = await user.post("/api/me/lists", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def read(user: User, task_id: int) -> dict[str, Any]:
    response = await user.get(f"/api/me/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listing(user: User, **params: Any) -> list[dict[str, Any]]:
    """Every task the list endpoint returns for these parameters, across pages."""
    collected: list[dict[str, Any]] = []
    response = await user.get("/api/me/tasks", params={"limit": 200, **params})
    while True:
        assert response.status_code == 200, response.text
        collected += response.json()
        next_url = response.links.get("next", {}).get("url")
        if next_url is None:
            return collected
        response = await user.get(next_url)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@contextmanager
def frozen_now(monkeypatch: pytest.MonkeyPatch, instant: datetime) -> Iterator[None]:
    """Make the service's clock (overdue, recurrence from completion, reminders) read
    `instant`."""
    with monkeypatch.context() as patch:
        patch.setattr(clock, "now", lambda: instant)
        yield
