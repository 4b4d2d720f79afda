"""Date-times without an offset (what `<input type="datetime-local">` sends) are
wall-clock times in the profile's time zone; responses stay in UTC with `Z`."""

from __future__ import annotations

import pytest

from tests.conftest import User
from tests.routes.support import assert_problem, create, ids


async def zone(user: User, name: str) -> None:
    response = await user.patch("/api/me", json={"timezone": name})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2030-12-01T18:00", "2030-12-01T17:00:00Z"),
        ("2030-12-01T18:00:30", "2030-12-01T17:00:30Z"),
        ("2030-07-01 18:00", "2030-07-01T16:00:00Z"),  # summer time: +02:00
    ],
)
async def test_a_local_due_date_is_read_in_the_profile_zone(
    alice: User, local: str, utc: str
) -> None:
    await zone(alice, "Europe/Berlin")
    task = await create(alice, due_date=local)
    assert task["due_date"] == utc
    assert (await alice.get(f"/api/me/tasks/{task['id']}")).json()["due_date"] == utc


async def test_without_a_profile_zone_local_means_utc(alice: User) -> None:
    task = await create(alice, due_date="2030-12-01T18:00", remind_at="2030-12-01T08:00")
    assert (task["due_date"], task["remind_at"]) == ("2030-12-01T18:00:00Z", "2030-12-01T08:00:00Z")


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_updates_read_local_times_too(alice: User, method: str) -> None:
    await zone(alice, "Asia/Tokyo")
    task = await create(alice)
    response = await alice.request(
        method,
        f"/api/me/tasks/{task['id']}",
        json={"due_date": "2031-01-10T09:00", "remind_at": "2031-01-10T08:45"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["due_date"], body["remind_at"]) == ("2031-01-10T00:00:00Z", "2031-01-09T23:45:00Z")


async def test_dst_gaps_move_forward_and_overlaps_take_standard_time(alice: User) -> None:
    await zone(alice, "America/New_York")
    gap = await create(alice, due_date="2030-03-10T02:30")  # clocks jump 02:00 -> 03:00
    overlap = await create(alice, due_date="2030-11-03T01:30")  # 01:00-02:00 happens twice
    assert gap["due_date"] == "2030-03-10T07:30:00Z"  # 03:30 EDT
    assert overlap["due_date"] == "2030-11-03T06:30:00Z"  # 01:30 EST


async def test_date_filters_take_local_times(alice: User) -> None:
    await zone(alice, "Europe/Berlin")
    early = await create(alice, due_date="2030-12-01T09:00:00Z")  # 10:00 in Berlin
    late = await create(alice, due_date="2030-12-01T11:00:00Z")  # 12:00 in Berlin
    response = await alice.get("/api/me/tasks", params={"due_before": "2030-12-01T11:00"})
    assert ids(response.json()) == [early["id"]]
    response = await alice.get("/api/me/tasks", params={"due_after": "2030-12-01T11:00"})
    assert ids(response.json()) == [late["id"]]


@pytest.mark.parametrize(
    "value", ["2030-13-01T10:00", "2030-12-01T25:00", "2030-12-01T10", "2030-12-01T10:00:00.5x"]
)
async def test_malformed_local_times_are_422(alice: User, value: str) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", "due_date": value})
    assert_problem(response, 422, "validation_failed")
    reminder = await alice.post("/api/me/tasks", json={"title": "t", "remind_at": value})
    assert_problem(reminder, 422, "validation_failed")
