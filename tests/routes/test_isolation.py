"""Two users: neither can see, change or learn about the other's tasks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import User, make_token
from tests.routes.support import assert_problem


def prefix(user: User, spelling: str) -> str:
    return {"canonical": f"/api/{user.id}", "me": "/api/me", "alias": "/api"}[spelling]


# Every route that names one task, with a body that would be valid for it.
TASK_ROUTES = [
    ("GET", "", None),
    ("PUT", "", {"title": "Hijacked", "description": "by bob", "completed": True}),
    ("PATCH", "", {"title": "Hijacked"}),
    ("PATCH", "", {"completed": True}),
    ("DELETE", "", None),
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": True}),
]
ROUTE_IDS = ["get", "put", "patch-title", "patch-completed", "delete", "toggle", "complete"]


async def read(user: User, task_id: int) -> dict[str, Any]:
    response = await user.get(f"/api/me/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("spelling", ["canonical", "me", "alias"])
@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=ROUTE_IDS)
async def test_other_users_task_is_404(
    alice: User,
    bob: User,
    spelling: str,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    task = await alice.create_task("Alice's", description="private")
    url = f"{prefix(bob, spelling)}/tasks/{task['id']}{suffix}"
    response = await bob.request(method, url, json=body)
    problem = assert_problem(response, 404, "task_not_found")
    assert "Alice" not in problem["detail"]


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=ROUTE_IDS)
async def test_other_users_task_is_unchanged_after_the_attempt(
    alice: User, bob: User, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    task = await alice.create_task("Alice's", description="private")
    await bob.request(method, f"/api/me/tasks/{task['id']}{suffix}", json=body)
    assert await read(alice, task["id"]) == task


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=ROUTE_IDS)
async def test_other_users_task_and_a_missing_task_look_the_same(
    alice: User, bob: User, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    task = await alice.create_task("Alice's")
    missing = 2**63 - 1
    theirs = await bob.request(method, f"/api/me/tasks/{task['id']}{suffix}", json=body)
    absent = await bob.request(method, f"/api/me/tasks/{missing}{suffix}", json=body)
    assert theirs.status_code == absent.status_code == 404
    strip = ("request_id", "detail")
    assert {k: v for k, v in theirs.json().items() if k not in strip} == {
        k: v for k, v in absent.json().items() if k not in strip
    }


async def test_other_users_tasks_never_appear_in_the_list(alice: User, bob: User) -> None:
    for i in range(3):
        await alice.create_task(f"alice {i}", completed=i == 0)
    own = await bob.create_task("bob's")
    for status in ("all", "pending", "completed"):
        for sort in ("created", "title"):
            response = await bob.get("/api/me/tasks", params={"status": status, "sort": sort})
            assert response.status_code == 200, response.text
            expected = [own] if status != "completed" else []
            assert response.json() == expected


async def test_list_of_a_user_with_no_tasks_is_empty_while_another_has_some(
    alice: User, bob: User
) -> None:
    await alice.create_task("alice's")
    for path in (f"/api/{bob.id}/tasks", "/api/me/tasks", "/api/tasks"):
        response = await bob.get(path)
        assert response.status_code == 200, response.text
        assert response.json() == []


async def test_users_with_the_same_titles_keep_separate_pages(alice: User, bob: User) -> None:
    alices = [await alice.create_task("same") for _ in range(3)]
    bobs = [await bob.create_task("same") for _ in range(3)]
    seen: list[int] = []
    url: str | None = "/api/me/tasks?sort=title&limit=1"
    while url is not None:
        response = await bob.get(url)
        seen += [t["id"] for t in response.json()]
        url = response.links.get("next", {}).get("url")
    assert seen == [t["id"] for t in bobs]
    assert not set(seen) & {t["id"] for t in alices}


async def test_cursor_from_another_user_never_reveals_their_tasks(alice: User, bob: User) -> None:
    for _ in range(3):
        await alice.create_task("alice's")
    await bob.create_task("bob's")
    first = await alice.get("/api/me/tasks", params={"limit": 1})
    response = await bob.get(first.links["next"]["url"])
    assert response.status_code in {200, 422}, response.text
    assert alice.id not in response.text
    assert "alice's" not in response.text


async def test_created_task_belongs_to_the_token_subject(alice: User, bob: User) -> None:
    task = await bob.create_task("mine")
    assert task["user_id"] == bob.id
    assert_problem(await alice.get(f"/api/me/tasks/{task['id']}"), 404, "task_not_found")


# --- a path that names someone else ------------------------------------------------------

ALL_ROUTES = [
    ("GET", "/tasks", None),
    ("POST", "/tasks", {"title": "t"}),
    ("GET", "/tasks/{id}", None),
    ("PUT", "/tasks/{id}", {"title": "t"}),
    ("PATCH", "/tasks/{id}", {"title": "t"}),
    ("DELETE", "/tasks/{id}", None),
    ("PATCH", "/tasks/{id}/complete", None),
    ("GET", "", None),
    ("PATCH", "", {"display_name": "x"}),
    ("DELETE", "", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
async def test_path_naming_another_user_is_403(
    alice: User, bob: User, method: str, path: str, body: dict[str, Any] | None
) -> None:
    task = await alice.create_task("Alice's")
    url = f"/api/{alice.id}" + path.replace("{id}", str(task["id"]))
    response = await bob.request(method, url, json=body)
    assert_problem(response, 403, "user_mismatch")


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
async def test_path_naming_another_user_changes_nothing(
    alice: User, bob: User, method: str, path: str, body: dict[str, Any] | None
) -> None:
    task = await alice.create_task("Alice's")
    await alice.patch("/api/me", json={"display_name": "Ali"})
    profile = (await alice.get("/api/me")).json()
    url = f"/api/{alice.id}" + path.replace("{id}", str(task["id"]))
    await bob.request(method, url, json=body)
    assert await read(alice, task["id"]) == task
    assert (await alice.get("/api/me/tasks")).json() == [task]
    assert (await alice.get("/api/me")).json() == profile


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
async def test_path_naming_a_nonexistent_user_is_403(
    bob: User, method: str, path: str, body: dict[str, Any] | None
) -> None:
    url = "/api/nobody-at-all" + path.replace("{id}", "1")
    assert_problem(await bob.request(method, url, json=body), 403, "user_mismatch")


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/tasks", b'{"title": '),
        ("POST", "/tasks", b'{"title": "", "user_id": "x"}'),
        ("PUT", "/tasks/1", b"[]"),
        ("PATCH", "/tasks/1", b'{"title": null}'),
        ("PATCH", "/tasks/abc", b"{}"),
        ("GET", f"/tasks/{2**64}", b""),
        ("PATCH", "/tasks/0/complete", b'"yes"'),
        ("GET", "/tasks?limit=0&status=nope&cursor=%00", b""),
        ("PATCH", "", b'{"timezone": "Mars/Base"}'),
    ],
)
async def test_user_mismatch_beats_validation(
    alice: User, bob: User, method: str, path: str, raw: bytes
) -> None:
    response = await bob.request(
        method,
        f"/api/{alice.id}{path}",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 403, "user_mismatch")


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
async def test_unauthenticated_request_naming_a_user_is_401(
    client: httpx.AsyncClient, alice: User, method: str, path: str, body: dict[str, Any] | None
) -> None:
    url = f"/api/{alice.id}" + path.replace("{id}", "1")
    response = await client.request(method, url, json=body)
    assert_problem(response, 401, "token_missing")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_invalid_token_naming_a_user_with_a_malformed_body_is_401(
    client: httpx.AsyncClient, alice: User
) -> None:
    forged = make_token(alice.id, secret="not-the-server-secret-but-long-enough-000")
    response = await client.post(
        f"/api/{alice.id}/tasks",
        content=b'{"title": ',
        headers={"Authorization": f"Bearer {forged}", "Content-Type": "application/json"},
    )
    assert_problem(response, 401, "token_signature_invalid")
