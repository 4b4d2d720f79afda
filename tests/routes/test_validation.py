"""What a client may send: every malformed input is a 4xx problem+json, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.routes.support import assert_problem

MAX_ID = 2**63 - 1


@pytest.fixture
async def task(alice: User) -> dict[str, Any]:
    return await alice.create_task("Original", description="original")


async def write(user: User, how: str, task: dict[str, Any], **kwargs: Any) -> httpx.Response:
    """Send a task body the way `how` names: create (POST) or update (PUT or PATCH)."""
    if how == "create":
        return await user.post("/api/me/tasks", **kwargs)
    method = "PUT" if how == "put" else "PATCH"
    return await user.request(method, f"/api/me/tasks/{task['id']}", **kwargs)


WRITES = ("create", "put", "patch")
SUCCESS = {"create": 201, "put": 200, "patch": 200}


# --- titles and descriptions -------------------------------------------------------------


@pytest.mark.parametrize("how", WRITES)
async def test_title_is_trimmed(alice: User, task: dict[str, Any], how: str) -> None:
    response = await write(alice, how, task, json={"title": "  x \t "})
    assert response.status_code == SUCCESS[how], response.text
    assert response.json()["title"] == "x"


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("title", ["", " ", " \t  ", "\u3000"])
async def test_blank_title_is_422(alice: User, task: dict[str, Any], how: str, title: str) -> None:
    response = await write(alice, how, task, json={"title": title})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "title"]


@pytest.mark.parametrize("how", WRITES)
async def test_title_of_201_characters_is_422(alice: User, task: dict[str, Any], how: str) -> None:
    response = await write(alice, how, task, json={"title": "x" * 201})
    assert_problem(response, 422, "validation_failed")


@pytest.mark.parametrize("how", WRITES)
async def test_title_of_200_characters_is_accepted(
    alice: User, task: dict[str, Any], how: str
) -> None:
    title = "é" * 200
    response = await write(alice, how, task, json={"title": f"  {title}  "})
    assert response.status_code == SUCCESS[how], response.text
    assert response.json()["title"] == title


@pytest.mark.parametrize("how", WRITES)
async def test_description_of_2001_characters_is_422(
    alice: User, task: dict[str, Any], how: str
) -> None:
    response = await write(alice, how, task, json={"title": "t", "description": "d" * 2001})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "description"]


@pytest.mark.parametrize("how", WRITES)
async def test_description_of_2000_characters_is_accepted(
    alice: User, task: dict[str, Any], how: str
) -> None:
    response = await write(alice, how, task, json={"title": "t", "description": "d" * 2000})
    assert response.status_code == SUCCESS[how], response.text
    assert response.json()["description"] == "d" * 2000


async def test_description_may_span_lines(alice: User) -> None:
    created = await alice.create_task("t", description="line one\nline two\ttabbed")
    assert created["description"] == "line one\nline two\ttabbed"


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("title", ["a\nb", "a\rb", "bell\x07", "del\x7f"])
async def test_control_characters_in_title_are_422(
    alice: User, task: dict[str, Any], how: str, title: str
) -> None:
    assert_problem(await write(alice, how, task, json={"title": title}), 422, "validation_failed")


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("field", ["title", "description"])
async def test_nul_character_is_422(
    alice: User, task: dict[str, Any], how: str, field: str
) -> None:
    body = {"title": "t", field: "before\x00after"}
    response = await write(alice, how, task, json=body)
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["body", field]


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize(
    "raw",
    [
        b'{"title": "\\ud800"}',
        b'{"title": "ok", "description": "x\\udfffy"}',
        b'{"title": "\\udc00\\ud800"}',
    ],
)
async def test_lone_surrogate_is_422(
    alice: User, task: dict[str, Any], how: str, raw: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    response = await write(alice, how, task, content=raw, headers=headers)
    assert_problem(response, 422, "validation_failed")


async def test_escaped_surrogate_pair_is_stored_as_its_character(alice: User) -> None:
    raw = b'{"title": "clef \\ud834\\udd1e"}'
    response = await alice.post(
        "/api/me/tasks", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "clef \U0001d11e"


# --- unknown fields, wrong types, wrong shapes -------------------------------------------


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize(
    "field", ["id", "user_id", "created_at", "updated_at", "completed_at", "foo"]
)
async def test_unknown_field_is_422(
    alice: User, task: dict[str, Any], how: str, field: str
) -> None:
    response = await write(alice, how, task, json={"title": "t", field: 1})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", field]
    assert body["errors"][0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("field", ["id", "user_id", "completed_at", "foo"])
async def test_unknown_field_in_completion_body_is_422(
    alice: User, task: dict[str, Any], field: str
) -> None:
    response = await alice.patch(
        f"/api/me/tasks/{task['id']}/complete", json={"completed": True, field: 1}
    )
    assert_problem(response, 422, "validation_failed")


async def test_rejected_write_leaves_the_task_unchanged(alice: User, task: dict[str, Any]) -> None:
    response = await alice.put(f"/api/me/tasks/{task['id']}", json={"title": "new", "user_id": "x"})
    assert response.status_code == 422
    assert (await alice.get(f"/api/me/tasks/{task['id']}")).json() == task


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize(
    "body",
    [
        {"title": 5},
        {"title": ["t"]},
        {"title": {"text": "t"}},
        {"title": True},
        {"title": "t", "completed": "yes"},
        {"title": "t", "completed": "true"},
        {"title": "t", "completed": 1},
        {"title": "t", "completed": 0},
        {"title": "t", "completed": 2},
        {"title": "t", "completed": 10**30},
        {"title": "t", "description": 5},
        {"title": "t", "description": ["d"]},
    ],
)
async def test_wrong_types_are_422(
    alice: User, task: dict[str, Any], how: str, body: dict[str, Any]
) -> None:
    assert_problem(await write(alice, how, task, json=body), 422, "validation_failed")


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("body", [[{"title": "t"}], "t", 5, True])
async def test_body_that_is_not_an_object_is_422(
    alice: User, task: dict[str, Any], how: str, body: Any
) -> None:
    assert_problem(await write(alice, how, task, json=body), 422, "validation_failed")


@pytest.mark.parametrize(
    "body", [[], "yes", 1, {"completed": "yes"}, {"completed": 1}, {"completed": None, "x": 1}]
)
async def test_bad_completion_body_is_422(alice: User, task: dict[str, Any], body: Any) -> None:
    response = await alice.patch(f"/api/me/tasks/{task['id']}/complete", json=body)
    assert_problem(response, 422, "validation_failed")


async def test_missing_title_is_422_on_create(alice: User, task: dict[str, Any]) -> None:
    response = await write(alice, "create", task, json={"description": "no title"})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "title"]
    assert body["errors"][0]["type"] == "missing"


@pytest.mark.parametrize("how", ["create", "put", "patch"])
async def test_missing_body_is_422(alice: User, task: dict[str, Any], how: str) -> None:
    assert_problem(await write(alice, how, task), 422, "validation_failed")


@pytest.mark.parametrize("how", ["put", "patch"])
@pytest.mark.parametrize("field", ["title", "completed", "priority", "tags"])
async def test_an_update_with_explicit_null_for_a_required_field_is_422(
    alice: User, task: dict[str, Any], field: str, how: str
) -> None:
    response = await write(alice, how, task, json={field: None})
    assert_problem(response, 422, "validation_failed")
    assert (await alice.get(f"/api/me/tasks/{task['id']}")).json() == task


@pytest.mark.parametrize("how", ["create", "put"])
async def test_explicit_null_title_is_422(alice: User, task: dict[str, Any], how: str) -> None:
    assert_problem(await write(alice, how, task, json={"title": None}), 422, "validation_failed")


# --- malformed JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"title": "t",}', b"{'title': 't'}", b'{"title": "t"} trailing', b"\xff\xfe", b"nul"],
)
@pytest.mark.parametrize("how", WRITES)
async def test_malformed_json_is_422_json_invalid(
    alice: User, task: dict[str, Any], how: str, raw: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    response = await write(alice, how, task, content=raw, headers=headers)
    assert_problem(response, 422, "json_invalid")


async def test_malformed_json_to_complete_is_422_json_invalid(
    alice: User, task: dict[str, Any]
) -> None:
    response = await alice.patch(
        f"/api/me/tasks/{task['id']}/complete",
        content=b'{"completed": tru',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 422, "json_invalid")


async def test_malformed_json_to_profile_is_422_json_invalid(alice: User) -> None:
    response = await alice.patch(
        "/api/me", content=b'{"timezone": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "json_invalid")


@pytest.mark.parametrize("raw", [b"\x80", b'{"title": "\xff"}', b'{"title": "caf\xe9"}'])
async def test_body_that_is_not_utf8_is_422_json_invalid(alice: User, raw: bytes) -> None:
    # RFC 8259 §8.1: JSON exchanged between systems is UTF-8; anything else is malformed JSON.
    response = await alice.post(
        "/api/me/tasks", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "json_invalid")


async def test_deeply_nested_json_is_a_client_error(alice: User) -> None:
    raw = b'{"title": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = await alice.post(
        "/api/me/tasks", content=raw, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


# --- path ids ----------------------------------------------------------------------------

TASK_ROUTES = [
    ("GET", "", None),
    ("PUT", "", {"title": "t"}),
    ("PATCH", "", {"title": "t"}),
    ("DELETE", "", None),
    ("PATCH", "/complete", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES)
@pytest.mark.parametrize(
    "task_id",
    ["0", "-1", str(2**63), "99999999999999999999999", "abc", "1.5", "1e3", "%20"],
)
async def test_path_id_outside_int64_range_is_422(
    alice: User, method: str, suffix: str, body: dict[str, Any] | None, task_id: str
) -> None:
    response = await alice.request(method, f"/api/me/tasks/{task_id}{suffix}", json=body)
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["path", "task_id"]


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES)
async def test_largest_int64_path_id_is_404(
    alice: User, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await alice.request(method, f"/api/me/tasks/{MAX_ID}{suffix}", json=body)
    assert_problem(response, 404, "task_not_found")


# --- routing errors ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/me/nope", "/api/me/tasks/1/nope", "/api/tasks/1/x/y"])
async def test_unknown_api_route_is_404_problem(alice: User, path: str) -> None:
    assert_problem(await alice.get(path), 404, "not_found")


async def test_unknown_public_route_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nope"), 404, "not_found")


WRONG_METHODS = [
    ("POST", "/api/me/tasks/1"),
    ("PUT", "/api/me/tasks"),
    ("PATCH", "/api/me/tasks"),
    ("POST", "/api/me"),
    ("PUT", "/api/me"),
    ("GET", "/api/me/tasks/1/complete"),
    ("POST", "/api/tasks/1"),
    ("PUT", "/api/tasks"),
    ("PUT", "/api/me/lists"),
    ("POST", "/api/me/lists/1"),
    ("POST", "/api/me/tags/1"),
    ("GET", "/api/me/tasks/1/move"),
    ("GET", "/api/me/reminders/1/dismiss"),
]


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS)
async def test_wrong_method_is_405_problem(alice: User, method: str, path: str) -> None:
    assert_problem(await alice.request(method, path), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/me/tasks/1", {"GET", "PUT", "PATCH", "DELETE"}),
        ("/api/me/tasks", {"GET", "POST", "DELETE"}),
        ("/api/me", {"GET", "PATCH", "DELETE"}),
        ("/api/me/tasks/1/complete", {"PATCH"}),
        ("/api/me/tasks/1/move", {"POST"}),
        ("/api/me/lists", {"GET", "POST"}),
        ("/api/me/lists/1", {"GET", "PATCH", "DELETE"}),
        ("/api/me/tags/1", {"PATCH", "DELETE"}),
    ],
)
async def test_405_allow_header_lists_every_supported_method(
    alice: User, path: str, allowed: set[str]
) -> None:
    # RFC 9110 §15.5.6: a 405 MUST list the target resource's supported methods.
    response = await alice.request("POST" if "POST" not in allowed else "PUT", path)
    assert response.status_code == 405, response.text
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


@pytest.mark.parametrize("path", ["/api/tasks", "/api/lists", "/api/tags", "/api/reminders"])
async def test_profile_patch_on_alias_collections_is_405(alice: User, path: str) -> None:
    # `/api/tasks` is the task list; it must never be taken for the profile of user "tasks".
    response = await alice.request("PATCH", path, json={})
    assert_problem(response, 405, "method_not_allowed")


async def test_delete_on_the_task_alias_collection_never_erases_the_profile(alice: User) -> None:
    # `DELETE /api/tasks` is "clear completed tasks", which needs `status=completed`.
    task = await alice.create_task("stays")
    response = await alice.request("DELETE", "/api/tasks", json={})
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["query", "status"]
    assert (await alice.get(f"/api/me/tasks/{task['id']}")).status_code == 200


@pytest.mark.parametrize("path", ["/api/lists", "/api/tags", "/api/reminders"])
async def test_profile_delete_on_alias_collections_is_405(alice: User, path: str) -> None:
    task = await alice.create_task("stays")
    assert_problem(await alice.request("DELETE", path), 405, "method_not_allowed")
    assert (await alice.get(f"/api/me/tasks/{task['id']}")).status_code == 200


# --- request ids -------------------------------------------------------------------------


async def test_request_id_is_echoed(alice: User) -> None:
    response = await alice.get("/api/me/tasks", headers={"X-Request-ID": "client-req.42:a_b"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "client-req.42:a_b"


async def test_request_id_is_generated_when_absent(alice: User) -> None:
    first = await alice.get("/api/me/tasks")
    second = await alice.get("/api/me/tasks")
    assert first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("sent", ["has spaces", "x" * 129, 'quote"d', "semi;colon"])
async def test_unusable_request_id_is_replaced(alice: User, sent: str) -> None:
    response = await alice.get("/api/me/tasks", headers={"X-Request-ID": sent})
    assert response.headers["x-request-id"]
    assert response.headers["x-request-id"] != sent


async def test_problem_request_id_matches_the_echoed_header(alice: User) -> None:
    response = await alice.get("/api/me/tasks/abc", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert assert_problem(response, 422, "validation_failed")["request_id"] == "trace-123"


async def test_problem_request_id_matches_the_generated_header(alice: User) -> None:
    response = await alice.get(f"/api/me/tasks/{MAX_ID}")
    assert assert_problem(response, 404, "task_not_found")["request_id"]


async def test_validation_errors_never_echo_the_input(alice: User) -> None:
    secret = "s3cr3t-" + "x" * 2100
    response = await alice.post("/api/me/tasks", json={"title": "t", "description": secret})
    body = assert_problem(response, 422, "validation_failed")
    assert "s3cr3t" not in response.text
    assert all("input" not in item and "ctx" not in item for item in body["errors"])
