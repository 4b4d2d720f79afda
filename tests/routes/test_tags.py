"""Tags: the list with task counts, renaming (and merging), deleting, isolation."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.conftest import User
from tests.routes.support import assert_problem, create, read


async def tags_of(user: User, spelling: str = "me") -> list[dict[str, Any]]:
    prefix = {"canonical": f"/api/{user.id}", "me": "/api/me", "alias": "/api"}[spelling]
    response = await user.get(f"{prefix}/tags")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def by_name(tags: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {tag["name"]: tag for tag in tags}


@pytest.mark.parametrize("spelling", ["canonical", "me", "alias"])
async def test_tags_are_listed_case_insensitively_with_task_counts(
    alice: User, spelling: str
) -> None:
    await create(alice, tags=["work", "Beta"])
    await create(alice, tags=["Work"])
    await create(alice, tags=["alpha"])
    tags = await tags_of(alice, spelling)
    assert [(t["name"], t["task_count"]) for t in tags] == [("alpha", 1), ("Beta", 1), ("work", 2)]
    assert all(set(t) == {"id", "name", "task_count", "version"} for t in tags)


async def test_counts_follow_task_deletion(alice: User) -> None:
    first = await create(alice, tags=["x"])
    await create(alice, tags=["x"])
    await alice.delete(f"/api/me/tasks/{first['id']}")
    assert by_name(await tags_of(alice))["x"]["task_count"] == 1


async def test_rename_changes_the_name_on_every_task(alice: User) -> None:
    task = await create(alice, tags=["wrk"])
    tag = by_name(await tags_of(alice))["wrk"]
    response = await alice.patch(f"/api/me/tags/{tag['id']}", json={"name": " Work "})
    assert response.status_code == 200, response.text
    assert {k: v for k, v in response.json().items() if k != "version"} == {
        "id": tag["id"],
        "name": "Work",
        "task_count": 1,
    }
    assert (await read(alice, task["id"]))["tags"] == ["Work"]


async def test_rename_to_another_case_of_the_same_name_keeps_the_tag(alice: User) -> None:
    await create(alice, tags=["work"])
    tag = by_name(await tags_of(alice))["work"]
    response = await alice.patch(f"/api/me/tags/{tag['id']}", json={"name": "WORK"})
    assert {k: v for k, v in response.json().items() if k != "version"} == {
        "id": tag["id"],
        "name": "WORK",
        "task_count": 1,
    }


async def test_rename_onto_an_existing_tag_merges_them(alice: User) -> None:
    both = await create(alice, tags=["job", "work"])
    only_job = await create(alice, tags=["job"])
    only_work = await create(alice, tags=["work"])
    tags = by_name(await tags_of(alice))
    response = await alice.patch(f"/api/me/tags/{tags['job']['id']}", json={"name": "Work"})
    assert response.status_code == 200, response.text
    assert {k: v for k, v in response.json().items() if k != "version"} == {
        "id": tags["work"]["id"],
        "name": "Work",
        "task_count": 3,
    }
    for task in (both, only_job, only_work):
        assert (await read(alice, task["id"]))["tags"] == ["Work"]
    assert [t["name"] for t in await tags_of(alice)] == ["Work"]


async def test_delete_removes_the_tag_from_its_tasks(alice: User) -> None:
    task = await create(alice, tags=["a", "b"])
    tag = by_name(await tags_of(alice))["a"]
    deleted = await alice.delete(f"/api/me/tags/{tag['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {**tag, "task_count": 1}
    assert (await read(alice, task["id"]))["tags"] == ["b"]
    assert_problem(await alice.delete(f"/api/me/tags/{tag['id']}"), 404, "tag_not_found")


@pytest.mark.parametrize("name", ["", "  ", "x" * 51, "a\tb", None, 5])
async def test_invalid_tag_names_are_422(alice: User, name: Any) -> None:
    await create(alice, tags=["t"])
    tag = by_name(await tags_of(alice))["t"]
    response = await alice.patch(f"/api/me/tags/{tag['id']}", json={"name": name})
    assert_problem(response, 422, "validation_failed")


async def test_another_users_tags_are_invisible_and_unmergeable(alice: User, bob: User) -> None:
    await create(alice, tags=["private"])
    await create(bob, tags=["mine"])
    assert [t["name"] for t in await tags_of(bob)] == ["mine"]
    # Renaming Bob's tag to Alice's name creates no link to her tag.
    mine = by_name(await tags_of(bob))["mine"]
    response = await bob.patch(f"/api/me/tags/{mine['id']}", json={"name": "private"})
    assert {k: v for k, v in response.json().items() if k != "version"} == {
        "id": mine["id"],
        "name": "private",
        "task_count": 1,
    }
    assert by_name(await tags_of(alice))["private"]["task_count"] == 1


async def test_the_database_hides_another_users_lists_tags_and_links(
    alice: User, bob: User, owner_conn: Any
) -> None:
    garden = (await alice.post("/api/me/lists", json={"name": "Garden"})).json()
    task = await create(alice, tags=["private"], list_id=garden["id"])
    await create(bob)
    await owner_conn.execute("BEGIN")
    try:
        await owner_conn.execute("SET LOCAL ROLE todo_api_app")
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", bob.id)
        for table in ("lists", "tags", "task_tags"):
            assert await owner_conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner_conn.execute(
                "INSERT INTO lists (user_id, name) VALUES ($1, 'planted')", alice.id
            )
    finally:
        await owner_conn.execute("ROLLBACK")
    assert (await read(alice, task["id"]))["tags"] == ["private"]
