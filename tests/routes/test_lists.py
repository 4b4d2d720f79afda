"""Lists (projects): CRUD on every spelling, deleting with tasks, quotas, isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import User
from tests.routes.support import (
    assert_problem,
    create,
    create_list,
    ids,
    listing,
    read,
    same_problem,
)

MISSING = 2**63 - 1


def lists_url(user: User, spelling: str) -> str:
    return {"canonical": f"/api/{user.id}", "me": "/api/me", "alias": "/api"}[spelling] + "/lists"


@pytest.mark.parametrize("spelling", ["canonical", "me", "alias"])
async def test_list_crud_on_every_spelling(alice: User, spelling: str) -> None:
    url = lists_url(alice, spelling)
    created = await alice.post(url, json={"name": "  Garden  "})
    assert created.status_code == 201, created.text
    garden = created.json()
    assert set(garden) == {"id", "name", "created_at", "updated_at", "version"}
    assert garden["name"] == "Garden"
    assert httpx.URL(created.headers["location"]).path == f"{url}/{garden['id']}"
    assert (await alice.get(created.headers["location"])).json() == garden
    assert (await alice.get(url)).json() == [garden]
    renamed = await alice.patch(f"{url}/{garden['id']}", json={"name": "Balcony"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Balcony"
    deleted = await alice.delete(f"{url}/{garden['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == renamed.json()
    assert_problem(await alice.get(f"{url}/{garden['id']}"), 404, "list_not_found")
    assert (await alice.get(url)).json() == []


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": "a\nb"}, {"name": "n", "id": 1}]
)
async def test_invalid_list_bodies_are_422(alice: User, body: dict[str, Any]) -> None:
    assert_problem(await alice.post("/api/me/lists", json=body), 422, "validation_failed")


async def test_lists_are_listed_oldest_first(alice: User) -> None:
    made = [await create_list(alice, name) for name in ("b", "a", "c")]
    assert ids((await alice.get("/api/me/lists")).json()) == ids(made)


async def test_a_task_belongs_to_a_list_or_to_the_inbox(alice: User) -> None:
    garden = await create_list(alice)
    task = await create(alice, list_id=garden["id"])
    assert task["list_id"] == garden["id"]
    moved = await alice.patch(f"/api/me/tasks/{task['id']}", json={"list_id": None})
    assert moved.json()["list_id"] is None
    assert ids(await listing(alice, list_id=0)) == [task["id"]]


async def test_deleting_a_list_with_tasks_is_409_and_changes_nothing(alice: User) -> None:
    garden = await create_list(alice)
    task = await create(alice, list_id=garden["id"])
    response = await alice.delete(f"/api/me/lists/{garden['id']}")
    assert_problem(response, 409, "list_not_empty")
    assert (await read(alice, task["id"]))["list_id"] == garden["id"]


async def test_deleting_a_list_can_delete_its_tasks_and_their_subtasks(alice: User) -> None:
    garden = await create_list(alice)
    kept = await create(alice)
    parent = await create(alice, list_id=garden["id"])
    await create(alice, parent_id=parent["id"])
    response = await alice.delete(f"/api/me/lists/{garden['id']}", params={"tasks": "delete"})
    assert response.status_code == 200, response.text
    assert ids(await listing(alice)) == [kept["id"]]


@pytest.mark.parametrize("to_inbox", [False, True])
async def test_deleting_a_list_can_move_its_tasks_keeping_their_order(
    alice: User, to_inbox: bool
) -> None:
    garden = await create_list(alice, "Garden")
    target = await create_list(alice, "Target")
    already = await create(alice, list_id=None if to_inbox else target["id"])
    moving = [await create(alice, f"m{n}", list_id=garden["id"]) for n in range(3)]
    child = await create(alice, parent_id=moving[0]["id"])
    await alice.post(f"/api/me/tasks/{moving[2]['id']}/move", json={"before": moving[0]["id"]})
    params: dict[str, Any] = {"tasks": "move"}
    if not to_inbox:
        params["move_to"] = target["id"]
    response = await alice.delete(f"/api/me/lists/{garden['id']}", params=params)
    assert response.status_code == 200, response.text
    where = 0 if to_inbox else target["id"]
    order = ids(await listing(alice, list_id=where, sort="position"))
    # The child was created last, so it sorts last; moving kept that order too.
    assert order == [already["id"], moving[2]["id"], moving[0]["id"], moving[1]["id"], child["id"]]


async def test_moving_tasks_to_another_users_list_looks_like_a_missing_list(
    alice: User, bob: User
) -> None:
    theirs = await create_list(alice)
    mine = await create_list(bob)
    await create(bob, list_id=mine["id"])
    url = f"/api/me/lists/{mine['id']}"
    attack = await bob.delete(url, params={"tasks": "move", "move_to": theirs["id"]})
    absent = await bob.delete(url, params={"tasks": "move", "move_to": MISSING})
    assert_problem(attack, 422, "list_not_found")
    same_problem(attack, absent)
    assert await listing(alice, list_id=theirs["id"]) == []


async def test_another_users_list_id_in_a_task_body_looks_like_a_missing_list(
    alice: User, bob: User
) -> None:
    theirs = await create_list(alice)
    own_task = await create(bob)
    for method, url in (
        ("POST", "/api/me/tasks"),
        ("PATCH", f"/api/me/tasks/{own_task['id']}"),
        ("POST", f"/api/me/tasks/{own_task['id']}/move"),
    ):
        body: dict[str, Any] = {"title": "t"} if method == "POST" and url.endswith("tasks") else {}
        attack = await bob.request(method, url, json={**body, "list_id": theirs["id"]})
        absent = await bob.request(method, url, json={**body, "list_id": MISSING})
        assert_problem(attack, 422, "list_not_found")
        same_problem(attack, absent)
        assert str(theirs["id"]) not in attack.json()["detail"]
    assert await listing(alice, list_id=theirs["id"]) == []


async def test_list_quota_is_a_409_with_its_code(
    app: FastAPI, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.quotas, "lists", 2)
    first = await create_list(alice)
    await create_list(alice)
    assert_problem(await alice.post("/api/me/lists", json={"name": "x"}), 409, "quota_lists")
    await alice.delete(f"/api/me/lists/{first['id']}")
    await create_list(alice)


async def test_erasing_the_account_removes_lists_and_tags(alice: User) -> None:
    garden = await create_list(alice)
    await create(alice, list_id=garden["id"], tags=["t"])
    assert (await alice.delete("/api/me")).status_code == 204
    assert (await alice.get("/api/me/lists")).json() == []
    assert (await alice.get("/api/me/tags")).json() == []
    await create_list(alice)
