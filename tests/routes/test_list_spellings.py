"""The list's query parameters in the spellings public frontends send: each means the
same as the canonical form, and a name the API does not read is named back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.routes.support import assert_problem, create, ids


async def listing(user: User, **params: Any) -> list[int]:
    response = await user.get("/api/me/tasks", params=params)
    assert response.status_code == 200, response.text
    return ids(response.json())


@pytest.fixture
async def tasks(alice: User) -> list[dict[str, Any]]:
    made = []
    for n, priority in enumerate(["low", "medium", "high", "medium"]):
        made.append(await create(alice, f"{'milk ' if n % 2 else ''}task {n}", priority=priority))
    await alice.patch(f"/api/me/tasks/{made[0]['id']}", json={"completed": True})
    return made


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ({"sort": "created_at"}, {"sort": "created"}),
        ({"sort": "-created_at"}, {"sort": "created", "order": "desc"}),
        ({"sort": "created_at", "order": "asc"}, {"sort": "created", "order": "asc"}),
        ({"sort_by": "created_at", "sort_order": "asc"}, {"sort": "created", "order": "asc"}),
        ({"sort": "updated_at"}, {"sort": "updated"}),
        ({"sort": "due"}, {"sort": "due_date"}),
        ({"sort": "-title"}, {"sort": "title", "order": "desc"}),
        ({"sort": "PRIORITY", "order": "ASC"}, {"sort": "priority", "order": "asc"}),
        ({"status": "incomplete"}, {"status": "pending"}),
        ({"status": "active"}, {"status": "pending"}),
        ({"status": "open"}, {"status": "pending"}),
        ({"status": "Pending"}, {"status": "pending"}),
        ({"status": "done"}, {"status": "completed"}),
        ({"completed": "true"}, {"status": "completed"}),
        ({"completed": "false"}, {"status": "pending"}),
        ({"search": "milk"}, {"q": "milk"}),
        ({"priority": "MEDIUM"}, {"priority": "medium"}),
    ],
)
async def test_each_spelling_means_the_canonical_query(
    alice: User, tasks: list[dict[str, Any]], spelled: dict[str, str], canonical: dict[str, str]
) -> None:
    expected = await listing(alice, **canonical)
    assert await listing(alice, **spelled) == expected
    assert expected  # the fixture's tasks make every query non-empty


async def test_a_cursor_from_one_spelling_continues_another(
    alice: User, tasks: list[dict[str, Any]]
) -> None:
    first = await alice.get("/api/me/tasks", params={"sort": "-created_at", "limit": 2})
    cursor = httpx.URL(first.links["next"]["url"]).params["cursor"]
    rest = await alice.get(
        "/api/me/tasks", params={"sort": "created", "order": "desc", "limit": 2, "cursor": cursor}
    )
    assert rest.status_code == 200, rest.text
    assert ids(first.json()) + ids(rest.json()) == (await listing(alice))[:4]


@pytest.mark.parametrize(
    "paging",
    [
        {"offset": 1, "limit": 2},
        {"skip": 1, "limit": 2},
    ],
)
async def test_offset_paging_skips_tasks(
    alice: User, tasks: list[dict[str, Any]], paging: dict[str, int]
) -> None:
    every = await listing(alice)
    assert await listing(alice, **paging) == every[1:3]


@pytest.mark.parametrize("size_name", ["page_size", "per_page", "limit"])
async def test_page_numbers_count_from_one(
    alice: User, tasks: list[dict[str, Any]], size_name: str
) -> None:
    every = await listing(alice)
    pages = [await listing(alice, page=n, **{size_name: 3}) for n in (1, 2, 3)]
    assert pages == [every[0:3], every[3:4], []]


async def test_offset_pages_in_due_order_and_with_tags(alice: User) -> None:
    for day in ("2030-01-03", "2030-01-01", None, "2030-01-02"):
        await create(alice, tags=["x"], **({"due_date": day} if day else {}))
    every = await listing(alice, sort="due_date")
    assert await listing(alice, sort="due_date", offset=1, limit=2) == every[1:3]
    assert await listing(alice, sort="due_date", tag="x", offset=2, limit=5) == every[2:]


async def test_the_next_link_of_an_offset_page_is_a_cursor(
    alice: User, tasks: list[dict[str, Any]]
) -> None:
    response = await alice.get("/api/me/tasks", params={"page": 1, "page_size": 2})
    query = httpx.URL(response.links["next"]["url"]).params
    assert "page" not in query and query["page_size"] == "2" and query["cursor"]
    following = await alice.get(response.links["next"]["url"])
    assert ids(following.json()) == (await listing(alice))[2:4]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "created", "sort_by": "title"},
        {"q": "a", "search": "b"},
        {"order": "asc", "sort_order": "desc"},
        {"status": "completed", "completed": "false"},
        {"offset": 1, "cursor": "abc"},
        {"page": 2, "offset": 1},
        {"offset": 10_001},
        {"page": 5_000, "page_size": 200},
        {"page": 0},
        {"page_size": 201},
        {"sort": "-nonsense"},
        {"sort": "--title"},
        {"status": "finished"},
        {"priority": "urgent"},
        {"completed": "maybe"},
    ],
)
async def test_contradictory_or_unknown_values_are_422(alice: User, params: dict[str, Any]) -> None:
    assert_problem(await alice.get("/api/me/tasks", params=params), 422, "validation_failed")


async def test_unknown_parameters_are_ignored_and_named(
    alice: User, tasks: list[dict[str, Any]]
) -> None:
    response = await alice.get(
        "/api/me/tasks", params={"_": "1733512345", "userId": alice.id, "status": "pending"}
    )
    assert response.status_code == 200
    assert ids(response.json()) == await listing(alice, status="pending")
    assert response.headers["ignored-query-params"] == "_, userId"


async def test_known_parameters_are_never_reported(alice: User) -> None:
    response = await alice.get("/api/me/tasks", params={"sort_by": "title", "per_page": 5})
    assert "ignored-query-params" not in response.headers
    one = await alice.get("/api/me/tasks/1", params={"v": "2"})
    assert one.headers["ignored-query-params"] == "v"


async def test_odd_parameter_names_are_shown_safely(alice: User) -> None:
    response = await alice.get("/api/me/tasks?a%0D%0Ab=1&%E2%9C%93=1&x%2Cy=2")
    assert response.status_code == 200
    assert response.headers["ignored-query-params"] == "?, ?, ?"
