"""The benchmark's floor runs the API's statements (bench/floor.py).

For every request `bench/run.py` measures, on every spelling of its URL, the API must
run exactly one statement, and it must be the one the floor runs for that request:
the same SQL text, the same arguments in the same order, under the same user context
(planned for its values for a search). If a service adds a round trip, changes a
statement's shape or the way a request maps to it, this fails and shows what the API
ran, and the floor (or the benchmark) must follow.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from starlette.datastructures import QueryParams

from todo_api.db.database import Database, Session
from todo_api.db.statements import Statement

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


floor = _load("floor")
endpoints = _load("endpoints")


class Recorded:
    """What the API ran during one request."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, list[Any]]] = []
        self.searches: list[bool] = []

    def clear(self) -> None:
        self.statements.clear()
        self.searches.clear()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    seen = Recorded()
    execute = Session.execute
    context_arguments = Database.context_arguments

    async def recording_execute(
        self: Session, statement: Any, params: dict[str, Any] | None = None
    ) -> Any:
        if isinstance(statement, Statement):
            seen.statements.append((statement.sql, statement.arguments(params)))
        else:  # compiled per call: the floor has no such statement
            seen.statements.append((f"(not a Statement) {statement}", []))
        return await execute(self, statement, params)

    def recording_context(self: Database, user_id: str, custom_plans: bool) -> Any:
        seen.searches.append(custom_plans)
        return context_arguments(self, user_id, custom_plans)

    monkeypatch.setattr(Session, "execute", recording_execute)
    monkeypatch.setattr(Database, "context_arguments", recording_context)
    return seen


class Sent:
    """One benchmark request, as the floor's planners take it."""

    def __init__(self, user: str, task: int, url: str, body: bytes | None, if_match: str | None):
        self.user = user
        self.task = task
        self.query = QueryParams(urlsplit(url).query)
        self.data = json.loads(body) if body else {}
        self.if_match = if_match


def _planners(quota: int) -> dict[str, Callable[[Sent], Any]]:
    return {
        "list": lambda r: floor.plan_list(r.user, r.query),
        "list_tag": lambda r: floor.plan_list(r.user, r.query),
        "list_q": lambda r: floor.plan_list(r.user, r.query),
        "get": lambda r: floor.plan_get(r.user, r.task),
        "create": lambda r: floor.plan_create(r.user, r.data, quota),
        "patch": lambda r: floor.plan_patch(r.user, r.task, r.data, r.if_match),
        "patch_if_match": lambda r: floor.plan_patch(r.user, r.task, r.data, r.if_match),
        "complete": lambda r: floor.plan_toggle(r.user, r.task),
    }


def test_every_endpoint_has_a_floor_plan() -> None:
    assert set(_planners(1)) == set(endpoints.ENDPOINTS)


@pytest.mark.parametrize("spelling", list(endpoints.SPELLINGS))
@pytest.mark.parametrize("name", list(endpoints.ENDPOINTS))
async def test_the_api_runs_the_floors_statement(
    name: str, spelling: str, app: FastAPI, new_user: Callable[..., Any], recorded: Recorded
) -> None:
    endpoint = endpoints.ENDPOINTS[name]
    user = new_user()
    task = await user.create_task(f"Buy {endpoints.SEARCH_TERM}", tags=["Errand", "Home"])
    url = endpoint.url(spelling, user=user.id, task_id=task["id"], tag="home")
    body = endpoint.payload(7)
    headers = {"Content-Type": "application/json"} if body else {}
    if endpoint.if_match:
        headers["If-Match"] = f'"{task["version"]}"'
    recorded.clear()

    response = await user.request(endpoint.method, url, content=body, headers=headers)

    assert response.status_code == (201 if endpoint.method == "POST" else 200), response.text
    if not endpoint.write:
        assert response.json(), "the request should find the task"
    sent = Sent(user.id, task["id"], url, body, headers.get("If-Match"))
    plan = _planners(app.state.settings.max_tasks_per_user)[name](sent)
    assert plan is not None, f"the floor refuses {endpoint.label(spelling)}"
    assert recorded.statements == [(plan.statement.sql, plan.arguments)], (
        f"{endpoint.label(spelling)}: the API ran\n"
        + "\n".join(f"{sql}\n  with {args}" for sql, args in recorded.statements)
    )
    assert recorded.searches == [plan.search]
