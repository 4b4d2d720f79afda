"""Property-based fuzzing of every documented operation, over the live OpenAPI schema,
and of every MCP tool's arguments.

A real uvicorn server runs the application; Schemathesis reads `/openapi.json` from it
and generates requests, valid ("positive") and invalid ("negative"), for each
operation. Three users with real tokens take part:

- the fuzzing user acts on their own data (and names other users in paths);
- the victim owns a few tasks and never sends anything;
- the attacker is given the victim's real ids and user id in path parameters.

Every response must be a non-5xx whose status code, content type, headers and body the
schema documents; the attacker must never succeed on the victim's objects nor see any
of them; the victim's tasks are unchanged at the end.

The seed is fixed (`derandomize`), so a run is repeatable; a failure is reported with
the request that caused it. The run has a time budget: once spent, the remaining
examples are not sent and a warning says so.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TEST_SECRET, make_settings, make_token
from tests.live_server import serve
from tests.mcp_client import connect, first_leaf
from todo_api.config import Settings
from todo_api.main import create_app
from todo_api.mcp.tools import TOOLS

EXAMPLES_PER_MODE = 50
#: Seconds per operation and mode; generous, so it only ever bites on a hung or starved
#: server, and per operation, so one slow operation never leaves the others untested.
OPERATION_BUDGET = 12.0
REQUEST_TIMEOUT = 10.0
STREAM_READ_TIMEOUT = 1.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _operations() -> list[tuple[str, str, GenerationMode]]:
    # Collected from the application's own schema, so a new operation is fuzzed as
    # soon as it exists; the test itself then fetches the live schema from the server.
    # Invalid ("negative") inputs need an input to spoil: a parameter or a body.
    app = create_app(Settings(_env_file=None, jwt_secret=TEST_SECRET))  # type: ignore[call-arg]
    cases = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


OPERATIONS = _operations()


@dataclass
class Party:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Arena:
    base_url: str
    schema: Any
    fuzzer: Party
    victim: Party
    attacker: Party
    victim_tasks: dict[int, dict[str, Any]]
    sent: dict[str, int] = field(default_factory=dict)
    attacks: dict[str, int] = field(default_factory=dict)


def _party(role: str) -> Party:
    sub = f"fuzz-{role}-{uuid.uuid4().hex[:8]}"
    return Party(sub, make_token(sub, ttl=3600, email=f"{sub}@example.com"))


@pytest.fixture(scope="module")
def arena(owner_url: str) -> Iterator[Arena]:
    app = create_app(make_settings(owner_url))
    with serve(app) as base_url, httpx.Client(base_url=base_url) as http:
        victim = _party("victim")
        tasks = {}
        for n in range(3):
            title = f"victim-secret-{n}-{uuid.uuid4().hex[:8]}"
            response = http.post("/api/me/tasks", json={"title": title}, headers=victim.headers)
            assert response.status_code == 201, response.text
            tasks[response.json()["id"]] = response.json()
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        yield Arena(
            base_url=base_url,
            schema=schema,
            fuzzer=_party("fuzzer"),
            victim=victim,
            attacker=_party("attacker"),
            victim_tasks=tasks,
        )
        # However the run went, the victim's tasks are exactly as they were.
        for task_id, before in tasks.items():
            after = http.get(f"/api/me/tasks/{task_id}", headers=victim.headers)
            assert after.status_code == 200 and after.json() == before, after.text


def _positive(case: Any, location: str) -> bool:
    """Whether Schemathesis generated this part of the request valid.

    Only valid parts are replaced with real tokens and ids: replacing a deliberately
    invalid part would turn a negative case into a valid one, and the check that
    invalid requests are refused would then fail for the wrong reason.
    """
    modes = {loc.value: info.mode for loc, info in case.meta.components.items()}
    return modes.get(location, GenerationMode.POSITIVE).is_positive


def _fuzz(arena: Arena, method: str, path: str, mode: GenerationMode) -> None:
    operation = arena.schema[path][method]
    checks = [*CHECKS, negative_data_rejection] if mode.is_negative else CHECKS
    label = f"{method} {path} ({mode.value})"
    arena.sent.setdefault(label, 0)
    arena.attacks.setdefault(label, 0)
    deadline = time.monotonic() + OPERATION_BUDGET

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        role=st.sampled_from(["own", "attack"]),
        user=st.sampled_from(["generated", "me", "self", "victim"]),
        victim_task=st.sampled_from(sorted(arena.victim_tasks)),
    )
    def run(case: Any, role: str, user: str, victim_task: int) -> None:
        if time.monotonic() > deadline and arena.sent[label] > 0:
            return  # budget spent: the warning below reports how far the run got
        party = arena.attacker if role == "attack" else arena.fuzzer
        touches_victim = False
        if _positive(case, "header"):
            case.headers = {**(case.headers or {}), **party.headers}
        params = case.path_parameters or {}
        if _positive(case, "path"):
            if "user_id" in params and user != "generated":
                names = {"me": "me", "self": party.id, "victim": arena.victim.id}
                params["user_id"] = names[user]
                touches_victim = user == "victim"
            if role == "attack" and "task_id" in params:
                params["task_id"] = victim_task
                touches_victim = True
        # An event stream never ends by itself: its opening events come at once, then
        # only keep-alives, so a short read timeout closes it without eating the budget.
        timeout = STREAM_READ_TIMEOUT if path.endswith("/events") else REQUEST_TIMEOUT
        response = case.call(base_url=arena.base_url, timeout=timeout)
        arena.sent[label] += 1
        case.validate_response(response, checks=checks)
        if role == "attack":
            if touches_victim:
                arena.attacks[label] += 1
                assert response.status_code >= 400, (
                    f"the attacker succeeded on the victim's data: {method} "
                    f"{case.formatted_path} -> {response.status_code} {response.text}"
                )
            assert arena.victim.id not in response.text
            for task in arena.victim_tasks.values():
                assert task["title"] not in response.text

    run()
    if time.monotonic() > deadline:
        warnings.warn(
            f"fuzz time budget spent; {label} sent {arena.sent[label]} requests",
            stacklevel=1,
        )


@pytest.mark.parametrize(
    ("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for m, p, g in OPERATIONS]
)
def test_fuzz_operation(arena: Arena, method: str, path: str, mode: GenerationMode) -> None:
    _fuzz(arena, method, path, mode)
    # Generation can run out of distinct inputs for tiny operations (GET /healthz has
    # none), but every operation must actually have been exercised.
    label = f"{method} {path} ({mode.value})"
    assert arena.sent[label] > 0
    if "{task_id}" in path and mode.is_positive:
        assert arena.attacks[label] > 0, "the attacker never got the victim's ids"


def test_every_documented_operation_is_fuzzed() -> None:
    fuzzed = {(method, path) for method, path, _ in OPERATIONS}
    assert len(fuzzed) >= 11
    assert ("PATCH", "/api/{user_id}/tasks/{task_id}/complete") in fuzzed
    negative = {(method, path) for method, path, mode in OPERATIONS if mode.is_negative}
    assert ("POST", "/api/{user_id}/tasks") in negative


def test_the_fuzzed_schema_states_the_range_of_dates(arena: Arena) -> None:
    # Schemathesis generates from these patterns: valid cases stay in 1900-2999 and
    # invalid ones (which must be refused) leave it.
    schema = httpx.get(f"{arena.base_url}/openapi.json").json()
    fields = schema["components"]["schemas"]["TaskCreate"]["properties"]
    remind = next(s for s in fields["remind_at"]["anyOf"] if s.get("type") == "string")
    due = next(s for s in fields["due_date"]["anyOf"] if "anyOf" in s)["anyOf"]
    for stated in (remind, *due):
        assert stated["pattern"] == "^(19|2[0-9])[0-9]{2}-", stated


# --- MCP tools -----------------------------------------------------------------------------
#
# Generated arguments for every tool of `/mcp`, through the official MCP client: mostly
# wrong (unknown names, wrong types, huge numbers, NUL bytes, nesting), some right, with
# the victim's task ids among the ids. Every call must come back as a tool result (never
# a protocol error), a failure as a client error (`status` < 500) with its `code`, and
# nothing of the victim's may appear in any answer.

TOOL_EXAMPLES = 40

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["\x00", "high", "completed", "-due_date", "2026-02-30", "T" * 300])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _tool_arguments(tool: str, ids: list[int]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for `tool`: its own parameter names (and others), any JSON values, ids
    among them; sometimes just a valid-looking id and title."""
    names = list(TOOLS[tool].arguments.model_json_schema().get("properties", {}))
    keys = st.sampled_from(names) | st.text(max_size=12) if names else st.text(max_size=12)
    values = _JSON | st.sampled_from(ids)
    plausible = st.fixed_dictionaries(
        {}, optional={"task_id": st.sampled_from(ids), "title": st.text(min_size=1, max_size=60)}
    )
    return st.dictionaries(keys, values, max_size=6) | plausible


async def _call_tool(base_url: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    async with connect(base_url, token) as client:
        return await client.call_tool(tool, arguments)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_fuzz_tool(arena: Arena, tool: str) -> None:
    label = f"MCP {tool}"
    arena.sent.setdefault(label, 0)
    victim_ids = sorted(arena.victim_tasks)
    deadline = time.monotonic() + OPERATION_BUDGET

    @settings(
        max_examples=TOOL_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(arguments=_tool_arguments(tool, [*victim_ids, 1, 2**63 - 1]))
    def run(arguments: dict[str, Any]) -> None:
        if time.monotonic() > deadline and arena.sent[label] > 0:
            return  # budget spent: the warning below reports how far the run got
        try:
            result = anyio.run(_call_tool, arena.base_url, arena.attacker.token, tool, arguments)
        except BaseException as error:
            raise AssertionError(f"{tool}({arguments!r}): {first_leaf(error)!r}") from error
        arena.sent[label] += 1
        content = result.structured_content
        assert isinstance(content, dict), f"{tool}({arguments!r}): {result}"
        if result.is_error:
            assert content["status"] < 500, f"{tool}({arguments!r}): {content}"
            assert content["code"] and content["detail"], content
        answer = result.model_dump_json()
        assert arena.victim.id not in answer
        for task in arena.victim_tasks.values():
            assert task["title"] not in answer

    run()
    if time.monotonic() > deadline:
        warnings.warn(
            f"fuzz time budget spent; {label} sent {arena.sent[label]} calls", stacklevel=1
        )
    assert arena.sent[label] > 0
