"""Versions, ETag, If-Match (412 with the current object), If-None-Match (304), and 428
under REQUIRE_IF_MATCH."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.conftest import User, make_settings
from tests.routes.support import assert_problem, create, create_list, read
from todo_api.main import create_app


def match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


async def test_a_new_task_is_version_1_with_its_etag(alice: User) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "v"})
    assert response.json()["version"] == 1
    assert response.headers["ETag"] == '"1"'
    got = await alice.get(f"/api/me/tasks/{response.json()['id']}")
    assert got.headers["ETag"] == '"1"'


async def test_every_change_raises_the_version(alice: User) -> None:
    task = await create(alice)
    url = f"/api/me/tasks/{task['id']}"
    patched = await alice.patch(url, json={"title": "one"})
    completed = await alice.patch(f"{url}/complete")
    moved = await alice.post(f"{url}/move", json={})
    versions = [r.json()["version"] for r in (patched, completed, moved)]
    assert versions == [2, 3, 4]
    assert moved.headers["ETag"] == '"4"'


async def test_if_match_with_the_current_version_applies(alice: User) -> None:
    task = await create(alice)
    url = f"/api/me/tasks/{task['id']}"
    response = await alice.patch(url, json={"title": "new"}, headers=match(1))
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'


async def test_a_stale_if_match_is_412_with_the_current_task(alice: User) -> None:
    task = await create(alice)
    url = f"/api/me/tasks/{task['id']}"
    await alice.patch(url, json={"title": "changed elsewhere"})
    response = await alice.patch(url, json={"title": "mine"}, headers=match(1))
    body = assert_problem(response, 412, "version_mismatch")
    assert body["current"]["title"] == "changed elsewhere"
    assert body["current"]["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert (await read(alice, task["id"]))["title"] == "changed elsewhere"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", {"title": "x"}),
        ("PATCH", "", {"priority": "high"}),
        ("PATCH", "", {"list_id": None}),
        ("PATCH", "", {}),
        ("DELETE", "", None),
        ("PATCH", "/complete", None),
        ("POST", "/move", {}),
    ],
)
async def test_every_conditional_write_refuses_a_stale_version(
    alice: User, method: str, suffix: str, body: object
) -> None:
    task = await create(alice)
    await alice.patch(f"/api/me/tasks/{task['id']}", json={"title": "bumped"})
    url = f"/api/me/tasks/{task['id']}{suffix}"
    kwargs = {"json": body} if body is not None else {}
    response = await alice.request(method, url, headers=match(1), **kwargs)
    assert_problem(response, 412, "version_mismatch")
    assert (await read(alice, task["id"]))["version"] == 2


async def test_if_match_star_matches_any_existing_task(alice: User) -> None:
    task = await create(alice)
    url = f"/api/me/tasks/{task['id']}"
    await alice.patch(url, json={"title": "bumped"})
    response = await alice.patch(url, json={"title": "star"}, headers={"If-Match": "*"})
    assert response.status_code == 200
    missing = await alice.patch("/api/me/tasks/999999999", json={}, headers={"If-Match": "*"})
    assert_problem(missing, 404, "task_not_found")


async def test_if_match_on_a_missing_task_is_404(alice: User, bob: User) -> None:
    task = await create(alice)
    response = await bob.delete(f"/api/me/tasks/{task['id']}", headers=match(1))
    assert_problem(response, 404, "task_not_found")


async def test_a_weak_etag_never_satisfies_if_match(alice: User) -> None:
    task = await create(alice)
    response = await alice.delete(f"/api/me/tasks/{task['id']}", headers={"If-Match": 'W/"1"'})
    assert_problem(response, 412, "version_mismatch")


async def test_if_none_match_with_the_current_etag_is_304(alice: User) -> None:
    task = await create(alice)
    url = f"/api/me/tasks/{task['id']}"
    response = await alice.get(url, headers={"If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == '"1"'
    await alice.patch(url, json={"title": "changed"})
    assert (await alice.get(url, headers={"If-None-Match": '"1"'})).status_code == 200


async def test_list_if_match_and_if_none_match(alice: User) -> None:
    garden = await create_list(alice)
    url = f"/api/me/lists/{garden['id']}"
    assert (await alice.get(url, headers={"If-None-Match": '"1"'})).status_code == 304
    renamed = await alice.patch(url, json={"name": "Yard"}, headers=match(1))
    assert renamed.headers["ETag"] == '"2"'
    stale = await alice.delete(url, headers=match(1))
    assert assert_problem(stale, 412, "version_mismatch")["current"]["name"] == "Yard"
    assert (await alice.delete(url, headers=match(2))).status_code == 200


async def test_renaming_a_tag_checks_its_version_and_bumps_its_tasks(alice: User) -> None:
    task = await create(alice, tags=["work"])
    tag = (await alice.get("/api/me/tags")).json()[0]
    url = f"/api/me/tags/{tag['id']}"
    stale = await alice.patch(url, json={"name": "Job"}, headers=match(tag["version"] + 1))
    assert_problem(stale, 412, "version_mismatch")
    renamed = await alice.patch(url, json={"name": "Job"}, headers=match(tag["version"]))
    assert renamed.status_code == 200
    after = await read(alice, task["id"])
    assert after["tags"] == ["Job"]
    assert after["version"] == task["version"] + 1


async def test_batch_if_version_is_checked_per_operation(alice: User) -> None:
    task = await create(alice)
    ok = {"op": "update", "id": task["id"], "data": {"title": "a"}, "if_version": 1}
    stale = {"op": "complete", "id": task["id"], "if_version": 1}
    response = await alice.post("/api/me/tasks/batch", json={"operations": [ok, stale]})
    body = assert_problem(response, 412, "version_mismatch")
    assert body["index"] == 1
    # All or nothing: the first operation was rolled back too.
    assert (await read(alice, task["id"]))["version"] == 1


async def test_twenty_concurrent_patches_with_one_if_match_have_one_winner(alice: User) -> None:
    task = await create(alice)
    url = f"/api/me/tasks/{task['id']}"

    async def attempt(n: int) -> httpx.Response:
        return await alice.patch(url, json={"title": f"writer {n}"}, headers=match(1))

    responses = await asyncio.gather(*(attempt(n) for n in range(20)))
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    assert sorted(r.status_code for r in responses) == [200] + [412] * 19
    final = await read(alice, task["id"])
    assert final["title"] == winners[0].json()["title"]
    assert final["version"] == 2
    for loser in responses:
        if loser.status_code == 412:
            assert loser.json()["current"]["version"] == 2


@pytest.fixture(scope="module")
async def strict(owner_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(owner_url, require_if_match=True))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://strict") as http:
            yield http


async def test_require_if_match_refuses_unconditional_writes_with_428(
    alice: User, strict: httpx.AsyncClient
) -> None:
    task = await create(alice)
    url = f"/api/me/tasks/{task['id']}"
    refused = await strict.patch(url, json={"title": "x"}, headers=alice.headers)
    assert_problem(refused, 428, "precondition_required")
    batch = {"operations": [{"op": "delete", "id": task["id"]}]}
    refused_batch = await strict.post("/api/me/tasks/batch", json=batch, headers=alice.headers)
    assert_problem(refused_batch, 428, "precondition_required")
    headers = {**alice.headers, **match(1)}
    assert (await strict.patch(url, json={"title": "x"}, headers=headers)).status_code == 200
    # Creating needs no precondition.
    created = await strict.post("/api/me/tasks", json={"title": "new"}, headers=alice.headers)
    assert created.status_code == 201
