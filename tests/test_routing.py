"""The route table: no route can shadow another, and aliases reach the same handlers."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Match

from tests.conftest import User
from todo_api.auth.principal import RESERVED_USER_IDS
from todo_api.config import Settings
from todo_api.deps import ContextRoute, uses_context
from todo_api.main import create_app


@pytest.fixture(scope="module")
def routes() -> list[Any]:
    """Every route in matching order, as the router will try them."""
    app = create_app(Settings(_env_file=None, jwt_secret="x" * 40))  # type: ignore[call-arg]
    return [
        r
        for r in iter_route_contexts(app.routes)
        if r.methods and r.path.startswith(("/api", "/healthz", "/readyz"))
    ]


def _sample_path(template: str) -> str:
    # Concrete values that no literal segment could claim.
    def value(match: re.Match[str]) -> str:
        return "u-sample" if match.group(1) == "user_id" else "12345"

    return re.sub(r"\{(\w+)\}", value, template)


def _first_match(routes: list[Any], path: str, method: str) -> Any:
    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def _key(route: Any) -> tuple[str, frozenset[str]]:
    return route.path, frozenset(route.methods)


def test_every_route_is_reached_by_its_own_paths(routes: list[Any]) -> None:
    assert len(routes) > 10
    for route in routes:
        for method in route.methods:
            path = _sample_path(route.path)
            found = _first_match(routes, path, method)
            assert found is not None and _key(found) == _key(route), f"{method} {path} is shadowed"


async def test_short_task_paths_never_reach_the_profile(alice: User) -> None:
    created = await alice.post("/api/tasks", json={"title": "short"})
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(f"/api/tasks/{created.json()['id']}")
    listed = await alice.get("/api/tasks")
    assert [task["title"] for task in listed.json()] == ["short"]
    refused = await alice.patch("/api/tasks", json={"display_name": "x"})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "DELETE, GET, POST"
    assert (await alice.get("/api/me")).json()["display_name"] is None


@pytest.mark.parametrize("word", sorted(RESERVED_USER_IDS - {"me"}))
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_reserved_words_are_never_treated_as_a_user_id(
    alice: User, word: str, method: str
) -> None:
    response = await alice.request(method, f"/api/{word}", json={})
    assert response.status_code in {200, 404, 405, 422}, response.text
    if response.status_code == 200:
        assert not isinstance(response.json(), dict) or "timezone" not in response.json()
    profile = (await alice.get("/api/me")).json()
    assert profile["created_at"] is None  # nothing was written to alice's profile


ALIAS_PREFIXES = ("/api/tasks", "/api/lists", "/api/tags", "/api/reminders", "/api/changes")


def test_only_the_canonical_spelling_is_in_the_schema(routes: list[Any]) -> None:
    api = [r for r in routes if r.path.startswith("/api")]
    assert api and all(r.path.startswith("/api/{user_id}") for r in api)
    schema = create_app(Settings(_env_file=None, jwt_secret="x" * 40)).openapi()  # type: ignore[call-arg]
    assert not [p for p in schema["paths"] if p.startswith(ALIAS_PREFIXES)]
    documented = {(p, m.upper()) for p, ops in schema["paths"].items() for m in ops}
    for route in api:
        assert all((route.path, method) in documented for method in route.methods)


def _outcome(response: Any) -> tuple[int, str | None]:
    problem = response.headers.get("content-type") == "application/problem+json"
    return response.status_code, response.json()["code"] if problem else None


async def test_every_short_alias_answers_as_its_canonical_route(
    routes: list[Any], alice: User
) -> None:
    """Each route under `/api/{user_id}/<resource>` is also `/api/<resource>...`, with the
    same answer (sample ids that exist for nobody: no request changes anything)."""
    checked = set()
    for route in routes:
        if not route.path.startswith(("/api/{user_id}/",)):
            continue
        for method in route.methods:
            canonical = _sample_path(route.path).replace("/api/u-sample/", "/api/me/", 1)
            short = canonical.replace("/api/me/", "/api/", 1)
            assert short.startswith(ALIAS_PREFIXES), short
            body = {} if method in {"POST", "PUT", "PATCH"} else None
            expected = _outcome(await alice.request(method, canonical, json=body))
            answered = _outcome(await alice.request(method, short, json=body))
            assert answered == expected, f"{method} {short}"
            checked.add(short.split("/")[2])
    assert checked == {prefix.split("/")[2] for prefix in ALIAS_PREFIXES}


def _calls(dependant: Any) -> Any:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def test_no_endpoint_or_dependency_runs_in_a_thread(routes: list[Any]) -> None:
    # FastAPI runs plain `def` endpoints and dependencies in a worker thread: a
    # hand-off per call that costs more than the work on a busy server.
    for route in routes:
        for call in _calls(route.dependant):
            if call is None:
                continue
            assert inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call), (
                f"{route.path}: {getattr(call, '__name__', call)} is not async"
            )


def test_every_route_that_takes_the_context_opens_it(routes: list[Any]) -> None:
    # `ContextDep` reads the transaction `ContextRoute` opens; on any other route class
    # every request would fail.
    takes_context = [r for r in routes if uses_context(r.dependant)]
    assert len(takes_context) >= 20
    for route in takes_context:
        assert isinstance(route.original_route, ContextRoute), route.path
    # The health probes need no transaction, and open none.
    for route in routes:
        if route.path in {"/healthz", "/readyz"}:
            assert not uses_context(route.dependant)
