"""The caller's profile: reads never write, the first write creates it, DELETE erases all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from tests.conftest import User
from tests.routes.support import assert_problem

SPELLINGS = ("canonical", "me")
RowCount = Callable[[str, User], Awaitable[int]]


def profile_url(user: User, spelling: str = "me") -> str:
    return f"/api/{user.id}" if spelling == "canonical" else "/api/me"


@pytest.fixture
def rows(owner_conn: asyncpg.Connection) -> RowCount:
    """Count a user's rows in a table, as the owner (row-level security still applies)."""

    async def count(table: str, user: User) -> int:
        assert table in {"profiles", "tasks"}
        await owner_conn.execute("SELECT set_config('app.user_id', $1, false)", user.id)
        value: int = await owner_conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE user_id = $1", user.id
        )
        return value

    return count


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def defaults(user: User, email: str | None, name: str | None) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "email": email,
        "name": name,
        "display_name": None,
        "timezone": "UTC",
        "created_at": None,
        "updated_at": None,
    }


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_profile_before_any_write_is_defaults_plus_token_claims(
    alice: User, spelling: str
) -> None:
    response = await alice.get(profile_url(alice, spelling))
    assert response.status_code == 200, response.text
    assert response.json() == defaults(alice, "alice@example.com", "Alice")


async def test_profile_without_claims_has_null_email_and_name(
    new_user: Callable[..., User],
) -> None:
    carol = new_user()
    response = await carol.get("/api/me")
    assert response.status_code == 200, response.text
    assert response.json() == defaults(carol, None, None)


async def test_reading_the_profile_does_not_create_a_row(alice: User, rows: RowCount) -> None:
    assert (await alice.get("/api/me")).status_code == 200
    assert await rows("profiles", alice) == 0


async def test_first_task_creates_the_profile(alice: User, rows: RowCount) -> None:
    await alice.create_task()
    assert await rows("profiles", alice) == 1
    profile = (await alice.get("/api/me")).json()
    assert profile["created_at"] is not None
    assert profile["created_at"].endswith("Z")
    assert profile["timezone"] == "UTC"


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_patch_sets_display_name(alice: User, spelling: str) -> None:
    response = await alice.patch(profile_url(alice, spelling), json={"display_name": "  Ali  "})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["display_name"] == "Ali"
    assert body["email"] == "alice@example.com"
    assert body["name"] == "Alice"
    assert body["created_at"].endswith("Z")
    assert (await alice.get("/api/me")).json() == body


async def test_first_patch_creates_the_profile(alice: User, rows: RowCount) -> None:
    response = await alice.patch("/api/me", json={"timezone": "Europe/Paris"})
    assert response.status_code == 200, response.text
    assert await rows("profiles", alice) == 1


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Argentina/Buenos_Aires", "UTC"])
async def test_patch_sets_a_valid_iana_timezone(alice: User, zone: str) -> None:
    response = await alice.patch("/api/me", json={"timezone": zone})
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == zone
    assert (await alice.get("/api/me")).json()["timezone"] == zone


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "europe/paris", "", "../../etc/passwd", "Europe/" + "x" * 80]
)
async def test_invalid_timezone_is_422(alice: User, zone: str) -> None:
    response = await alice.patch("/api/me", json={"timezone": zone})
    body = assert_problem(response, 422, "timezone_unsupported")
    assert body["errors"][0]["loc"] == ["body", "timezone"]


async def test_a_timezone_that_is_not_a_string_is_422(alice: User) -> None:
    response = await alice.patch("/api/me", json={"timezone": 5})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "timezone"]


async def test_null_timezone_resets_to_utc(alice: User) -> None:
    await alice.patch("/api/me", json={"timezone": "Asia/Tokyo"})
    response = await alice.patch("/api/me", json={"timezone": None})
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "UTC"


async def test_patch_keeps_fields_not_sent(alice: User) -> None:
    await alice.patch("/api/me", json={"display_name": "Ali", "timezone": "Asia/Tokyo"})
    response = await alice.patch("/api/me", json={"timezone": "Europe/Paris"})
    assert response.json()["display_name"] == "Ali"
    response = await alice.patch("/api/me", json={"display_name": "Al"})
    assert response.json()["timezone"] == "Europe/Paris"


async def test_patch_moves_updated_at_but_not_created_at(alice: User) -> None:
    first = (await alice.patch("/api/me", json={"display_name": "One"})).json()
    second = (await alice.patch("/api/me", json={"display_name": "Two"})).json()
    assert second["created_at"] == first["created_at"]
    assert parse_time(second["updated_at"]) > parse_time(first["updated_at"])


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "   "},
        {"display_name": "x" * 101},
        {"display_name": "a\nb"},
        {"display_name": "a\x00b"},
        {"user_id": "someone-else"},
        {"email": "mallory@example.com"},
        {"created_at": "2020-01-01T00:00:00Z"},
    ],
)
async def test_invalid_profile_patch_is_422(alice: User, body: dict[str, Any]) -> None:
    assert_problem(await alice.patch("/api/me", json=body), 422, "validation_failed")


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_delete_profile_erases_every_task_and_the_profile(
    alice: User, rows: RowCount, spelling: str
) -> None:
    await alice.patch("/api/me", json={"display_name": "Ali"})
    for title in ("one", "two", "three"):
        await alice.create_task(title)
    response = await alice.delete(profile_url(alice, spelling))
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await rows("tasks", alice) == 0
    assert await rows("profiles", alice) == 0


async def test_same_token_after_delete_sees_a_fresh_account(alice: User) -> None:
    task = await alice.create_task()
    await alice.patch("/api/me", json={"display_name": "Ali", "timezone": "Asia/Tokyo"})
    assert (await alice.delete("/api/me")).status_code == 204
    tasks = await alice.get("/api/me/tasks")
    assert tasks.status_code == 200, tasks.text
    assert tasks.json() == []
    assert (await alice.get("/api/me")).json() == defaults(alice, "alice@example.com", "Alice")
    assert_problem(await alice.get(f"/api/me/tasks/{task['id']}"), 404, "task_not_found")


async def test_fresh_account_after_delete_can_write_again(alice: User) -> None:
    await alice.create_task("before")
    assert (await alice.delete("/api/me")).status_code == 204
    task = await alice.create_task("after")
    assert [t["id"] for t in (await alice.get("/api/me/tasks")).json()] == [task["id"]]


async def test_delete_of_an_account_that_never_wrote_is_204(alice: User) -> None:
    response = await alice.delete("/api/me")
    assert response.status_code == 204, response.text
    assert (await alice.get("/api/me")).json() == defaults(alice, "alice@example.com", "Alice")


async def test_delete_leaves_other_users_data_alone(alice: User, bob: User) -> None:
    bobs_task = await bob.create_task("Bob's")
    bobs_profile = (await bob.patch("/api/me", json={"display_name": "Bobby"})).json()
    await alice.create_task("Alice's")
    assert (await alice.delete("/api/me")).status_code == 204
    assert (await bob.get("/api/me/tasks")).json() == [bobs_task]
    assert (await bob.get("/api/me")).json() == bobs_profile
