"""Recurring tasks: rule validation, the next occurrence on every completion path, its
idempotence, COUNT/UNTIL, repeat from completion, and daylight-saving time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from tests.conftest import User
from tests.dates import compact, day
from tests.routes.support import assert_problem, create, create_list, frozen_now, read, utc

# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY",
        "FREQ=MINUTELY;INTERVAL=5",
        "FREQ=DAILY;BYHOUR=9",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;BYDAY=1MO",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;COUNT=3;UNTIL=20270101",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;FREQ=WEEKLY",
        "FREQ=MONTHLY;BYMONTHDAY=32",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # never happens
        "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31",  # never happens
        "FREQ=DAILY;UNTIL=2027-01-01",
        "DTSTART:20260101T000000Z",
        "INTERVAL=2",
        "FREQ=DAILY;X-CUSTOM=1",
        "FREQ=DAILY\nRRULE:FREQ=WEEKLY",
        "",
    ],
)
async def test_nonsense_rules_are_a_clear_422(alice: User, rule: str) -> None:
    response = await alice.post(
        "/api/me/tasks", json={"title": "t", "due_date": day(1), "recurrence": rule}
    )
    problem = assert_problem(response, 422, "recurrence_invalid")
    assert problem["errors"][0]["loc"][:2] == ["body", "recurrence"]


async def test_an_overlong_rule_is_a_422(alice: User) -> None:
    rule = "FREQ=DAILY;" + "BYMONTHDAY=1;" * 100
    response = await alice.post(
        "/api/me/tasks", json={"title": "t", "due_date": day(1), "recurrence": rule}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"][:2] == ["body", "recurrence"]


@pytest.mark.parametrize(
    ("rule", "stored"),
    [
        ("FREQ=WEEKLY;BYDAY=MO,WE", "FREQ=WEEKLY;BYDAY=MO,WE"),
        ("rrule:freq=monthly;bymonthday=-1", "FREQ=MONTHLY;BYMONTHDAY=-1"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"),
        ("FREQ=MONTHLY;BYDAY=-1FR;COUNT=12", "FREQ=MONTHLY;BYDAY=-1FR;COUNT=12"),
    ],
)
async def test_valid_rules_are_stored_in_canonical_form(
    alice: User, rule: str, stored: str
) -> None:
    task = await create(alice, due_date=day(1), recurrence=rule)
    assert task["recurrence"] == stored
    assert task["repeat_from"] == "due"


async def test_a_recurring_task_needs_a_due_date(alice: User) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", "recurrence": "FREQ=DAILY"})
    assert_problem(response, 422, "validation_failed")
    plain = await create(alice)
    response = await alice.patch(f"/api/me/tasks/{plain['id']}", json={"recurrence": "FREQ=DAILY"})
    assert_problem(response, 422, "recurrence_needs_due")
    recurring = await create(alice, due_date=day(1), recurrence="FREQ=DAILY")
    response = await alice.patch(f"/api/me/tasks/{recurring['id']}", json={"due_date": None})
    assert_problem(response, 422, "recurrence_needs_due")
    assert (await read(alice, recurring["id"]))["due_date"] == day(1)


# --- the next occurrence, on every completion path ------------------------------------------

# Repeating from the due date never reads the clock: fixed dates below are there for their
# weekdays or daylight-saving changes; repeating from completion freezes the clock.


def completion(user: User, task_id: int, how: str) -> tuple[str, str, Any]:
    url = f"/api/me/tasks/{task_id}"
    return {
        "complete": ("PATCH", f"{url}/complete", None),
        "complete-true": ("PATCH", f"{url}/complete", {"completed": True}),
        "patch": ("PATCH", url, {"completed": True}),
        "put": (
            "PUT",
            url,
            {"title": "Water the plants", "description": "balcony", "completed": True},
        ),
        "batch": (
            "POST",
            "/api/me/tasks/batch",
            {"operations": [{"op": "complete", "id": task_id, "completed": True}]},
        ),
    }[how]


async def complete(user: User, task_id: int, how: str = "complete") -> dict[str, Any]:
    method, url, body = completion(user, task_id, how)
    response = await user.request(method, url, json=body)
    assert response.status_code == 200, response.text
    if how == "batch":
        task: dict[str, Any] = response.json()["results"][0]["task"]
        return task
    done: dict[str, Any] = response.json()
    return done


@pytest.mark.parametrize("how", ["complete", "complete-true", "patch", "put", "batch"])
async def test_completing_an_occurrence_creates_the_next_one(alice: User, how: str) -> None:
    garden = await create_list(alice)
    task = await create(
        alice,
        "Water the plants",
        description="balcony",
        priority="high",
        tags=["home", "plants"],
        due_date="2026-12-01",
        recurrence="FREQ=WEEKLY;BYDAY=TU,FR",
        list_id=garden["id"],
    )
    done = await complete(alice, task["id"], how)
    assert done["completed"] is True
    assert done["next_occurrence_id"] is not None
    following = await read(alice, done["next_occurrence_id"])
    assert following["previous_occurrence_id"] == task["id"]
    assert following["due_date"] == "2026-12-04"  # the Friday after Tuesday Dec 1
    assert following["completed"] is False
    same = ("title", "description", "priority", "tags", "recurrence", "repeat_from", "list_id")
    assert {k: following[k] for k in same} == {k: task[k] for k in same}
    # The history stays: the completed occurrence names its successor.
    assert (await read(alice, task["id"]))["next_occurrence_id"] == following["id"]


async def test_double_completion_and_uncomplete_recomplete_create_one_next(alice: User) -> None:
    task = await create(alice, due_date=day(1), recurrence="FREQ=DAILY")
    first = await complete(alice, task["id"], "complete-true")
    again = await complete(alice, task["id"], "complete-true")
    assert again["next_occurrence_id"] == first["next_occurrence_id"]
    await alice.patch(f"/api/me/tasks/{task['id']}/complete", json={"completed": False})
    third = await complete(alice, task["id"], "patch")
    assert third["next_occurrence_id"] == first["next_occurrence_id"]
    pending = (await alice.get("/api/me/tasks", params={"status": "all"})).json()
    assert len(pending) == 2


async def test_concurrent_completions_create_one_next(alice: User) -> None:
    task = await create(alice, due_date=day(1), recurrence="FREQ=DAILY")
    url = f"/api/me/tasks/{task['id']}/complete"
    responses = await asyncio.gather(
        *(alice.patch(url, json={"completed": True}) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["next_occurrence_id"] for r in responses}) == 1
    assert len((await alice.get("/api/me/tasks")).json()) == 2


async def test_count_counts_down_and_ends_the_series(alice: User) -> None:
    task = await create(alice, due_date=day(1), recurrence="FREQ=DAILY;COUNT=2")
    second = await read(alice, (await complete(alice, task["id"]))["next_occurrence_id"])
    assert (second["due_date"], second["recurrence"]) == (day(2), "FREQ=DAILY;COUNT=1")
    last = await complete(alice, second["id"])
    assert last["next_occurrence_id"] is None


async def test_until_ends_the_series(alice: User) -> None:
    task = await create(alice, due_date=day(1), recurrence=f"FREQ=WEEKLY;UNTIL={compact(8)}")
    second = await complete(alice, task["id"])
    assert (await read(alice, second["next_occurrence_id"]))["due_date"] == day(8)
    assert (await complete(alice, second["next_occurrence_id"]))["next_occurrence_id"] is None


async def test_setting_recurrence_to_null_stops_the_series(alice: User) -> None:
    task = await create(alice, due_date=day(1), recurrence="FREQ=DAILY")
    stopped = await alice.patch(f"/api/me/tasks/{task['id']}", json={"recurrence": None})
    assert stopped.json()["recurrence"] is None
    assert (await complete(alice, task["id"]))["next_occurrence_id"] is None


async def test_deleting_a_past_occurrence_keeps_the_current_one(alice: User) -> None:
    task = await create(alice, due_date=day(1), recurrence="FREQ=DAILY")
    next_id = (await complete(alice, task["id"]))["next_occurrence_id"]
    assert (await alice.delete(f"/api/me/tasks/{task['id']}")).status_code == 200
    assert (await read(alice, next_id))["previous_occurrence_id"] is None


async def test_repeat_from_completion_counts_from_the_completion_day(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    await alice.patch("/api/me", json={"timezone": "Europe/Berlin"})
    task = await create(
        alice,
        due_date="2026-12-01",
        recurrence="FREQ=DAILY;INTERVAL=3",
        repeat_from="completion",
    )
    # 23:30Z on Dec 9 is already Dec 10 in Berlin.
    with frozen_now(monkeypatch, utc(2026, 12, 9, 23, 30)):
        done = await complete(alice, task["id"])
    assert (await read(alice, done["next_occurrence_id"]))["due_date"] == "2026-12-13"


async def test_the_next_occurrence_counts_against_the_task_quota(
    app: FastAPI, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.quotas, "tasks", 1)
    task = await create(alice, due_date=day(1), recurrence="FREQ=DAILY")
    response = await alice.patch(f"/api/me/tasks/{task['id']}/complete")
    assert_problem(response, 409, "quota_tasks")
    assert (await read(alice, task["id"]))["completed"] is False


# --- daylight-saving time ------------------------------------------------------------------

DST_CASES = [
    # 09:00 in New York, the day before and the day of the spring-forward change.
    ("America/New_York", "2026-03-07T14:00:00Z", "FREQ=DAILY", "2026-03-08T13:00:00Z"),
    # 09:00 in Berlin across the autumn change (CEST -> CET).
    ("Europe/Berlin", "2026-10-24T07:00:00Z", "FREQ=DAILY", "2026-10-25T08:00:00Z"),
    # Weekly at 18:30 in Berlin across the spring change.
    ("Europe/Berlin", "2026-03-26T17:30:00Z", "FREQ=WEEKLY", "2026-04-02T16:30:00Z"),
    # 02:30 does not exist on 2026-03-08 in New York: it lands just after the gap.
    ("America/New_York", "2026-03-07T07:30:00Z", "FREQ=DAILY", "2026-03-08T07:30:00Z"),
    # Monthly on the 31st skips the short months (RFC 5545).
    ("UTC", "2026-01-31T09:00:00Z", "FREQ=MONTHLY", "2026-03-31T09:00:00Z"),
]


@pytest.mark.parametrize(("zone", "due", "rule", "expected"), DST_CASES)
async def test_recurrence_keeps_the_wall_clock_time_across_dst(
    alice: User, zone: str, due: str, rule: str, expected: str
) -> None:
    await alice.patch("/api/me", json={"timezone": zone})
    task = await create(alice, due_date=due, recurrence=rule)
    done = await complete(alice, task["id"])
    assert (await read(alice, done["next_occurrence_id"]))["due_date"] == expected


async def test_the_reminder_moves_with_the_occurrence_at_the_same_local_offset(
    alice: User,
) -> None:
    await alice.patch("/api/me", json={"timezone": "Europe/Berlin"})
    task = await create(
        alice,
        due_date="2026-10-24",  # all-day, the day before the clocks go back
        recurrence="FREQ=DAILY",
        remind_at="2026-10-24T06:30:00Z",  # 08:30 in Berlin (CEST)
    )
    done = await complete(alice, task["id"])
    following = await read(alice, done["next_occurrence_id"])
    assert following["due_date"] == "2026-10-25"
    assert following["remind_at"] == "2026-10-25T07:30:00Z"  # 08:30 in Berlin (CET)
    assert following["reminder_dismissed_at"] is None


async def test_a_yearly_ordinal_without_bymonth_counts_in_the_year(alice: User) -> None:
    # Under BYMONTH it counts within the month, so there it stops at 5 (tests/hostile).
    task = await create(alice, due_date=day(1), recurrence="FREQ=YEARLY;BYDAY=20MO")
    assert task["recurrence"] == "FREQ=YEARLY;BYDAY=20MO"
