"""Subtasks: same user and list, bounded depth, no cycles; they follow their parent."""

from __future__ import annotations

import pytest

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


async def test_a_subtask_lives_in_its_parents_list(alice: User) -> None:
    garden = await create_list(alice)
    parent = await create(alice, list_id=garden["id"])
    child = await create(alice, parent_id=parent["id"])
    assert (child["parent_id"], child["list_id"]) == (parent["id"], garden["id"])
    same_list = await create(alice, parent_id=parent["id"], list_id=garden["id"])
    assert same_list["list_id"] == garden["id"]


async def test_a_subtask_in_another_list_than_its_parent_is_422(alice: User) -> None:
    garden = await create_list(alice)
    parent = await create(alice)
    response = await alice.post(
        "/api/me/tasks", json={"title": "t", "parent_id": parent["id"], "list_id": garden["id"]}
    )
    assert_problem(response, 422, "parent_in_other_list")
    response = await alice.post(
        "/api/me/tasks", json={"title": "t", "parent_id": parent["id"], "list_id": None}
    )
    assert response.status_code == 201, response.text


async def test_another_users_task_as_parent_looks_like_a_missing_one(
    alice: User, bob: User
) -> None:
    theirs = await create(alice)
    mine = await create(bob)
    for method, url, extra in (
        ("POST", "/api/me/tasks", {"title": "t"}),
        ("PATCH", f"/api/me/tasks/{mine['id']}", {}),
        ("POST", f"/api/me/tasks/{mine['id']}/move", {}),
    ):
        attack = await bob.request(method, url, json={**extra, "parent_id": theirs["id"]})
        absent = await bob.request(method, url, json={**extra, "parent_id": MISSING})
        assert_problem(attack, 422, "parent_not_found")
        same_problem(attack, absent)
    assert await listing(alice, parent_id=theirs["id"]) == []


async def test_depth_is_bounded(alice: User) -> None:
    chain = [await create(alice, "level 0")]
    for level in range(1, 5):
        chain.append(await create(alice, f"level {level}", parent_id=chain[-1]["id"]))
    response = await alice.post("/api/me/tasks", json={"title": "5", "parent_id": chain[-1]["id"]})
    assert_problem(response, 422, "depth_exceeded")
    # Moving a two-level subtree under level 3 would reach level 5 too.
    top = await create(alice)
    await create(alice, parent_id=top["id"])
    response = await alice.patch(f"/api/me/tasks/{top['id']}", json={"parent_id": chain[3]["id"]})
    assert_problem(response, 422, "depth_exceeded")
    assert (await read(alice, top["id"]))["parent_id"] is None


@pytest.mark.parametrize("depth", [0, 1, 2])
async def test_cycles_are_refused(alice: User, depth: int) -> None:
    root = await create(alice)
    chain = [root]
    for _ in range(depth):
        chain.append(await create(alice, parent_id=chain[-1]["id"]))
    response = await alice.patch(f"/api/me/tasks/{root['id']}", json={"parent_id": chain[-1]["id"]})
    assert_problem(response, 422, "parent_cycle")
    assert (await read(alice, root["id"]))["parent_id"] is None


async def test_deleting_a_parent_deletes_its_subtasks(alice: User) -> None:
    parent = await create(alice)
    child = await create(alice, parent_id=parent["id"])
    grandchild = await create(alice, parent_id=child["id"])
    other = await create(alice)
    await alice.delete(f"/api/me/tasks/{parent['id']}")
    assert ids(await listing(alice)) == [other["id"]]
    assert (await alice.get(f"/api/me/tasks/{grandchild['id']}")).status_code == 404


async def test_moving_a_parent_to_another_list_takes_its_subtasks(alice: User) -> None:
    garden = await create_list(alice)
    parent = await create(alice)
    child = await create(alice, parent_id=parent["id"])
    grandchild = await create(alice, parent_id=child["id"])
    moved = await alice.patch(f"/api/me/tasks/{parent['id']}", json={"list_id": garden["id"]})
    assert moved.status_code == 200, moved.text
    for task in (child, grandchild):
        after = await read(alice, task["id"])
        assert after["list_id"] == garden["id"]
        assert after["parent_id"] == task["parent_id"]
    assert ids(await listing(alice, list_id=garden["id"], sort="position")) == [
        parent["id"],
        child["id"],
        grandchild["id"],
    ]


async def test_moving_a_subtask_to_another_list_makes_it_top_level(alice: User) -> None:
    garden = await create_list(alice)
    parent = await create(alice)
    child = await create(alice, parent_id=parent["id"])
    moved = await alice.patch(f"/api/me/tasks/{child['id']}", json={"list_id": garden["id"]})
    assert (moved.json()["list_id"], moved.json()["parent_id"]) == (garden["id"], None)


async def test_reparenting_into_another_list_moves_the_subtree(alice: User) -> None:
    garden = await create_list(alice)
    new_parent = await create(alice, list_id=garden["id"])
    task = await create(alice)
    child = await create(alice, parent_id=task["id"])
    moved = await alice.patch(f"/api/me/tasks/{task['id']}", json={"parent_id": new_parent["id"]})
    assert (moved.json()["parent_id"], moved.json()["list_id"]) == (new_parent["id"], garden["id"])
    assert (await read(alice, child["id"]))["list_id"] == garden["id"]


async def test_completing_a_parent_reports_its_open_subtasks(alice: User) -> None:
    parent = await create(alice)
    open_child = await create(alice, parent_id=parent["id"])
    await create(alice, parent_id=parent["id"], completed=True)
    open_grandchild = await create(alice, parent_id=open_child["id"])
    response = await alice.patch(f"/api/me/tasks/{parent['id']}/complete")
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    assert response.json()["open_subtask_ids"] == sorted([open_child["id"], open_grandchild["id"]])
    leaf = await alice.patch(f"/api/me/tasks/{open_grandchild['id']}/complete")
    assert leaf.json()["open_subtask_ids"] == []
