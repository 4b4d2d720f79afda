"""Manual order: moving before/after a sibling, to the end, to another list; concurrent
moves; keys that never renumber the list; another user's anchors."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
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
from todo_api.services import positions

MISSING = 2**63 - 1


async def order(user: User, **params: Any) -> list[int]:
    return ids(await listing(user, sort="position", **params))


async def move(user: User, task_id: int, **body: Any) -> dict[str, Any]:
    response = await user.post(f"/api/me/tasks/{task_id}/move", json=body)
    assert response.status_code == 200, response.text
    moved: dict[str, Any] = response.json()
    return moved


@pytest.fixture
async def abcd(alice: User) -> list[int]:
    return [(await create(alice, name))["id"] for name in "abcd"]


async def test_new_tasks_go_to_the_end(alice: User, abcd: list[int]) -> None:
    assert await order(alice) == abcd


@pytest.mark.parametrize(
    ("moving", "where", "anchor", "expected"),
    [
        (3, "before", 0, [3, 0, 1, 2]),
        (0, "after", 3, [1, 2, 3, 0]),
        (2, "before", 1, [0, 2, 1, 3]),
        (0, "after", 1, [1, 0, 2, 3]),
        (1, "after", 0, [0, 1, 2, 3]),
        (3, "after", 2, [0, 1, 2, 3]),
    ],
)
async def test_before_and_after_a_sibling(
    alice: User, abcd: list[int], moving: int, where: str, anchor: int, expected: list[int]
) -> None:
    await move(alice, abcd[moving], **{where: abcd[anchor]})
    assert await order(alice) == [abcd[i] for i in expected]


async def test_a_move_changes_only_the_moved_tasks_position(alice: User, abcd: list[int]) -> None:
    before = {t["id"]: t["position"] for t in await listing(alice)}
    moved = await move(alice, abcd[3], after=abcd[0])
    after = {t["id"]: t["position"] for t in await listing(alice)}
    assert {k for k in after if after[k] != before[k]} == {abcd[3]}
    assert before[abcd[0]] < moved["position"] < before[abcd[1]]


async def test_without_an_anchor_a_task_goes_to_the_end(alice: User, abcd: list[int]) -> None:
    await move(alice, abcd[0])
    assert await order(alice) == [*abcd[1:], abcd[0]]


async def test_moving_to_another_list_puts_it_at_the_end_there(
    alice: User, abcd: list[int]
) -> None:
    garden = await create_list(alice)
    first = await create(alice, list_id=garden["id"])
    moved = await move(alice, abcd[1], list_id=garden["id"])
    assert moved["list_id"] == garden["id"]
    assert await order(alice, list_id=garden["id"]) == [first["id"], abcd[1]]
    back = await move(alice, abcd[1], list_id=None, before=abcd[0])
    assert back["list_id"] is None
    assert await order(alice, list_id=0) == [abcd[1], abcd[0], abcd[2], abcd[3]]


async def test_subtasks_are_ordered_among_their_siblings(alice: User) -> None:
    parent = await create(alice)
    kids = [(await create(alice, f"k{n}", parent_id=parent["id"]))["id"] for n in range(3)]
    await move(alice, kids[2], before=kids[0])
    assert await order(alice, parent_id=parent["id"]) == [kids[2], kids[0], kids[1]]
    # An anchor with another parent is not a sibling.
    stranger = await create(alice)
    response = await alice.post(
        f"/api/me/tasks/{kids[0]}/move", json={"before": stranger["id"], "parent_id": parent["id"]}
    )
    assert_problem(response, 422, "anchor_not_sibling")
    # Without an explicit parent, the anchor's parent is adopted.
    adopted = await move(alice, kids[0], before=stranger["id"])
    assert adopted["parent_id"] is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"before": 1, "after": 2}, "validation_failed"),
        ({"before": "1"}, "validation_failed"),
        ({"position": "a0"}, "validation_failed"),
    ],
)
async def test_invalid_move_bodies_are_422(
    alice: User, abcd: list[int], body: dict[str, Any], code: str
) -> None:
    response = await alice.post(f"/api/me/tasks/{abcd[0]}/move", json=body)
    assert_problem(response, 422, code)


async def test_a_task_cannot_be_its_own_anchor(alice: User, abcd: list[int]) -> None:
    response = await alice.post(f"/api/me/tasks/{abcd[0]}/move", json={"after": abcd[0]})
    assert_problem(response, 422, "anchor_is_task")


@pytest.mark.parametrize("where", ["before", "after"])
async def test_another_users_anchor_looks_like_a_missing_one(
    alice: User, bob: User, where: str
) -> None:
    theirs = await create(alice)
    mine = await create(bob)
    url = f"/api/me/tasks/{mine['id']}/move"
    attack = await bob.post(url, json={where: theirs["id"]})
    absent = await bob.post(url, json={where: MISSING})
    assert_problem(attack, 422, f"{where}_not_found")
    same_problem(attack, absent)
    assert (await read(alice, theirs["id"])) == theirs


async def test_concurrent_moves_leave_a_consistent_order(
    alice: User, owner_conn: asyncpg.Connection
) -> None:
    tasks = [(await create(alice, f"t{n}"))["id"] for n in range(8)]
    anchor = tasks[0]
    movers = tasks[2:]
    responses = await asyncio.gather(
        *(alice.post(f"/api/me/tasks/{m}/move", json={"after": anchor}) for m in movers)
    )
    assert {r.status_code for r in responses} == {200}
    final = await listing(alice, sort="position")
    keys = [t["position"] for t in final]
    assert len(set(keys)) == len(keys)  # no two tasks share a position
    assert keys == sorted(keys, key=str.encode)
    found = ids(final)
    # Everybody that moved sits right after the anchor, in the order the moves ran.
    assert found[0] == anchor
    assert set(found[1:7]) == set(movers)
    assert found[7] == tasks[1]


async def test_many_moves_into_one_gap_respace_the_list_in_order(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(positions, "MAX_KEY_LENGTH", 24)
    first, last = (await create(alice, "first"))["id"], (await create(alice, "last"))["id"]
    inserted = []
    for n in range(25):
        task = await create(alice, f"n{n}")
        # Always right after `first`: the gap keeps halving, so keys keep growing.
        await move(alice, task["id"], after=first)
        inserted.insert(0, task["id"])
    final = await listing(alice, sort="position")
    assert ids(final) == [first, *inserted, last]
    assert max(len(t["position"]) for t in final) <= 24
