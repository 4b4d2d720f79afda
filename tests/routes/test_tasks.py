"""The task routes as a client uses them: every route on every spelling, listing and paging."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from tests.conftest import User
from tests.routes.support import assert_problem

SPELLINGS = ("canonical", "me", "alias")


@pytest.fixture(params=SPELLINGS)
def spelling(request: pytest.FixtureRequest) -> str:
    """Each success-path test runs on `/api/{id}/tasks`, `/api/me/tasks` and `/api/tasks`."""
    value: str = request.param
    return value


def tasks_url(user: User, spelling: str = "me") -> str:
    prefix = {"canonical": f"/api/{user.id}", "me": "/api/me", "alias": "/api"}[spelling]
    return f"{prefix}/tasks"


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ids(tasks: list[dict[str, Any]]) -> list[int]:
    return [task["id"] for task in tasks]


async def read(user: User, task: dict[str, Any]) -> dict[str, Any]:
    response = await user.get(f"{tasks_url(user)}/{task['id']}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- success paths, on every spelling --------------------------------------------------


async def test_list_returns_own_tasks_as_plain_array(alice: User, spelling: str) -> None:
    first = await alice.create_task("First")
    second = await alice.create_task("Second")
    response = await alice.get(tasks_url(alice, spelling))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [second, first]


async def test_list_of_new_user_is_empty_array(alice: User, spelling: str) -> None:
    response = await alice.get(tasks_url(alice, spelling))
    assert response.status_code == 200, response.text
    assert response.json() == []


async def test_create_returns_201_with_the_new_task(alice: User, spelling: str) -> None:
    response = await alice.post(
        tasks_url(alice, spelling), json={"title": "Buy milk", "description": "oat"}
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert set(task) == {
        "id",
        "user_id",
        "title",
        "description",
        "completed",
        "completed_at",
        "created_at",
        "updated_at",
        # The full task model (issue 4); each is covered by its own tests.
        "priority",
        "tags",
        "due_date",
        "recurrence",
        "repeat_from",
        "previous_occurrence_id",
        "next_occurrence_id",
        "remind_at",
        "reminder_dismissed_at",
        "list_id",
        "parent_id",
        "position",
        # Concurrent clients (issue 6).
        "version",
    }
    assert isinstance(task["id"], int)
    assert task["user_id"] == alice.id
    assert task["title"] == "Buy milk"
    assert task["description"] == "oat"
    assert task["completed"] is False
    assert task["completed_at"] is None
    assert task["created_at"] == task["updated_at"]


async def test_create_location_resolves_to_the_new_task(alice: User, spelling: str) -> None:
    response = await alice.post(tasks_url(alice, spelling), json={"title": "Buy milk"})
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert httpx.URL(location).path == f"{tasks_url(alice, spelling)}/{response.json()['id']}"
    fetched = await alice.get(location)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == response.json()


async def test_create_completed_task_stamps_completed_at(alice: User, spelling: str) -> None:
    response = await alice.post(
        tasks_url(alice, spelling), json={"title": "Done", "completed": True}
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["completed"] is True
    assert parse_time(task["completed_at"]) == parse_time(task["created_at"])


async def test_get_returns_the_task(alice: User, spelling: str) -> None:
    task = await alice.create_task("Read me", description="details")
    response = await alice.get(f"{tasks_url(alice, spelling)}/{task['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == task


async def test_put_replaces_title_description_and_completed(alice: User, spelling: str) -> None:
    task = await alice.create_task("Old", description="old text")
    response = await alice.put(
        f"{tasks_url(alice, spelling)}/{task['id']}",
        json={"title": "New", "description": "new text", "completed": True},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["title"], body["description"], body["completed"]) == (
        task["id"],
        "New",
        "new text",
        True,
    )
    assert body["completed_at"] is not None
    assert body["created_at"] == task["created_at"]
    assert await read(alice, task) == body


async def test_put_keeps_omitted_fields(alice: User, spelling: str) -> None:
    # The spec's own PUT body on a completed task: it stays completed.
    task = await alice.create_task("Old", description="old text", completed=True)
    response = await alice.put(
        f"{tasks_url(alice, spelling)}/{task['id']}", json={"title": "New", "description": "d"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["description"]) == ("New", "d")
    assert body["completed"] is True
    assert body["completed_at"] == task["completed_at"]


async def test_put_takes_a_partial_body_of_any_fields_post_takes(
    alice: User, spelling: str
) -> None:
    task = await alice.create_task("Old", description="keep me")
    response = await alice.put(
        f"{tasks_url(alice, spelling)}/{task['id']}",
        json={"completed": True, "priority": "high", "due_date": "2031-05-01", "tags": ["x"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["description"]) == ("Old", "keep me")
    assert (body["completed"], body["priority"], body["due_date"], body["tags"]) == (
        True,
        "high",
        "2031-05-01",
        ["x"],
    )
    assert await read(alice, task) == body


async def test_put_null_clears_a_clearable_field(alice: User, spelling: str) -> None:
    task = await alice.create_task("Old", description="text", due_date="2031-05-01")
    response = await alice.put(
        f"{tasks_url(alice, spelling)}/{task['id']}", json={"description": None, "due_date": None}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["description"], response.json()["due_date"]) == (None, None)
    refused = await alice.put(f"{tasks_url(alice, spelling)}/{task['id']}", json={"title": None})
    assert refused.status_code == 422


async def test_put_and_patch_are_the_same_update(alice: User) -> None:
    body = {"title": "Same", "priority": "low", "completed": True}
    by_put = await alice.put(f"/api/me/tasks/{(await alice.create_task())['id']}", json=body)
    by_patch = await alice.patch(f"/api/me/tasks/{(await alice.create_task())['id']}", json=body)
    ignored = {"id", "created_at", "updated_at", "completed_at", "position"}
    assert {k: v for k, v in by_put.json().items() if k not in ignored} == {
        k: v for k, v in by_patch.json().items() if k not in ignored
    }


async def test_patch_changes_only_the_fields_sent(alice: User, spelling: str) -> None:
    task = await alice.create_task("Old", description="keep me")
    response = await alice.patch(
        f"{tasks_url(alice, spelling)}/{task['id']}", json={"title": "New"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "New"
    assert body["description"] == "keep me"
    assert body["completed"] is False
    assert await read(alice, task) == body


async def test_patch_description_to_null_clears_it(alice: User, spelling: str) -> None:
    task = await alice.create_task("Title", description="text")
    response = await alice.patch(
        f"{tasks_url(alice, spelling)}/{task['id']}", json={"description": None}
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] is None
    assert response.json()["title"] == "Title"


async def test_patch_with_empty_body_changes_nothing(alice: User, spelling: str) -> None:
    task = await alice.create_task("Same", description="same")
    response = await alice.patch(f"{tasks_url(alice, spelling)}/{task['id']}", json={})
    assert response.status_code == 200, response.text
    assert response.json() == task
    assert await read(alice, task) == task


async def test_delete_answers_the_deleted_task_then_it_is_gone(alice: User, spelling: str) -> None:
    # Clients that call `.json()` on every 2xx (as the FastAPI/SQLModel tutorial's
    # delete answers 200 with JSON) keep working.
    task = await alice.create_task("Doomed", tags=["x"])
    url = f"{tasks_url(alice, spelling)}/{task['id']}"
    response = await alice.delete(url)
    assert response.status_code == 200, response.text
    assert response.json() == task
    assert_problem(await alice.get(url), 404, "task_not_found")
    assert_problem(await alice.delete(url), 404, "task_not_found")


@pytest.mark.parametrize(
    "prefer", ["return=minimal", "respond-async, return=minimal", 'RETURN="minimal"']
)
async def test_delete_with_prefer_minimal_is_204(alice: User, spelling: str, prefer: str) -> None:
    task = await alice.create_task("Doomed")
    url = f"{tasks_url(alice, spelling)}/{task['id']}"
    response = await alice.delete(url, headers={"Prefer": prefer})
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["preference-applied"] == "return=minimal"
    assert_problem(await alice.get(url), 404, "task_not_found")


@pytest.mark.parametrize("kind", ["lists", "tags"])
async def test_lists_and_tags_honour_prefer_minimal(alice: User, kind: str) -> None:
    if kind == "lists":
        created = await alice.post("/api/me/lists", json={"name": "Garden"})
        object_id = created.json()["id"]
    else:
        await alice.create_task(tags=["x"])
        object_id = (await alice.get("/api/me/tags")).json()[0]["id"]
    url = f"/api/me/{kind}/{object_id}"
    response = await alice.delete(url, headers={"Prefer": "return=minimal"})
    assert (response.status_code, response.content) == (204, b"")
    assert (await alice.delete(url)).status_code == 404


async def test_complete_without_body_toggles(alice: User, spelling: str) -> None:
    task = await alice.create_task("Flip")
    url = f"{tasks_url(alice, spelling)}/{task['id']}/complete"
    first = await alice.patch(url)
    assert first.status_code == 200, first.text
    assert first.json()["completed"] is True
    assert first.json()["completed_at"] is not None
    second = await alice.patch(url)
    assert second.status_code == 200, second.text
    assert second.json()["completed"] is False
    assert second.json()["completed_at"] is None


@pytest.mark.parametrize("initially", [False, True])
@pytest.mark.parametrize("wanted", [False, True])
async def test_complete_with_body_sets_the_value(
    alice: User, spelling: str, initially: bool, wanted: bool
) -> None:
    task = await alice.create_task("Set", completed=initially)
    response = await alice.patch(
        f"{tasks_url(alice, spelling)}/{task['id']}/complete", json={"completed": wanted}
    )
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is wanted
    assert (response.json()["completed_at"] is not None) is wanted


async def test_complete_with_empty_object_toggles(alice: User) -> None:
    task = await alice.create_task("Flip")
    response = await alice.patch(f"{tasks_url(alice)}/{task['id']}/complete", json={})
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True


# --- completed_at and timestamps ---------------------------------------------------------


def _completion_requests(
    user: User, task_id: int, completed: bool
) -> dict[str, tuple[str, str, Any]]:
    url = f"{tasks_url(user)}/{task_id}"
    return {
        "complete": ("PATCH", f"{url}/complete", {"completed": completed}),
        "patch": ("PATCH", url, {"completed": completed}),
        "put": ("PUT", url, {"title": "Kept", "completed": completed}),
    }


@pytest.mark.parametrize("via", ["complete", "patch", "put"])
async def test_completing_stamps_completed_at(alice: User, via: str) -> None:
    task = await alice.create_task("Kept")
    method, url, body = _completion_requests(alice, task["id"], True)[via]
    response = await alice.request(method, url, json=body)
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["completed"] is True
    assert parse_time(done["completed_at"]) == parse_time(done["updated_at"])
    assert parse_time(done["completed_at"]) > parse_time(task["created_at"])


@pytest.mark.parametrize("via", ["complete", "patch", "put"])
async def test_completing_again_keeps_completed_at(alice: User, via: str) -> None:
    task = await alice.create_task("Kept", completed=True)
    method, url, body = _completion_requests(alice, task["id"], True)[via]
    response = await alice.request(method, url, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    assert response.json()["completed_at"] == task["completed_at"]


@pytest.mark.parametrize("via", ["complete", "patch", "put"])
async def test_uncompleting_clears_completed_at(alice: User, via: str) -> None:
    task = await alice.create_task("Kept", completed=True)
    method, url, body = _completion_requests(alice, task["id"], False)[via]
    response = await alice.request(method, url, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is False
    assert response.json()["completed_at"] is None


async def test_patch_without_completed_keeps_completed_at(alice: User) -> None:
    task = await alice.create_task("Done", completed=True)
    response = await alice.patch(f"{tasks_url(alice)}/{task['id']}", json={"title": "Renamed"})
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    assert response.json()["completed_at"] == task["completed_at"]


async def test_timestamps_are_utc_with_z_suffix(alice: User) -> None:
    task = await alice.create_task("Stamped", completed=True)
    for field in ("created_at", "updated_at", "completed_at"):
        assert task[field].endswith("Z"), task[field]
        assert parse_time(task[field]).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "", {"title": "Changed"}),
        ("PUT", "", {"title": "Changed"}),
        ("PATCH", "/complete", None),
    ],
)
async def test_updated_at_moves_forward_on_update(
    alice: User, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    task = await alice.create_task("Original")
    response = await alice.request(method, f"{tasks_url(alice)}/{task['id']}{suffix}", json=body)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert parse_time(updated["updated_at"]) > parse_time(task["updated_at"])
    assert updated["created_at"] == task["created_at"]


# --- listing: filters, sorting, limits ---------------------------------------------------


@pytest.fixture
async def mixed(alice: User) -> dict[str, list[dict[str, Any]]]:
    """Two pending and two completed tasks, created in this order."""
    created = [
        await alice.create_task("pending one"),
        await alice.create_task("done one", completed=True),
        await alice.create_task("pending two"),
        await alice.create_task("done two", completed=True),
    ]
    return {
        "all": created,
        "pending": [t for t in created if not t["completed"]],
        "completed": [t for t in created if t["completed"]],
    }


@pytest.mark.parametrize("status", ["all", "pending", "completed"])
async def test_status_filter_selects_tasks(
    alice: User, mixed: dict[str, list[dict[str, Any]]], status: str
) -> None:
    response = await alice.get(tasks_url(alice), params={"status": status})
    assert response.status_code == 200, response.text
    assert ids(response.json()) == ids(mixed[status])[::-1]


async def test_default_order_is_newest_first(
    alice: User, mixed: dict[str, list[dict[str, Any]]]
) -> None:
    response = await alice.get(tasks_url(alice))
    assert ids(response.json()) == ids(mixed["all"])[::-1]


@pytest.mark.parametrize(("order", "reverse"), [("desc", True), ("asc", False)])
async def test_sort_by_created_follows_order(
    alice: User, mixed: dict[str, list[dict[str, Any]]], order: str, reverse: bool
) -> None:
    response = await alice.get(tasks_url(alice), params={"sort": "created", "order": order})
    assert response.status_code == 200, response.text
    expected = ids(mixed["all"])
    assert ids(response.json()) == (expected[::-1] if reverse else expected)


@pytest.mark.parametrize(
    ("params", "titles"),
    [
        ({"sort": "title"}, ["alpha", "bravo", "charlie"]),
        ({"sort": "title", "order": "asc"}, ["alpha", "bravo", "charlie"]),
        ({"sort": "title", "order": "desc"}, ["charlie", "bravo", "alpha"]),
    ],
)
async def test_sort_by_title_defaults_to_ascending(
    alice: User, params: dict[str, str], titles: list[str]
) -> None:
    for title in ("bravo", "charlie", "alpha"):
        await alice.create_task(title)
    response = await alice.get(tasks_url(alice), params=params)
    assert response.status_code == 200, response.text
    assert [t["title"] for t in response.json()] == titles


async def test_default_page_is_50_tasks(alice: User) -> None:
    created = [await alice.create_task(f"task {i}") for i in range(51)]
    response = await alice.get(tasks_url(alice))
    assert response.status_code == 200, response.text
    assert ids(response.json()) == ids(created)[::-1][:50]
    assert "next" in response.links


async def test_limit_200_is_accepted(alice: User) -> None:
    task = await alice.create_task()
    response = await alice.get(tasks_url(alice), params={"limit": 200})
    assert response.status_code == 200, response.text
    assert ids(response.json()) == [task["id"]]


async def test_limit_bounds_the_page(alice: User) -> None:
    created = [await alice.create_task(f"task {i}") for i in range(3)]
    response = await alice.get(tasks_url(alice), params={"limit": 2})
    assert ids(response.json()) == ids(created)[::-1][:2]


@pytest.mark.parametrize("limit", ["0", "-1", "201", "1000000", "abc", ""])
async def test_limit_out_of_range_is_422(alice: User, limit: str) -> None:
    response = await alice.get(tasks_url(alice), params={"limit": limit})
    assert_problem(response, 422, "validation_failed")


@pytest.mark.parametrize(
    "params",
    [{"status": "finished"}, {"sort": "modified"}, {"order": "up"}, {"sort": ""}],
)
async def test_unknown_list_parameter_value_is_422(alice: User, params: dict[str, str]) -> None:
    assert_problem(await alice.get(tasks_url(alice), params=params), 422, "validation_failed")


# --- pagination --------------------------------------------------------------------------


async def collect_pages(user: User, url: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Follow `Link: rel="next"` from the first page to the last."""
    pages = []
    response = await user.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        next_url = response.links.get("next", {}).get("url")
        if next_url is None:
            return pages
        response = await user.get(next_url)


@pytest.fixture
async def tied(alice: User, owner_conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Eleven tasks with repeated titles, some completed, sharing two creation instants."""
    titles = ["same", "same", "other", "same", "alpha", "other", "same", "alpha", "same"]
    titles += ["zulu", "same"]
    for i, title in enumerate(titles):
        await alice.create_task(title, completed=i % 3 == 0)
    await owner_conn.execute("SELECT set_config('app.user_id', $1, false)", alice.id)
    instants = [
        datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC),
    ]
    await owner_conn.execute(
        "UPDATE tasks SET created_at = CASE WHEN id % 2 = 0 THEN $2::timestamptz ELSE $3::timestamptz END"
        " WHERE user_id = $1",
        alice.id,
        *instants,
    )
    response = await alice.get(tasks_url(alice), params={"limit": 200})
    tasks: list[dict[str, Any]] = response.json()
    assert len({t["created_at"] for t in tasks}) == 2
    return tasks


def expected_order(tasks: list[dict[str, Any]], sort: str, order: str, status: str) -> list[int]:
    keep = {
        "all": lambda t: True,
        "pending": lambda t: not t["completed"],
        "completed": lambda t: t["completed"],
    }[status]
    field = "created_at" if sort == "created" else "title"

    def key(t: dict[str, Any]) -> tuple[Any, int]:
        value = parse_time(t[field]) if sort == "created" else t[field]
        return (value, t["id"])

    chosen = sorted((t for t in tasks if keep(t)), key=key, reverse=order == "desc")
    return ids(chosen)


@pytest.mark.parametrize("status", ["all", "pending", "completed"])
@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("sort", ["created", "title"])
@pytest.mark.parametrize("limit", [1, 3])
async def test_pages_concatenate_to_the_full_list(
    alice: User, tied: list[dict[str, Any]], sort: str, order: str, status: str, limit: int
) -> None:
    params = {"sort": sort, "order": order, "status": status}
    pages = await collect_pages(alice, tasks_url(alice), limit=limit, **params)
    walked = [task for page in pages for task in page]
    assert ids(walked) == expected_order(tied, sort, order, status)
    assert all(len(page) == limit for page in pages[:-1])


@pytest.mark.parametrize("sort", ["created", "title"])
async def test_pages_without_order_use_the_sort_default(
    alice: User, tied: list[dict[str, Any]], sort: str
) -> None:
    pages = await collect_pages(alice, tasks_url(alice), sort=sort, limit=3)
    default = "desc" if sort == "created" else "asc"
    assert ids([t for page in pages for t in page]) == expected_order(tied, sort, default, "all")


async def test_paging_works_on_every_spelling(alice: User, spelling: str) -> None:
    created = [await alice.create_task("same") for _ in range(5)]
    pages = await collect_pages(alice, tasks_url(alice, spelling), limit=2)
    assert [ids(page) for page in pages] == [
        ids(created)[::-1][0:2],
        ids(created)[::-1][2:4],
        ids(created)[::-1][4:],
    ]


async def test_next_link_is_rfc8288_and_keeps_the_query(alice: User) -> None:
    for _ in range(3):
        await alice.create_task()
    response = await alice.get(tasks_url(alice), params={"limit": 2, "status": "pending"})
    link = response.headers["link"]
    assert link.startswith("</api/me/tasks?")  # relative: never built from Host
    assert link.endswith('>; rel="next"')
    query = httpx.URL(response.links["next"]["url"]).params
    assert query["limit"] == "2"
    assert query["status"] == "pending"
    assert query["cursor"]


async def test_last_page_has_no_link(alice: User) -> None:
    for _ in range(2):
        await alice.create_task()
    response = await alice.get(tasks_url(alice), params={"limit": 2})
    assert response.status_code == 200, response.text
    assert len(response.json()) == 2
    assert "link" not in response.headers


async def test_empty_list_has_no_link(alice: User) -> None:
    response = await alice.get(tasks_url(alice))
    assert "link" not in response.headers


async def first_cursor(user: User, **params: Any) -> str:
    for _ in range(3):
        await user.create_task()
    response = await user.get(tasks_url(user), params={"limit": 1, **params})
    cursor: str = httpx.URL(response.links["next"]["url"]).params["cursor"]
    return cursor


def tamper(cursor: str) -> str:
    middle = len(cursor) // 2
    replacement = "A" if cursor[middle] != "A" else "B"
    return cursor[:middle] + replacement + cursor[middle + 1 :]


async def test_tampered_cursor_is_cursor_invalid(alice: User) -> None:
    cursor = await first_cursor(alice)
    response = await alice.get(tasks_url(alice), params={"limit": 1, "cursor": tamper(cursor)})
    assert_problem(response, 422, "cursor_invalid")


async def test_cursor_from_another_server_key_is_cursor_invalid(alice: User) -> None:
    forged = base64.urlsafe_b64encode(b'[["created","desc","all"],["2026-01-01T00:00:00+00:00",1]]')
    forged += b"\x00" * 16
    response = await alice.get(tasks_url(alice), params={"cursor": forged.decode().rstrip("=")})
    assert_problem(response, 422, "cursor_invalid")


@pytest.mark.parametrize(
    "changed",
    [
        {"sort": "title"},
        {"order": "asc"},
        {"status": "pending"},
        {"status": "completed"},
    ],
)
async def test_cursor_reused_with_other_sort_or_filter_is_cursor_mismatch(
    alice: User, changed: dict[str, str]
) -> None:
    cursor = await first_cursor(alice)
    response = await alice.get(tasks_url(alice), params={"cursor": cursor, **changed})
    assert_problem(response, 422, "cursor_mismatch")


async def test_cursor_may_be_reused_with_another_limit(alice: User) -> None:
    cursor = await first_cursor(alice)
    response = await alice.get(tasks_url(alice), params={"cursor": cursor, "limit": 5})
    assert response.status_code == 200, response.text
    assert len(response.json()) == 2


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "=",
        "a",
        "!!!!",
        "not base64 at all",
        "\x00",
        "é",
        "%",
        "A" * 1000,
        "_" * 999,
    ],
    ids=lambda c: repr(c[:12]),
)
async def test_garbage_cursor_is_422_cursor_invalid(alice: User, cursor: str) -> None:
    await alice.create_task()
    response = await alice.get(tasks_url(alice), params={"cursor": cursor})
    assert_problem(response, 422, "cursor_invalid")


async def test_oversized_cursor_is_422(alice: User) -> None:
    response = await alice.get(tasks_url(alice), params={"cursor": "A" * 5000})
    assert_problem(response, 422, "validation_failed")


# --- URLs the server hands out, for user ids that need percent-encoding -----------------

ODD_USER_IDS = ["ada lovelace", "a?b#c", "50%", "x>y", "a;b,c", "ü", "用户", "google-oauth2|1"]


@pytest.mark.parametrize("sub", ODD_USER_IDS)
async def test_location_resolves_for_any_user_id(client: httpx.AsyncClient, sub: str) -> None:
    user = User(client, sub)
    await user.delete("/api/me")  # ids are fixed here, so start from an empty account
    response = await user.post(f"/api/{quote(sub, safe='')}/tasks", json={"title": "t"})
    assert response.status_code == 201, response.text
    fetched = await user.get(response.headers["location"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == response.json()


@pytest.mark.parametrize("sub", ODD_USER_IDS)
async def test_next_link_works_for_any_user_id(client: httpx.AsyncClient, sub: str) -> None:
    user = User(client, sub)
    await user.delete("/api/me")
    created = [await user.create_task() for _ in range(2)]
    pages = await collect_pages(user, f"/api/{quote(sub, safe='')}/tasks", limit=1)
    assert [ids(page) for page in pages] == [[created[1]["id"]], [created[0]["id"]]]
