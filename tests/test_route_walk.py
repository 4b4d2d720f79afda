"""Route walk: every route (and every MCP tool) that names an object by id, attacked by
another user.

Routes are discovered from the application itself, so a route added tomorrow is walked
tomorrow. For each one, user A creates real objects, user B calls the route with A's
ids (with a valid body derived from the route's own body model) and must get the same
404 as for an id that does not exist, and A's objects must be unchanged. The owner then
makes the very same request and must succeed: that proves the body was valid and the
404 came from ownership, not from validation.

A route whose id parameter has no entry in `OBJECT_KINDS` fails the walk: add a kind
(how to create one and how to read it back) when you add a resource. The same holds for
`*_id` fields in request bodies that point at other objects (moving a task into a list,
batch operations): they are attacked too, once a resource kind exists for them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from mcp_types import CallToolResult
from pydantic import TypeAdapter

from tests.conftest import TEST_SECRET, User
from tests.dates import at, day
from tests.mcp_client import Agent
from todo_api.config import Settings
from todo_api.main import create_app
from todo_api.mcp.tools import TOOLS

MISSING_ID = 2**63 - 1
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class ObjectKind:
    """How to make a user's object of one kind, and how to read it back for comparison."""

    create: Callable[[User], Awaitable[int]]
    read: Callable[[User, int], Awaitable[Any]]


async def _create_task(user: User) -> int:
    task = await user.create_task(f"A's task {uuid.uuid4().hex[:6]}", description="private")
    task_id: int = task["id"]
    return task_id


async def _read_task(user: User, task_id: int) -> Any:
    response = await user.get(f"/api/me/tasks/{task_id}")
    assert response.status_code == 200, f"the owner lost task {task_id}: {response.text}"
    return response.json()


async def _create_list(user: User) -> int:
    response = await user.post("/api/me/lists", json={"name": f"A's list {uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    list_id: int = response.json()["id"]
    return list_id


async def _read_list(user: User, list_id: int) -> Any:
    response = await user.get(f"/api/me/lists/{list_id}")
    assert response.status_code == 200, f"the owner lost list {list_id}: {response.text}"
    return response.json()


async def _create_tag(user: User) -> int:
    name = f"a-tag-{uuid.uuid4().hex[:6]}"
    await user.create_task("tagged", tags=[name])
    tags = (await user.get("/api/me/tags")).json()
    tag_id: int = next(tag["id"] for tag in tags if tag["name"] == name)
    return tag_id


async def _read_tag(user: User, tag_id: int) -> Any:
    tags = (await user.get("/api/me/tags")).json()
    found = [tag for tag in tags if tag["id"] == tag_id]
    assert found, f"the owner lost tag {tag_id}"
    return found[0]


#: Path or body parameter name -> the kind of object it names.
OBJECT_KINDS: dict[str, ObjectKind] = {
    "task_id": ObjectKind(_create_task, _read_task),
    "parent_id": ObjectKind(_create_task, _read_task),
    "list_id": ObjectKind(_create_list, _read_list),
    "tag_id": ObjectKind(_create_tag, _read_tag),
}

#: Bodies for routes where one derived from the schema is not valid (method, template).
#: `/move` takes `before` or `after`, not both; an empty body moves to the end.
BODY_OVERRIDES: dict[tuple[str, str], Any] = {
    ("POST", "/api/{user_id}/tasks/{task_id}/move"): {},
    ("POST", "/api/tasks/{task_id}/move"): {},
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    #: The route's body schema (JSON Schema with `$defs`), or None without a body.
    body_schema: dict[str, Any] | None
    body_required: bool

    @property
    def object_params(self) -> list[str]:
        return [name for name in _PARAM.findall(self.path) if name != "user_id"]

    def url(self, user_segment: str | None, ids: dict[str, int]) -> str:
        """The URL under `/api/<user_segment>`, or by the short alias when it is None."""
        path = self.path
        if user_segment is None:
            path = path.replace("/api/{user_id}/", "/api/", 1)
        values = {"user_id": user_segment or "", **{k: str(v) for k, v in ids.items()}}
        return _PARAM.sub(lambda m: values[m.group(1)], path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def discover_routes() -> list[Route]:
    """Every `/api` route and method of the application, from its own route table."""
    app = create_app(Settings(_env_file=None, jwt_secret=TEST_SECRET))  # type: ignore[call-arg]
    routes = []
    for context in iter_route_contexts(app.routes):
        if not context.path.startswith("/api") or not context.methods:
            continue
        body_field = getattr(context.route, "body_field", None)
        schema = None
        required = False
        if body_field is not None:
            schema = TypeAdapter(body_field.field_info.annotation).json_schema()
            required = body_field.field_info.is_required()
        for method in sorted(context.methods - {"HEAD"}):
            routes.append(Route(method, context.path, schema, required))
    return routes


ALL_ROUTES = discover_routes()
OBJECT_ROUTES = [route for route in ALL_ROUTES if route.object_params]


# --- bodies from schemas -----------------------------------------------------------------


class NoExample(Exception):
    """The schema asks for something this generator cannot invent."""


_FORMATS = {"date": day(30), "date-time": at(30, "03:04:05")}


def example(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A valid value for `schema`; raises `NoExample` when it cannot invent one.

    Objects get every required property and every optional one that can be invented
    (B tries to change as much as it can), except optional `*_id` properties: they point
    at other objects, which the body-reference walk below attacks on purpose.
    """
    if "$ref" in schema:
        return example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if schema.get("examples"):
        return schema["examples"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return example(options[0], defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        required = set(schema.get("required", ()))
        body = {}
        for name, prop in schema.get("properties", {}).items():
            if name in required:
                body[name] = example(prop, defs)
            elif not name.endswith(("_id", "_ids")):
                try:
                    body[name] = example(prop, defs)
                except NoExample:
                    continue  # optional: leave it out rather than guess
        return body
    if kind == "string":
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        if "format" in schema or "pattern" in schema:
            raise NoExample(f"a string with format/pattern {schema}")
        text = "Changed by B"
        return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "x")
    if kind == "boolean":
        return True
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(float(schema.get("minimum", 1)), 1.0)
    if kind == "array":
        return [example(schema["items"], defs) for _ in range(schema.get("minItems", 0))]
    raise NoExample(f"schema {schema}")


def bodies_for(route: Route) -> list[Any]:
    """The bodies to attack with: a full valid one, and no body at all when that is allowed."""
    if route.body_schema is None:
        return [None]
    if (route.method, route.path) in BODY_OVERRIDES:
        body = BODY_OVERRIDES[(route.method, route.path)]
    else:
        try:
            body = example(route.body_schema, route.body_schema.get("$defs", {}))
        except NoExample as error:
            pytest.fail(f"{route}: cannot derive a body ({error}); add it to BODY_OVERRIDES")
    return [body] if route.body_required else [body, None]


def kind_of(route: Route, param: str) -> ObjectKind:
    kind = OBJECT_KINDS.get(param)
    if kind is None:
        pytest.fail(
            f"{route} takes `{param}` but the route walk cannot make such an object: "
            "add an ObjectKind for it to OBJECT_KINDS in tests/test_route_walk.py"
        )
    return kind


def user_segments(route: Route, attacker: User) -> list[str | None]:
    """Every spelling of the route: the attacker's own id, `me`, and the short alias
    (None) for resources under `/api/{user_id}/`."""
    if route.path.startswith("/api/{user_id}/"):
        return [attacker.id, "me", None]
    return [attacker.id, "me"] if "{user_id}" in route.path else [""]


def assert_not_found(response: httpx.Response, route: Route) -> None:
    assert response.status_code == 404, f"{route}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"].endswith("not_found")


# --- the walk ------------------------------------------------------------------------------


def test_the_walk_sees_the_routes_it_must_cover() -> None:
    # If discovery broke (a FastAPI change in how routers are stored), the walk would
    # silently cover nothing.
    walked = {str(route) for route in OBJECT_ROUTES}
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        assert f"{method} /api/{{user_id}}/tasks/{{task_id}}" in walked
    assert "PATCH /api/{user_id}/tasks/{task_id}/complete" in walked
    # Each is also attacked by its short alias.
    task = next(route for route in OBJECT_ROUTES if route.path == "/api/{user_id}/tasks/{task_id}")
    assert task.url(None, {"task_id": 7}) == "/api/tasks/7"


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=str)
async def test_other_users_object_is_404_and_unchanged(
    route: Route, alice: User, bob: User
) -> None:
    ids = {param: await kind_of(route, param).create(alice) for param in route.object_params}
    before = {p: await kind_of(route, p).read(alice, ids[p]) for p in route.object_params}
    missing = dict.fromkeys(ids, MISSING_ID)
    bodies = bodies_for(route)
    for body in bodies:
        for segment in user_segments(route, bob):
            attack = await bob.request(route.method, route.url(segment, ids), json=body)
            assert_not_found(attack, route)
            # Another user's id and an id that exists nowhere must be indistinguishable.
            absent = await bob.request(route.method, route.url(segment, missing), json=body)
            assert (attack.status_code, attack.json()["code"]) == (
                absent.status_code,
                absent.json()["code"],
            )
    after = {p: await kind_of(route, p).read(alice, ids[p]) for p in route.object_params}
    assert after == before, f"{route}: B changed A's object"
    # The owner's identical request works: the attack was well-formed and reached the route.
    owner = await alice.request(route.method, route.url("me", ids), json=bodies[0])
    assert 200 <= owner.status_code < 300, f"{route} for its owner: {owner.text}"


# --- ids inside bodies ---------------------------------------------------------------------


def body_references(route: Route) -> list[str]:
    """Top-level body properties that name other objects (`list_id`, `task_ids`, ...)."""
    schema = route.body_schema
    if schema is None:
        return []
    defs = schema.get("$defs", {})
    while "$ref" in schema or "anyOf" in schema:
        if "$ref" in schema:
            schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
        else:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
    return [name for name in schema.get("properties", {}) if name.endswith(("_id", "_ids"))]


def test_body_reference_discovery_finds_id_fields() -> None:
    # The walk below has nothing to attack until a body names another object; this
    # pins that it will notice when one does.
    schema = {
        "anyOf": [{"$ref": "#/$defs/Move"}, {"type": "null"}],
        "$defs": {
            "Move": {
                "type": "object",
                "properties": {"list_id": {"type": "integer"}, "title": {"type": "string"}},
            }
        },
    }
    assert body_references(Route("POST", "/api/x", schema, True)) == ["list_id"]


async def test_ids_of_other_users_objects_in_bodies_are_refused(alice: User, bob: User) -> None:
    for route in ALL_ROUTES:
        for field in body_references(route):
            kind = kind_of(route, field.removesuffix("s") if field.endswith("_ids") else field)
            victim = await kind.create(alice)
            before = await kind.read(alice, victim)
            ids = {param: await kind_of(route, param).create(bob) for param in route.object_params}
            body = dict(bodies_for(route)[0] or {})
            reference: Any = [victim] if field.endswith("_ids") else victim
            missing: Any = [MISSING_ID] if field.endswith("_ids") else MISSING_ID
            url = route.url("me", ids)
            attack = await bob.request(route.method, url, json={**body, field: reference})
            absent = await bob.request(route.method, url, json={**body, field: missing})
            assert attack.status_code >= 400, f"{route}: B used A's {field}: {attack.text}"
            assert (attack.status_code, attack.json()["code"]) == (
                absent.status_code,
                absent.json()["code"],
            ), f"{route}: A's {field} and a missing one answer differently"
            assert await kind.read(alice, victim) == before


def nested_references(schema: Any, defs: dict[str, Any], path: str = "") -> list[str]:
    """Where, below the top level of a body schema, a property names an object (`id`,
    `*_id`, `*_ids`): batch operations, nested moves. Returned as JSON-pointer-ish paths."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if f"/{name}/" in f"{path}/":
            return []  # a recursive model: one pass is enough
        return nested_references(defs[name], defs, f"{path}/{name}")
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, ()):
            found += nested_references(option, defs, path)
    if "items" in schema:
        found += nested_references(schema["items"], defs, f"{path}[]")
    for name, prop in schema.get("properties", {}).items():
        if path and (name == "id" or name.endswith(("_id", "_ids"))):
            found.append(f"{path}.{name}")
        found += nested_references(prop, defs, f"{path}.{name}")
    return sorted(set(found))


def _resource_path(route: Route) -> str:
    # `/api/{user_id}/tasks/batch` and its alias `/api/tasks/batch` share one entry.
    return re.sub(r"^/api(/\{user_id\})?", "", route.path)


@dataclass(frozen=True)
class NestedAttack:
    """Bodies that smuggle the victim's ids into a nested reference.

    `bodies` gets the victim's ids by kind (or, for the comparison, ids that exist
    nowhere) and returns bodies ordered so that the owner can replay them in turn.
    """

    kinds: tuple[str, ...]
    bodies: Callable[[dict[str, int]], list[Any]]


def _batch_bodies(ids: dict[str, int]) -> list[Any]:
    task, target_list = ids["task_id"], ids["list_id"]

    def one(operation: dict[str, Any]) -> dict[str, Any]:
        return {"operations": [operation]}

    return [
        one({"op": "update", "id": task, "data": {"title": "Hijacked"}}),
        one({"op": "complete", "id": task}),
        one({"op": "create", "data": {"title": "Into A's list", "list_id": target_list}}),
        one({"op": "create", "data": {"title": "Under A's task", "parent_id": task}}),
        one({"op": "update", "id": task, "data": {"list_id": target_list}}),
        one({"op": "delete", "id": task}),
    ]


#: (method, resource path) -> how to attack the ids nested in its body.
NESTED_ATTACKS: dict[tuple[str, str], NestedAttack] = {
    ("POST", "/tasks/batch"): NestedAttack(("task_id", "list_id"), _batch_bodies),
}


def test_nested_reference_discovery_finds_batch_ids() -> None:
    (batch,) = [r for r in ALL_ROUTES if str(r) == "POST /api/{user_id}/tasks/batch"]
    schema = batch.body_schema
    assert schema is not None
    found = nested_references(schema, schema.get("$defs", {}))
    assert any(path.endswith(".id") for path in found), found
    assert any(path.endswith(".list_id") for path in found), found


async def test_ids_nested_in_bodies_are_refused(alice: User, bob: User) -> None:
    covered = 0
    for route in ALL_ROUTES:
        schema = route.body_schema
        if schema is None or not nested_references(schema, schema.get("$defs", {})):
            continue
        attack_plan = NESTED_ATTACKS.get((route.method, _resource_path(route)))
        if attack_plan is None:
            pytest.fail(
                f"{route} takes ids nested in its body "
                f"({nested_references(schema, schema.get('$defs', {}))}): add a NestedAttack "
                "for it to NESTED_ATTACKS in tests/test_route_walk.py"
            )
        victim = {kind: await kind_of(route, kind).create(alice) for kind in attack_plan.kinds}
        before = {kind: await kind_of(route, kind).read(alice, victim[kind]) for kind in victim}
        ids = {param: await kind_of(route, param).create(bob) for param in route.object_params}
        attacks = attack_plan.bodies(victim)
        misses = attack_plan.bodies(dict.fromkeys(victim, MISSING_ID))
        for segment in user_segments(route, bob):
            url = route.url(segment, ids)
            for body, miss in zip(attacks, misses, strict=True):
                attack = await bob.request(route.method, url, json=body)
                absent = await bob.request(route.method, url, json=miss)
                assert attack.status_code >= 400, f"{route} {body}: {attack.text}"
                assert (attack.status_code, attack.json()["code"]) == (
                    absent.status_code,
                    absent.json()["code"],
                ), f"{route} {body}: A's id and a missing one answer differently"
        after = {kind: await kind_of(route, kind).read(alice, victim[kind]) for kind in victim}
        assert after == before, f"{route}: B changed A's objects"
        # The owner's identical requests work, so each attack was well-formed.
        owner_ids = {param: await kind_of(route, param).create(alice) for param in ids}
        for body in attacks:
            response = await alice.request(route.method, route.url("me", owner_ids), json=body)
            assert 200 <= response.status_code < 300, f"{route} {body}: {response.text}"
        covered += 1
    assert covered >= 1  # the batch route (every spelling)


# --- MCP tools -----------------------------------------------------------------------------
#
# The same walk over the tools of `/mcp` (the server's own tool table, so a tool added
# tomorrow is walked tomorrow): every argument that names an object (`task_id`, `list_id`,
# `parent_id`, ...) gets A's real object from B's agent, and must answer exactly as an id
# that exists nowhere, leave A's object unchanged, and work for A.

#: Arguments for tools where those derived from the schema are not valid. `list_tasks`
#: has several spellings of each parameter, which may not disagree.
TOOL_ARGUMENT_OVERRIDES: dict[str, dict[str, Any]] = {"list_tasks": {"limit": 5}}


def tool_arguments(name: str) -> dict[str, Any]:
    """Valid arguments for the tool, without the optional references (`*_id`) and the
    version precondition (which the owner's replay would fail once B's call changed
    nothing but A's own call did)."""
    if name in TOOL_ARGUMENT_OVERRIDES:
        return dict(TOOL_ARGUMENT_OVERRIDES[name])
    schema = TOOLS[name].arguments.model_json_schema()
    try:
        arguments: dict[str, Any] = example(schema, schema.get("$defs", {}))
    except NoExample as error:
        pytest.fail(f"tool {name}: cannot derive arguments ({error}); add TOOL_ARGUMENT_OVERRIDES")
    arguments.pop("if_version", None)
    return arguments


def tool_references(name: str) -> list[str]:
    """The tool's arguments that name objects."""
    properties = TOOLS[name].arguments.model_json_schema().get("properties", {})
    return [arg for arg in properties if arg.endswith("_id")]


def tool_outcome(result: CallToolResult) -> Any:
    """What B can observe of a call: the error code, or the result."""
    content = result.structured_content or {}
    return ("error", content.get("code")) if result.is_error else ("ok", content)


def test_the_tool_walk_sees_the_tools_it_must_cover() -> None:
    by_task = {name for name in TOOLS if "task_id" in tool_references(name)}
    assert by_task == {"get_task", "update_task", "complete_task", "delete_task"}
    assert {"list_id", "parent_id"} <= set(tool_references("add_task"))


@pytest.mark.parametrize("tool", sorted(name for name in TOOLS if tool_references(name)))
async def test_tools_given_other_users_ids_answer_as_for_missing_ones(
    tool: str, mcp_base: str, alice: User, bob: User
) -> None:
    a_agent, b_agent = Agent(mcp_base, alice), Agent(mcp_base, bob)
    base = tool_arguments(tool)
    required = set(TOOLS[tool].arguments.model_json_schema().get("required", ()))
    for param in tool_references(tool):
        kind = kind_of(Route("TOOL", tool, None, False), param)
        victim = await kind.create(alice)
        before = await kind.read(alice, victim)
        # The other required references name B's own objects.
        own = {
            other: await kind_of(Route("TOOL", tool, None, False), other).create(bob)
            for other in tool_references(tool)
            if other in required and other != param
        }
        attack = await b_agent.call(tool, {**base, **own, param: victim})
        absent = await b_agent.call(tool, {**base, **own, param: MISSING_ID})
        assert tool_outcome(attack) == tool_outcome(absent), f"{tool}({param}): {attack}"
        if attack.is_error:
            assert str((attack.structured_content or {}).get("code")).endswith("not_found")
        assert await kind.read(alice, victim) == before, f"{tool}({param}) changed A's object"
        # The owner's identical call works: B's was well-formed and reached the service.
        mine = {
            other: await kind_of(Route("TOOL", tool, None, False), other).create(alice)
            for other in own
        }
        owner = await a_agent.call(tool, {**base, **mine, param: victim})
        assert not owner.is_error, f"{tool}({param}) for its owner: {owner.structured_content}"


# --- feed cursors ------------------------------------------------------------------------


def _cursor_routes() -> list[tuple[str, str, str]]:
    """(method, path, where) for every operation that takes a feed cursor: a `since`
    query parameter or a `Last-Event-ID` header, from the app's own schema."""
    app = create_app(Settings(_env_file=None, jwt_secret=TEST_SECRET))  # type: ignore[call-arg]
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if (param["in"], param["name"]) in {
                    ("query", "since"),
                    ("header", "Last-Event-ID"),
                }:
                    found.append((method.upper(), path, param["name"]))
    return found


CURSOR_ROUTES = _cursor_routes()


def test_the_cursor_walk_covers_the_feed_and_the_event_stream() -> None:
    assert ("GET", "/api/{user_id}/changes", "since") in CURSOR_ROUTES
    assert ("GET", "/api/{user_id}/events", "since") in CURSOR_ROUTES
    assert ("GET", "/api/{user_id}/events", "Last-Event-ID") in CURSOR_ROUTES


@pytest.mark.parametrize(("method", "path", "where"), CURSOR_ROUTES, ids=str)
async def test_another_users_cursor_is_refused(
    method: str, path: str, where: str, alice: User, bob: User
) -> None:
    # Alice's cursor, taken after her changes: with it, Bob would read on from her feed.
    await alice.create_task("alice's private change")
    cursor = (await alice.get("/api/me/changes")).json()["next"]
    url = path.replace("{user_id}", "me")
    sent: dict[str, Any] = (
        {"params": {"since": cursor}} if where == "since" else {"headers": {where: cursor}}
    )
    response = await bob.request(method, url, **sent)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "cursor_invalid"
    # The owner's own request with it is accepted (the 422 is about ownership): only
    # checked where the answer ends, which a stream does not.
    if path.endswith("/changes"):
        assert (await alice.request(method, url, **sent)).status_code == 200
