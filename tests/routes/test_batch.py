"""Bulk changes (`POST /tasks/batch`) and clearing completed tasks (`DELETE /tasks`)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from tests.conftest import User
from tests.routes.support import assert_problem, create, create_list, ids, listing, read

MISSING = 2**63 - 1


async def batch(user: User, *operations: dict[str, Any]) -> Any:
    return await user.post("/api/me/tasks/batch", json={"operations": list(operations)})


@pytest.mark.parametrize("prefix", ["/api/me", "/api"])
async def test_a_batch_applies_every_operation_with_one_result_each(
    alice: User, prefix: str
) -> None:
    updated, completed, deleted = [await create(alice, n) for n in ("u", "c", "d")]
    response = await alice.post(
        f"{prefix}/tasks/batch",
        json={
            "operations": [
                {"op": "create", "data": {"title": "new", "tags": ["x"]}},
                {"op": "update", "id": updated["id"], "data": {"priority": "high"}},
                {"op": "complete", "id": completed["id"]},
                {"op": "delete", "id": deleted["id"]},
            ]
        },
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["index"], r["op"], r["status"]) for r in results] == [
        (0, "create", 201),
        (1, "update", 200),
        (2, "complete", 200),
        (3, "delete", 204),
    ]
    assert results[0]["task"]["tags"] == ["x"]
    assert results[1]["task"]["priority"] == "high"
    assert results[2]["task"]["completed"] is True
    assert (results[3]["id"], results[3]["task"]) == (deleted["id"], None)
    assert (await read(alice, results[0]["id"]))["title"] == "new"
    assert (await alice.get(f"/api/me/tasks/{deleted['id']}")).status_code == 404


async def test_a_failing_operation_rolls_back_the_whole_batch(alice: User) -> None:
    task = await create(alice, "untouched")
    response = await batch(
        alice,
        {"op": "create", "data": {"title": "never"}},
        {"op": "update", "id": task["id"], "data": {"title": "changed"}},
        {"op": "delete", "id": MISSING},
    )
    problem = assert_problem(response, 404, "task_not_found")
    assert problem["index"] == 2
    assert problem["detail"].startswith("Operation 2:")
    assert await listing(alice) == [task]


async def test_another_users_ids_fail_the_batch_like_missing_ones(alice: User, bob: User) -> None:
    theirs = await create(alice)
    garden = await create_list(alice)
    for operation, status, code in (
        ({"op": "complete", "id": theirs["id"]}, 404, "task_not_found"),
        ({"op": "delete", "id": theirs["id"]}, 404, "task_not_found"),
        ({"op": "update", "id": theirs["id"], "data": {"title": "x"}}, 404, "task_not_found"),
        ({"op": "create", "data": {"title": "x", "list_id": garden["id"]}}, 422, "list_not_found"),
        (
            {"op": "create", "data": {"title": "x", "parent_id": theirs["id"]}},
            422,
            "parent_not_found",
        ),
    ):
        response = await batch(bob, {"op": "create", "data": {"title": "ok"}}, operation)
        assert assert_problem(response, status, code)["index"] == 1
    assert await read(alice, theirs["id"]) == theirs
    assert await listing(bob) == []


async def test_a_batch_over_quota_fails_whole(
    app: FastAPI, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.quotas, "tasks", 2)
    response = await batch(alice, *({"op": "create", "data": {"title": f"{n}"}} for n in range(3)))
    assert assert_problem(response, 409, "quota_tasks")["index"] == 2
    assert await listing(alice) == []


@pytest.mark.parametrize(
    "body",
    [
        {"operations": []},
        {"operations": [{"op": "create", "data": {"title": "t"}}] * 101},
        {"operations": [{"op": "rename", "id": 1}]},
        {"operations": [{"op": "delete"}]},
        {"operations": [{"op": "create", "data": {"title": ""}}]},
        {"operations": [{"op": "delete", "id": 1, "extra": True}]},
        {"ops": []},
    ],
    ids=["empty", "101", "unknown-op", "no-id", "bad-data", "extra-field", "wrong-key"],
)
async def test_invalid_batches_are_422(alice: User, body: dict[str, Any]) -> None:
    response = await alice.post("/api/me/tasks/batch", json=body)
    assert_problem(response, 422, "validation_failed")


async def test_one_hundred_operations_are_accepted(alice: User) -> None:
    response = await batch(
        alice, *({"op": "create", "data": {"title": f"{n}"}} for n in range(100))
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 100


# --- clearing completed tasks ----------------------------------------------------------------


async def test_clearing_completed_tasks_needs_status_completed(alice: User) -> None:
    task = await create(alice, completed=True)
    for params in ({}, {"status": "all"}, {"status": "pending"}):
        response = await alice.delete("/api/me/tasks", params=params)
        assert_problem(response, 422, "validation_failed")
    assert (await read(alice, task["id"]))["completed"] is True


async def test_clearing_completed_tasks_deletes_only_those(alice: User, bob: User) -> None:
    garden = await create_list(alice)
    kept = await create(alice)
    await create(alice, completed=True)
    in_garden = await create(alice, completed=True, list_id=garden["id"])
    others = await create(bob, completed=True)
    response = await alice.delete("/api/me/tasks", params={"status": "completed", "list_id": 0})
    assert response.json() == {"deleted": 1}
    assert set(ids(await listing(alice))) == {kept["id"], in_garden["id"]}
    response = await alice.delete("/api/tasks", params={"status": "completed"})
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 1}
    assert ids(await listing(alice)) == [kept["id"]]
    assert await read(bob, others["id"]) == others
